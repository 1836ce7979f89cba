"""The driver: carries the autopilot runs this replica holds a lease on.

For each held run, one task loops: read :func:`~services.autopilot.domain.next_action`, do
it (a tutor or quiz command, a learner read, a timer), then record the outcome with
:func:`~services.autopilot.domain.apply` in one transaction that also checks the lease
(owner, fencing token, expiry), appends the new steps and writes their events to the outbox.
Nothing is acted on before the step before it is stored, so:

- a replica killed at any moment loses nothing: its leases expire, another replica claims
  them (bumping the token, so the dead one could not write even if it came back), reads the
  stored run and is given the same action with the same key;
- it repeats nothing: a stored step is never redone (the outcome of a recorded action is a
  duplicate), and a command already sent is answered from the ``requests`` table or the
  other service's inbox (:mod:`services.autopilot.calls`), so no model call is paid twice.

Timers are study-time instants in the stored run (the answer deadline, or while an answer
is being graded the end of the wait for its grade; the session's end);
the task sleeps until the earlier one, and a ``NOTIFY autopilot_wake`` (sent by every write
of a run: an answer, a pause, a stop) wakes it at once. The lease loop renews held leases,
drops runs whose lease was lost, and claims free or expired ones (on start-up, every
``lease_poll_s``, and when a notification names a run nobody here holds).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg

from exammentor.contracts.autopilot import LearnerSnapshot
from exammentor.contracts.commands import EXPIRED
from exammentor.contracts.envelope import EventEnvelope
from exammentor.contracts.events import DomainEvent
from exammentor.contracts.quiz import (
    DIAGNOSIS_FAILED,
    MAX_CONTEXT_CHARS,
    QUIZ_DIAGNOSE,
    QUIZ_GENERATE,
    QUIZ_GRADE,
    QUIZ_UNAVAILABLE,
    EvaluateAnswerRequest,
    GenerateQuizRequest,
    MisconceptionRequest,
)
from exammentor.contracts.tutor import ANSWER_UNUSABLE, MODEL_FAILED, TUTOR_LESSON, LessonRequest
from exammentor.db import Pool, system_transaction, user_transaction
from exammentor.logs import bind_ids, get_logger
from exammentor.messaging.outbox import add_event
from exammentor.read_models import quiz as quiz_reads
from services.autopilot import repo
from services.autopilot.calls import CallFailed, StudyCalls
from services.autopilot.domain import (
    ActionFailed,
    AnswerDiagnosed,
    AnswerTimedOut,
    AutopilotRun,
    AwaitAnswer,
    DiagnoseAnswer,
    DriverAction,
    DriverOutcome,
    FinishRun,
    GenerateQuiz,
    Idle,
    LearnerRead,
    LessonSkipped,
    LessonTaught,
    MasteryUpdated,
    OutcomeRejected,
    QuizGenerated,
    QuizQuestion,
    QuizSkipped,
    ReadLearner,
    RunFinished,
    TeachLesson,
    UpdateMastery,
    apply,
    next_action,
)
from services.autopilot.events import run_events
from services.autopilot.settings import AutopilotSettings

log = get_logger(__name__)

MAX_FOCUS_CHARS = 500
EMPTY_LESSON = "(the tutor sent an empty lesson on {topic})"
_LESSON_SKIPPABLE = frozenset({ANSWER_UNUSABLE.code, MODEL_FAILED.code, EXPIRED.code})
"""Lesson errors after which the run goes on without the lesson (it is recorded skipped)."""
_QUIZ_SKIPPABLE = frozenset({QUIZ_UNAVAILABLE.code, EXPIRED.code})
"""Quiz errors after which the run goes on to another topic (the quiz is recorded skipped)."""
"""What the run records for an empty lesson; never a source to build questions from."""


def utcnow() -> dt.datetime:
    """The driver's clock (UTC)."""
    return dt.datetime.now(dt.UTC)


class LeaseLost(Exception):
    """The run's lease is no longer this replica's: another driver carries it on."""


@dataclass
class _Held:
    lease: repo.Lease
    task: asyncio.Task[None] | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class DriverStats:
    """What the driver did, for tests and the benchmark."""

    steps: int = 0
    step_latencies_ms: list[float] = field(default_factory=list)
    """Per tutor or quiz action: from the action being read to its step stored (the call,
    its result's relay, and the write)."""
    write_latencies_ms: list[float] = field(default_factory=list)
    """Per recorded outcome: the fenced write of the step alone."""
    claimed: int = 0


class AutopilotDriver:
    """One replica's driver (a worker :class:`~exammentor.worker.BackgroundService`)."""

    def __init__(
        self,
        pool: Pool,
        calls: StudyCalls,
        settings: AutopilotSettings,
        *,
        listen_dsn: str,
    ) -> None:
        self._pool = pool
        self._calls = calls
        self._settings = settings
        self._prefix = settings.kafka.topic_prefix
        self._listen_dsn = listen_dsn
        self.owner = settings.replica_name or (
            f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        )
        self._held: dict[UUID, _Held] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._claim_now = asyncio.Event()
        self._listener: asyncpg.Connection[Any] | None = None
        self.stats = DriverStats()

    @property
    def held(self) -> set[UUID]:
        """Sessions whose run this replica drives now."""
        return set(self._held)

    async def start(self) -> None:
        """Listens for wake-ups and starts the lease loop (which claims at once)."""
        self._listener = await asyncpg.connect(self._listen_dsn)
        await self._listener.add_listener(repo.WAKE_CHANNEL, self._on_notify)
        self._loop_task = asyncio.create_task(self._lease_loop(), name="autopilot-leases")

    async def stop(self) -> None:
        """Stops driving and gives the leases back, so another replica carries on at once."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        held = list(self._held.values())
        for entry in held:
            if entry.task is not None:
                entry.task.cancel()
        for entry in held:
            if entry.task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await entry.task
        self._held.clear()
        if held:
            try:
                async with system_transaction(self._pool) as conn:
                    await repo.release_leases(conn, self.owner, [h.lease for h in held])
            except (OSError, asyncpg.PostgresError):
                log.exception("could not give leases back; they expire instead")
        if self._listener is not None:
            await self._listener.close()
            self._listener = None

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        try:
            session_id = UUID(str(payload))
        except ValueError:
            return
        entry = self._held.get(session_id)
        if entry is not None:
            entry.wake.set()
        else:
            self._claim_now.set()

    # ---- leases ---------------------------------------------------------------------------

    async def _lease_loop(self) -> None:
        s = self._settings
        while True:
            try:
                await self._renew_and_claim()
            except (OSError, asyncpg.PostgresError):
                log.exception("lease loop failed; trying again")
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation
            # that arrives as the event is set, and the loop then never stops (it hung a
            # test's teardown with the task "cancelling" forever).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(s.lease_poll_s):
                    await self._claim_now.wait()
            self._claim_now.clear()

    async def _renew_and_claim(self) -> None:
        s = self._settings
        async with system_transaction(self._pool) as conn:
            kept = await repo.renew_leases(
                conn, self.owner, s.lease_ttl_s, [h.lease for h in self._held.values()]
            )
        for session_id, entry in list(self._held.items()):
            if session_id not in kept:
                log.warning("lease lost; another replica carries the run", session=session_id)
                self._drop(session_id, entry)
        async with system_transaction(self._pool) as conn:
            claimed = await repo.claim_leases(
                conn, self.owner, s.lease_ttl_s, s.max_sessions - len(self._held)
            )
        for lease in claimed:
            self.stats.claimed += 1
            entry = _Held(lease)
            self._held[lease.session_id] = entry
            entry.task = asyncio.create_task(self._run(entry), name=f"autopilot-{lease.session_id}")

    def _drop(self, session_id: UUID, entry: _Held) -> None:
        if self._held.get(session_id) is entry:
            del self._held[session_id]
        if entry.task is not None and entry.task is not asyncio.current_task():
            entry.task.cancel()

    # ---- one run --------------------------------------------------------------------------

    async def _run(self, entry: _Held) -> None:
        lease = entry.lease
        with bind_ids(session_id=str(lease.session_id), user_id=str(lease.user_id)):
            try:
                await self._drive(entry)
            except LeaseLost:
                log.info("lease lost while driving; stopping here")
            except asyncio.CancelledError:
                raise
            except Exception:
                # The lease expires and a replica (maybe this one) takes the run up again.
                log.exception("driving the run failed")
            finally:
                self._drop(lease.session_id, entry)

    async def _load(self, entry: _Held, cached: repo.StoredRun | None) -> repo.StoredRun:
        async with user_transaction(self._pool, entry.lease.user_id) as conn:
            stored = await repo.latest_run(conn, entry.lease.session_id, cached=cached)
        if stored is None or stored.run.run_number != entry.lease.run_number:
            raise LeaseLost("the run is not the leased one any more")
        return stored

    async def _drive(self, entry: _Held) -> None:
        stored = await self._load(entry, None)
        while True:
            entry.wake.clear()
            run = stored.run
            action = next_action(run, utcnow())
            if isinstance(action, Idle):
                if run.is_finished:
                    return
                await entry.wake.wait()  # paused: a resume or a stop wakes us
                stored = await self._load(entry, stored)
                continue
            if isinstance(action, AwaitAnswer):
                outcome = await self._await_answer(entry, action)
                if outcome is None:
                    stored = await self._load(entry, stored)
                    continue
            elif isinstance(action, FinishRun):
                outcome = RunFinished(action_id=action.action_id)
            else:
                began = time.perf_counter()
                found = await self._perform_interruptibly(entry, stored, action)
                if found is None:  # stopped (or the run moved on) while the call ran
                    stored = await self._load(entry, stored)
                    continue
                stored = await self._record(entry, stored, found)
                self.stats.step_latencies_ms.append((time.perf_counter() - began) * 1000)
                continue
            stored = await self._record(entry, stored, outcome)

    async def _await_answer(self, entry: _Held, action: AwaitAnswer) -> DriverOutcome | None:
        """Sleeps until the wait's end or a wake-up; the timeout outcome, or None to look
        again (an answer, a pause or a stop arrived, or the session's time ran out)."""
        delay = (action.until - utcnow()).total_seconds()
        if delay > 0:
            try:
                async with asyncio.timeout(delay):  # not wait_for: see _lease_loop
                    await entry.wake.wait()
                return None
            except TimeoutError:
                pass
        if action.until < action.answer_deadline:
            return None  # the session's time is up first: next_action says what now
        return AnswerTimedOut(action_id=action.action_id, question_id=action.question.id)

    async def _perform_interruptibly(
        self, entry: _Held, stored: repo.StoredRun, action: DriverAction
    ) -> DriverOutcome | None:
        """Runs the action's call; a stop ends the wait at once (its result is not needed),
        a pause does not (the call is paid for; its outcome is recorded while paused)."""
        call = asyncio.create_task(self._perform(stored.run, stored.user_id, action))
        try:
            while True:
                waker = asyncio.create_task(entry.wake.wait())
                done, _ = await asyncio.wait({call, waker}, return_when=asyncio.FIRST_COMPLETED)
                if call in done:
                    waker.cancel()
                    return call.result()
                entry.wake.clear()
                fresh = await self._load(entry, stored)
                if fresh.run.is_finished:
                    call.cancel()
                    return None
        finally:
            if not call.done():
                call.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await call

    async def _perform(
        self, run: AutopilotRun, user_id: UUID, action: DriverAction
    ) -> DriverOutcome:
        started = time.perf_counter()
        try:
            outcome = await self._outcome_of(run, user_id, action)
        except CallFailed as exc:
            outcome = ActionFailed(action_id=action.action_id, error=str(exc))
        duration_ms = int((time.perf_counter() - started) * 1000)
        return outcome.model_copy(update={"duration_ms": duration_ms})

    async def _outcome_of(
        self, run: AutopilotRun, user_id: UUID, action: DriverAction
    ) -> DriverOutcome:
        session_id = run.session_id
        match action:
            case ReadLearner():
                snapshot = await self._learner(user_id, action.topics)
                return LearnerRead(
                    action_id=action.action_id,
                    mastery=snapshot.mastery,
                    reviews_due=snapshot.reviews_due,
                    misconceptions=snapshot.misconceptions,
                )
            case TeachLesson():
                try:
                    lesson = await self._calls.call(
                        TUTOR_LESSON,
                        user_id,
                        LessonRequest(
                            topic=action.topic,
                            focus=lesson_focus(action),
                            target_words=self._settings.lesson_words,
                        ),
                        key=action.key,
                        session_id=session_id,
                    )
                except CallFailed as exc:
                    if exc.code not in _LESSON_SKIPPABLE:
                        raise
                    # Every round looped or copied and nothing could be quoted, or the model
                    # (shared by every run) gave no lesson in time: the student is better
                    # served by the next lesson or the quiz than by a failed run.
                    return LessonSkipped(action_id=action.action_id, reason=exc.message or exc.code)
                content = lesson.markdown.strip() or EMPTY_LESSON.format(topic=action.topic)
                return LessonTaught(action_id=action.action_id, content=content)
            case GenerateQuiz():
                try:
                    quiz = await self._calls.call(
                        QUIZ_GENERATE,
                        user_id,
                        GenerateQuizRequest(
                            topic=action.topic,
                            num_questions=action.question_count,
                            difficulty=action.difficulty,
                            previous_mistakes=action.misconceptions or None,
                            lesson=lesson_source(action.lessons),
                        ),
                        key=action.key,
                        session_id=session_id,
                    )
                except CallFailed as exc:
                    if exc.code not in _QUIZ_SKIPPABLE:
                        raise
                    # Neither the model nor the lessons' text gave a question, or the quiz
                    # was not written in time: the run goes on to another topic rather than
                    # ending over one quiz.
                    return QuizSkipped(action_id=action.action_id, reason=exc.message or exc.code)
                questions = [
                    QuizQuestion(
                        id=q.id,
                        text=q.text,
                        question_type=q.question_type,
                        options=list(q.options),
                        difficulty=q.difficulty
                        if q.difficulty in ("easy", "medium", "hard")
                        else "medium",
                        concept_tested=q.concept_tested,
                        source=q.source,
                        page=q.page,
                    )
                    for q in quiz.questions
                    if len(q.options) >= 2
                ]
                if not questions:
                    return QuizSkipped(
                        action_id=action.action_id,
                        reason=f"no question with options on {action.topic}: "
                        f"{quiz.shortfall_reason or 'only fill-in-the-blank questions'}",
                    )
                return QuizGenerated(action_id=action.action_id, questions=questions)
            case DiagnoseAnswer():
                try:
                    diagnosis = await self._calls.call(
                        QUIZ_DIAGNOSE,
                        user_id,
                        MisconceptionRequest(
                            question_id=action.question.id,
                            student_answer_index=action.answer_index,
                        ),
                        key=action.key,
                        session_id=session_id,
                    )
                except CallFailed as exc:
                    if exc.code != DIAGNOSIS_FAILED.code:
                        raise
                    # The model wrote no valid diagnosis: the answer is graded all the same,
                    # so the session goes on rather than ending over it.
                    return AnswerDiagnosed(
                        action_id=action.action_id,
                        question_id=action.question.id,
                        unavailable=exc.message or exc.code,
                    )
                misconception = diagnosis.inferred_confusion.strip() or "unclear confusion"
                return AnswerDiagnosed(
                    action_id=action.action_id,
                    question_id=action.question.id,
                    misconception=misconception,
                )
            case UpdateMastery():
                # Answers were graded (and logged) as they came; skips are logged here, so
                # the learner model hears of every question asked.
                for answer in action.answers:
                    if answer.result == "skipped":
                        await self._calls.call(
                            QUIZ_GRADE,
                            user_id,
                            EvaluateAnswerRequest(question_id=answer.question_id),
                            key=f"{action.key}:skip:{answer.question_id}",
                            session_id=session_id,
                        )
                snapshot = await self._learner(user_id, [action.topic])
                return MasteryUpdated(
                    action_id=action.action_id,
                    topic=action.topic,
                    score=snapshot.mastery.get(action.topic, run.mastery_of(action.topic).score),
                    next_review_at=snapshot.reviews_due.get(action.topic),
                )
            case _:
                raise AssertionError(f"not a call: {action.kind}")

    async def _learner(self, user_id: UUID, topics: list[str]) -> LearnerSnapshot:
        async with user_transaction(self._pool, user_id) as conn:
            return await quiz_reads.learner_snapshot(conn, topics)

    async def _record(
        self, entry: _Held, stored: repo.StoredRun, outcome: DriverOutcome
    ) -> repo.StoredRun:
        """Applies ``outcome`` to the stored run under the lease, in one transaction with
        its steps and events; the run as stored afterwards."""
        known = time.perf_counter()
        now = utcnow()
        async with user_transaction(self._pool, entry.lease.user_id) as conn:
            if not await repo.hold_lease(conn, self.owner, entry.lease):
                raise LeaseLost(str(entry.lease.session_id))
            fresh = await repo.latest_run(conn, entry.lease.session_id, lock=True, cached=stored)
            if fresh is None or fresh.run.run_number != entry.lease.run_number:
                raise LeaseLost(str(entry.lease.session_id))
            try:
                applied = apply(fresh.run, outcome, now)
            except OutcomeRejected as exc:
                log.info("outcome not taken; reading the run again", reason=str(exc))
                return fresh
            if not applied.new_steps:
                return fresh
            saved = await repo.save_run(conn, fresh, applied.run, applied.new_steps, now)
            for event in run_events(applied.run, applied.new_steps):
                await add_event(conn, self._prefix, _envelope(applied.run, fresh.user_id, event))
        self.stats.steps += len(applied.new_steps)
        self.stats.write_latencies_ms.append((time.perf_counter() - known) * 1000)
        return saved


def _envelope(run: AutopilotRun, user_id: UUID, event: DomainEvent) -> EventEnvelope:
    return EventEnvelope(
        type=event.TYPE,
        version=event.VERSION,
        user_id=user_id,
        session_id=run.session_id,
        payload=event.model_dump(mode="json"),
    )


def lesson_focus(action: TeachLesson) -> str:
    """What the tutor's lesson concentrates on: its place in the topic's lessons, the exam,
    and (after the first) the previous lesson's opening, so it builds on it."""
    focus = f"micro-lesson {action.lesson_number} of {action.lessons_total}"
    if action.exam_type:
        focus += f" for the {action.exam_type} exam"
    if action.previous_lessons:
        opening = " ".join(action.previous_lessons[-1].split())[:200]
        focus += f"; go beyond the previous lesson, which began: {opening}"
    return focus[:MAX_FOCUS_CHARS]


def lesson_source(lessons: list[str]) -> str:
    """The lessons' text the quiz may build questions from: every lesson of the topic that
    was taught (not the empty-lesson note), cut to what a request holds.

    The tutor stores only lessons that pass its loop detector; the quiz checks each sentence
    again (one that loops, or a fragment, never becomes a question), so a lesson whose tail
    loops still gives its clean sentences and nothing of the loop.

    Args:
        lessons: The topic's lessons in this loop, in order.

    Returns:
        The text ('' when no lesson qualifies).
    """
    kept = [
        text
        for text in lessons
        if text.strip() and not text.startswith(EMPTY_LESSON.split("{", 1)[0])
    ]
    return "\n\n".join(kept)[:MAX_CONTEXT_CHARS]
