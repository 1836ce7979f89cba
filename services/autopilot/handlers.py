"""Commands the autopilot service handles: ``autopilot.start``, ``autopilot.control`` and
``autopilot.answer`` v1 (the study session is the envelope's ``session_id``).

Each handler reads the session's newest run, applies the student's request with the pure
machine (a refusal is the declared 400 or 404 with the machine's reason, and nothing is
written), and returns the reply. Its ``persist`` locks the run's row in the command's own
transaction, applies the request again to the row as it is then (a driver may have stored
a step meanwhile) and stores the run, its new steps and their events with the command's
inbox row: a redelivered command changes nothing twice. When the row moved on so that the
request no longer fits, the command is retried and answered from the new state.

An answer the quiz grades is stored as received (pending) before it is graded, in a short
transaction of its own, so the driver waits for its grade rather than timing the question
out while ``quiz.grade`` (which may ask the model for feedback) runs.

Every write notifies the replica driving the run (:mod:`services.autopilot.driver`), so a
pause or a stop acts at once, also during a lesson or an answer wait. The driver is
installed here as the worker's background service.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TypeVar
from uuid import UUID

from exammentor import sessions
from exammentor.contracts.autopilot import (
    ANSWER_REFUSED,
    AUTOPILOT_ACTIVE,
    AUTOPILOT_ANSWER,
    AUTOPILOT_CONTROL,
    AUTOPILOT_NOT_FOUND,
    AUTOPILOT_START,
    CONTROL_REFUSED,
    RUN_SETUP_REFUSED,
    AutopilotAnswerRequest,
    AutopilotAnswerResponse,
    AutopilotControlRequest,
    AutopilotControlResponse,
    AutopilotStartRequest,
    AutopilotStartResponse,
)
from exammentor.contracts.commands import SESSION_NOT_FOUND
from exammentor.contracts.quiz import QUIZ_GRADE, EvaluateAnswerRequest
from exammentor.db import Connection
from exammentor.messaging.handling import (
    CommandContext,
    CommandRejected,
    CommandRouter,
    Outcome,
    Persist,
)
from exammentor.messaging.outbox import add_event
from exammentor.worker import WorkerResources
from services.autopilot import repo
from services.autopilot.calls import CallFailed, StudyCalls
from services.autopilot.domain import (
    AnswerGiven,
    AnswerReceived,
    AnswerRefused,
    Applied,
    AutopilotPolicy,
    AutopilotRefusal,
    AutopilotRun,
    ControlRefused,
    PauseRequested,
    ResumeRequested,
    RunActiveError,
    RunSetupError,
    StopRequested,
    StudentOutcome,
    apply,
    control_response,
    start_response,
    start_run,
)
from services.autopilot.driver import AutopilotDriver, utcnow
from services.autopilot.events import run_events
from services.autopilot.settings import AutopilotSettings

_Refusal = TypeVar("_Refusal", bound=AutopilotRefusal)


class GradingFailed(Exception):
    """The quiz could not grade an answer now (retried, then dead-lettered)."""


def policy_of(settings: AutopilotSettings) -> AutopilotPolicy:
    """The rules a new run keeps to its end (a run stores its own)."""
    return AutopilotPolicy(
        lessons_per_topic=settings.lessons_per_topic,
        questions_per_quiz=settings.questions_per_quiz,
        answer_timeout_seconds=settings.answer_timeout_seconds,
        grading_timeout_seconds=settings.grading_timeout_seconds,
        quiz_estimate_seconds=settings.quiz_estimate_seconds,
    )


def _session(ctx: CommandContext) -> UUID:
    session_id = ctx.envelope.session_id
    if session_id is None:
        raise CommandRejected(
            SESSION_NOT_FOUND.code, "session_id: required", {"field": "session_id"}
        )
    return session_id


async def _latest(ctx: CommandContext, session_id: UUID) -> repo.StoredRun:
    async with ctx.transaction() as conn:
        stored = await repo.latest_run(conn, session_id)
    if stored is None:
        raise CommandRejected(
            AUTOPILOT_NOT_FOUND.code,
            f"session_id: no autopilot run of session {session_id}",
            {"field": "session_id"},
        )
    return stored


async def _apply_locked(
    conn: Connection,
    session_id: UUID,
    outcome: StudentOutcome,
    now: dt.datetime,
    *,
    refusal: type[_Refusal],
    refused: Callable[[_Refusal], Exception],
) -> tuple[repo.StoredRun, Applied]:
    """The session's newest run, its row locked until the transaction ends, and the
    student's ``outcome`` applied to it as it is now (a driver may have stored a step since
    the check). A run that is gone raises :class:`repo.RunChanged` (the command is retried);
    a ``refusal`` of the machine raises ``refused(exc)`` instead."""
    fresh = await repo.latest_run(conn, session_id, lock=True)
    if fresh is None:
        raise repo.RunChanged(f"the run of {session_id} is gone")
    try:
        return fresh, apply(fresh.run, outcome, now)
    except refusal as exc:
        raise refused(exc) from exc


def _moved_on(exc: AutopilotRefusal) -> repo.RunChanged:
    return repo.RunChanged(f"the run moved on: {exc}")


def _persist_student(
    ctx: CommandContext,
    settings: AutopilotSettings,
    session_id: UUID,
    outcome: StudentOutcome,
    now: dt.datetime,
) -> Persist:
    async def persist(conn: Connection) -> None:
        fresh, applied = await _apply_locked(
            conn, session_id, outcome, now, refusal=AutopilotRefusal, refused=_moved_on
        )
        if applied.ignored is not None:
            return  # a grade that came after a stop: the run keeps what it had
        await repo.save_run(conn, fresh, applied.run, applied.new_steps, now)
        for event in run_events(applied.run, applied.new_steps):
            await add_event(conn, settings.kafka.topic_prefix, ctx.event(event))

    return persist


async def start(
    ctx: CommandContext, request: AutopilotStartRequest, settings: AutopilotSettings
) -> Outcome[AutopilotStartResponse]:
    """``autopilot.start`` v1: a new run of the session (the next number after a finished
    one); refused while the session's run is running or paused."""
    session_id = _session(ctx)
    now = utcnow()
    async with ctx.transaction() as conn:
        await sessions.require_session(conn, session_id, {"field": "session_id"})
        previous = await repo.latest_run(conn, session_id)
    try:
        run = start_run(
            request,
            session_id=session_id,
            now=now,
            previous=None if previous is None else previous.run,
            policy=policy_of(settings),
        )
    except RunActiveError as exc:
        raise CommandRejected(
            AUTOPILOT_ACTIVE.code, str(exc), {"status": exc.status, "run_number": exc.run_number}
        ) from exc
    except RunSetupError as exc:
        raise CommandRejected(RUN_SETUP_REFUSED.code, f"study_plan: {exc}") from exc

    async def persist(conn: Connection) -> None:
        # A start that raced another: the primary key refuses the second run's number,
        # and the retry answers from the run that won.
        await repo.insert_run(conn, run, ctx.user_id, now)
        for event in run_events(run, tuple(run.steps)):
            await add_event(conn, settings.kafka.topic_prefix, ctx.event(event))

    return Outcome(result=start_response(run), persist=persist)


async def control(
    ctx: CommandContext, request: AutopilotControlRequest, settings: AutopilotSettings
) -> Outcome[AutopilotControlResponse]:
    """``autopilot.control`` v1: pause, resume or stop, at once."""
    session_id = _session(ctx)
    outcomes: dict[str, StudentOutcome] = {
        "pause": PauseRequested(),
        "resume": ResumeRequested(),
        "stop": StopRequested(),
    }
    outcome = outcomes[request.control]
    now = utcnow()
    stored = await _latest(ctx, session_id)
    try:
        applied = apply(stored.run, outcome, now)
    except ControlRefused as exc:
        raise CommandRejected(
            CONTROL_REFUSED.code, str(exc), {"status": exc.status, "control": exc.control}
        ) from exc
    return Outcome(
        result=control_response(applied.run),
        persist=_persist_student(ctx, settings, session_id, outcome, now),
    )


def _refused(exc: AnswerRefused) -> CommandRejected:
    return CommandRejected(
        ANSWER_REFUSED.code,
        str(exc),
        {
            "question_id": exc.question_id,
            "answer_index": exc.answer_index,
            "waiting_question_id": exc.waiting_question_id,
        },
    )


async def _mark_received(ctx: CommandContext, received: AnswerReceived, now: dt.datetime) -> None:
    """Stores the answer as received, before it is graded, in its own short transaction:
    from then on the driver waits for its grade instead of timing the question out. A
    redelivery finds it stored and changes nothing."""
    session_id = _session(ctx)
    async with ctx.transaction() as conn:
        # Refused here: the wait ended between the check and this write, the answer is late.
        fresh, applied = await _apply_locked(
            conn, session_id, received, now, refusal=AnswerRefused, refused=_refused
        )
        if applied.duplicate:
            return
        # No step and no event: the answer's step is written with its grade.
        await repo.save_run(conn, fresh, applied.run, applied.new_steps, now)


async def _graded(
    ctx: CommandContext,
    run: AutopilotRun,
    request: AutopilotAnswerRequest,
    session_id: UUID,
    calls: StudyCalls,
) -> AnswerGiven:
    """The answer to the waiting question with its grade: from the question's own key when
    the run holds it, else from ``quiz.grade``."""
    waiting = run.waiting_question
    assert waiting is not None
    if waiting.correct_option_index is not None:
        outcome = AnswerGiven(question_id=waiting.id, answer_index=request.answer_index)
    else:
        key = (
            f"autopilot:{session_id}:{run.run_number}:{run.next_action_id}:grade:"
            f"{request.answer_index}"
        )
        try:
            grade = await calls.call(
                QUIZ_GRADE,
                ctx.user_id,
                EvaluateAnswerRequest(
                    question_id=waiting.id, student_answer_index=request.answer_index
                ),
                key=key,
                session_id=session_id,
            )
        except CallFailed as exc:
            raise GradingFailed(str(exc)) from exc
        outcome = AnswerGiven(
            question_id=waiting.id,
            answer_index=request.answer_index,
            correct=grade.is_correct,
            correct_option_index=grade.correct_option_index,
            explanation=grade.explanation or None,
        )
    return outcome


async def answer(
    ctx: CommandContext,
    request: AutopilotAnswerRequest,
    settings: AutopilotSettings,
    calls: StudyCalls,
) -> Outcome[AutopilotAnswerResponse]:
    """``autopilot.answer`` v1: the answer to the waiting question, graded by the quiz
    (``quiz.grade`` by the question's id, keyed by the wait and the option chosen, so a
    redelivery is answered from the quiz's inbox).

    An answer the quiz grades is first stored as received (pending), so however long the
    grading takes, the question is not timed out under it; the graded answer is then
    applied in the command's own transaction."""
    session_id = _session(ctx)
    now = utcnow()
    stored = await _latest(ctx, session_id)
    run = stored.run
    received = AnswerReceived(question_id=request.question_id, answer_index=request.answer_index)
    try:
        checked = apply(run, received, now)  # every refusal is decided before any grading
    except AnswerRefused as exc:
        raise _refused(exc) from exc
    if checked.ignored is not None and run.is_finished:
        # A redelivery of an answer received before a stop: the run keeps what it had.
        return Outcome(result=AutopilotAnswerResponse())
    waiting = run.waiting_question
    assert waiting is not None
    if waiting.correct_option_index is None:
        await _mark_received(ctx, received, now)
    outcome = await _graded(ctx, run, request, session_id, calls)
    if waiting.correct_option_index is None:
        # The arrival is kept in the pending mark; the grade is recorded when it came, so
        # the next question's window starts then, not while this one was being graded.
        now = utcnow()
    return Outcome(
        result=AutopilotAnswerResponse(),
        persist=_persist_student(ctx, settings, session_id, outcome, now),
    )


def install_handlers(router: CommandRouter, resources: WorkerResources[AutopilotSettings]) -> None:
    """Registers the autopilot's commands and installs its driver.

    Args:
        router: The autopilot's router.
        resources: The worker's resources; the autopilot's settings make its worker run a
            result relay (``resources.relay``), where tutor and quiz answer.
    """
    settings = resources.settings
    relay = resources.relay
    if relay is None:
        raise RuntimeError("the autopilot needs its worker's result relay (AutopilotSettings)")
    calls = StudyCalls(
        resources.pool,
        resources.broker,
        relay,
        settings.kafka.topic_prefix,
        resend_after_s=settings.call_timeout_s,
    )
    driver = AutopilotDriver(
        resources.pool, calls, settings, listen_dsn=settings.db.app_database_url
    )
    resources.background.append(driver)

    @router.handle(AUTOPILOT_START)
    async def _start(
        ctx: CommandContext, request: AutopilotStartRequest
    ) -> Outcome[AutopilotStartResponse]:
        return await start(ctx, request, settings)

    @router.handle(AUTOPILOT_CONTROL)
    async def _control(
        ctx: CommandContext, request: AutopilotControlRequest
    ) -> Outcome[AutopilotControlResponse]:
        return await control(ctx, request, settings)

    @router.handle(AUTOPILOT_ANSWER)
    async def _answer(
        ctx: CommandContext, request: AutopilotAnswerRequest
    ) -> Outcome[AutopilotAnswerResponse]:
        return await answer(ctx, request, settings, calls)
