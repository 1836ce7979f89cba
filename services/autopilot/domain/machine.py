"""The autopilot run as a pure state machine: :func:`start_run`, :func:`next_action` and
:func:`apply`. Time is passed in; nothing here reads a clock, a database or a broker.

The loop: choose a topic (read the learner model, :func:`choose_topic` in code), teach
``lessons_per_topic`` lessons, generate a quiz of ``questions_per_quiz`` questions, wait for
each answer, diagnose each wrong answer, update mastery, choose again; until the study time
is up (:class:`FinishRun`) or every topic is mastered.

Rules the machine keeps:

- **Steps**: every recorded change appends one :class:`AutopilotStep` numbered from 1
  without gaps, carrying the status and phase it left the run in.
- **Idempotent**: a driver outcome names its action; one whose action is already recorded is
  a redelivery, reported as :attr:`Applied.duplicate` and changing nothing. One that arrives
  after the run ended changes nothing either (:attr:`Applied.ignored`).
- **Control acts at once**: pause and stop change the status in the same call, in any phase,
  an answer wait or a lesson included. Study time and the answer wait count running time
  only, so a pause freezes both and a resume continues the same question with the time it
  had left. Outcomes of calls made before a pause are still recorded while paused; nothing
  new starts until the resume. A stopped run says ``stopped``, a finished one ``completed``.
- **Answers are keyed by question id**: an answer with no question waiting, another
  question's id, an index out of range, or after the wait ended is refused with the reason
  (:class:`AnswerRefused`) and the run is unchanged. A wait that times out is ``skipped``,
  never graded and never diagnosed.
- **An answer in time is never lost to slow grading**: an answer the quiz service grades is
  first taken as received (:class:`AnswerReceived`: the same checks, its arrival in study
  time kept as the run's pending answer, no step yet), then graded (:class:`AnswerGiven`).
  While an answer is pending the answer window does not end the wait, nor does the end of
  the study time: the wait ends with the grade, or after ``grading_timeout_seconds`` of
  study time from the arrival with a ``skip`` step that names the answer and says it was
  never graded, so the run never hangs on a grade. Taking the same answer again changes
  nothing (a redelivered command); another option for the same question is refused. A grade
  that arrives while paused is recorded; one that arrives after a stop is left out quietly.
- **Every topic ends assessed**: before a further lesson on a topic, the study time left is
  weighed against what a lesson and a quiz have taken in this run (the mean of their
  recorded durations; the policy's estimate before there is one) plus the answer window;
  when a further lesson would leave no time to answer the quiz, the quiz comes now and the
  lesson's step says why.
- **A quiz that cannot be made is skipped**: the quiz is asked with the topic's lessons as
  source text; when even that gives no question (:class:`QuizSkipped`), a ``quiz_skipped``
  step says why and the run chooses another topic (the skipped one is not chosen again in
  this run), instead of ending ``failed``.
- **Time up mid-quiz**: answers already given still reach the learner model (one
  :class:`UpdateMastery`) before the run completes; no new lesson, question or diagnosis
  starts.
- **Pure**: the state passed in is never changed; each call returns a new one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from uuid import UUID

from pydantic import JsonValue

from exammentor.contracts.autopilot import (
    AutopilotStartRequest,
    AutopilotStatus,
    AutopilotStep,
    StepAction,
    TopicMastery,
    topic_key,
)
from services.autopilot.domain.actions import (
    AwaitAnswer,
    DiagnoseAnswer,
    DriverAction,
    FinishRun,
    GenerateQuiz,
    Idle,
    ReadLearner,
    TeachLesson,
    UpdateMastery,
)
from services.autopilot.domain.errors import (
    AnswerRefused,
    ControlRefused,
    OutcomeRejected,
    RunActiveError,
)
from services.autopilot.domain.outcomes import (
    ActionFailed,
    AnswerDiagnosed,
    AnswerGiven,
    AnswerReceived,
    AnswerTimedOut,
    DriverOutcome,
    LearnerRead,
    LessonSkipped,
    LessonTaught,
    MasteryUpdated,
    PauseRequested,
    QuizGenerated,
    QuizSkipped,
    ResumeRequested,
    RunFinished,
    StopRequested,
    StudentOutcome,
)
from services.autopilot.domain.policy import DEFAULT_POLICY, AutopilotPolicy
from services.autopilot.domain.state import (
    AutopilotRun,
    GradedAnswer,
    PendingAnswer,
    QuizQuestion,
)
from services.autopilot.domain.topics import choose_topic, direct_prerequisites, study_topics

# The action each phase calls for while there is study time left.
_PHASE_ACTIONS: dict[str, str] = {
    "choosing_topic": "read_learner",
    "teaching": "teach_lesson",
    "quizzing": "generate_quiz",
    "awaiting_answer": "await_answer",
    "diagnosing": "diagnose_answer",
    "updating_mastery": "update_mastery",
    "finished": "finish_run",
}
# Outcomes that answer a kind of driver action besides its own (_ANSWERS).
_ALTERNATIVES: dict[str, frozenset[str]] = {
    "teach_lesson": frozenset({"lesson_skipped"}),
    "generate_quiz": frozenset({"quiz_skipped"}),
}
# The outcome that answers each kind of driver action.
_ANSWERS: dict[str, str] = {
    "read_learner": "learner_read",
    "teach_lesson": "lesson_taught",
    "generate_quiz": "quiz_generated",
    "await_answer": "answer_timed_out",
    "diagnose_answer": "answer_diagnosed",
    "update_mastery": "mastery_updated",
    "finish_run": "run_finished",
}


@dataclass(frozen=True)
class Applied:
    """What :func:`apply` made of an outcome.

    Attributes:
        run: The run after the outcome (the same value when nothing changed).
        new_steps: The steps the outcome added, to store and stream.
        duplicate: The outcome's action was already recorded: a redelivery.
        ignored: Why the outcome changed nothing, when it did not.
    """

    run: AutopilotRun
    new_steps: tuple[AutopilotStep, ...]
    duplicate: bool = False
    ignored: str | None = None


def _require_aware(now: dt.datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")


def _clock(ms: int) -> str:
    """Study time as ``m:ss``."""
    seconds = ms // 1000
    return f"{seconds // 60}:{seconds % 60:02d}"


def _record(
    run: AutopilotRun,
    now: dt.datetime,
    action: StepAction,
    reasoning: str,
    data: dict[str, JsonValue] | None = None,
    *,
    duration_ms: int = 0,
) -> None:
    run.steps.append(
        AutopilotStep(
            number=len(run.steps) + 1,
            timestamp=now,
            action=action,
            data=data or {},
            reasoning=reasoning,
            duration_ms=duration_ms,
            status=run.status,
            phase=run.phase,
        )
    )


def start_run(
    request: AutopilotStartRequest,
    *,
    session_id: UUID,
    now: dt.datetime,
    previous: AutopilotRun | None = None,
    weights: Mapping[str, float] | None = None,
    prerequisites: Sequence[tuple[str, str]] | None = None,
    policy: AutopilotPolicy = DEFAULT_POLICY,
) -> AutopilotRun:
    """Start a run of a session's autopilot.

    Args:
        request: The validated start request.
        session_id: The session the run belongs to.
        now: The start time (timezone-aware).
        previous: The session's latest run, if any. A finished one is history the caller
            keeps; the new run is the next number, with fresh steps and mastery.
        weights: Topic name -> weight (for example the registry's).
        prerequisites: ``(prerequisite, topic)`` pairs; ``None`` uses the plan's order.
        policy: The rules the run keeps to the end.

    Returns:
        The running run, its first step ``start`` recorded, waiting to choose a topic.

    Raises:
        RunActiveError: ``previous`` is still running or paused (the handler answers 400).
        RunSetupError: The plan has no topics, a focus topic is not in it, a weight is not
            positive or the prerequisites go round in a circle.
    """
    _require_aware(now)
    if previous is not None and previous.session_id != session_id:
        raise ValueError(f"run {previous.run_number} belongs to another session")
    if previous is not None and not previous.is_finished:
        raise RunActiveError(previous.status, previous.run_number)
    topics = study_topics(
        request.study_plan, focus_topics=request.focus_topics, weights=weights, policy=policy
    )
    direct_prerequisites(topics, prerequisites)  # refuses a cycle before anything starts
    run = AutopilotRun(
        session_id=session_id,
        run_number=previous.run_number + 1 if previous is not None else 1,
        exam_type=request.exam_type,
        exam_date=request.exam_date,
        target_duration_minutes=request.duration_minutes,
        policy=policy,
        topics=topics,
        prerequisites=None if prerequisites is None else [tuple(p) for p in prerequisites],
        status="running",
        phase="choosing_topic",
        started_at=now,
        running_since=now,
        mastery=[TopicMastery(topic=t.name, score=policy.prior_mastery) for t in topics],
    )
    order = (
        "the plan's order" if prerequisites is None else f"{len(prerequisites)} prerequisite pairs"
    )
    scope = "focus topics" if request.focus_topics is not None else "plan topics"
    _record(
        run,
        now,
        "start",
        f"run {run.run_number}: {request.duration_minutes} min of study over {len(topics)} "
        f"{scope}; prerequisites from {order}",
        {
            "run_number": run.run_number,
            "target_duration_minutes": request.duration_minutes,
            "topics": [t.name for t in topics],
            "exam_date": None if request.exam_date is None else request.exam_date.isoformat(),
        },
    )
    return run


def next_action(state: AutopilotRun, now: dt.datetime) -> DriverAction | Idle:
    """What the driver should do next.

    Args:
        state: The run.
        now: The current time (timezone-aware).

    Returns:
        The action; :class:`Idle` while paused or after the run ended. The same state and
        time always give the same action, id and key.
    """
    _require_aware(now)
    if state.is_finished:
        return Idle(reason=f"the run is {state.status}")
    if state.status == "paused":
        return Idle(reason="the run is paused; nothing starts until it is resumed")
    return _due_action(state, now)


def _due_kind(state: AutopilotRun, now: dt.datetime) -> str:
    """The kind of action the run calls for, the study time considered; status ignored."""
    if state.pending is not None:
        return "await_answer"  # an answer given in time waits for its grade, time up or not
    if state.time_up(now):
        if state.answers and state.phase in ("awaiting_answer", "diagnosing", "updating_mastery"):
            return "update_mastery"
        return "finish_run"
    return _PHASE_ACTIONS[state.phase]


def _due_action(state: AutopilotRun, now: dt.datetime) -> DriverAction:
    """The action :func:`_due_kind` names, for a running run."""
    action_id = state.next_action_id
    key = f"autopilot:{state.session_id}:{state.run_number}:{action_id}"
    topic = state.current_topic or ""
    kind = _due_kind(state, now)
    if kind == "update_mastery":
        return _update_mastery(state, action_id, key)
    if kind == "finish_run":
        return FinishRun(
            action_id=action_id,
            key=key,
            reason=f"time is up: {_clock(state.elapsed_ms(now))} of study in "
            f"{state.target_duration_minutes} min",
        )
    match state.phase:
        case "teaching":
            return TeachLesson(
                action_id=action_id,
                key=key,
                topic=topic,
                exam_type=state.exam_type,
                lesson_number=len(state.lessons) + state.lessons_skipped + 1,
                lessons_total=state.policy.lessons_per_topic,
                previous_lessons=list(state.lessons),
            )
        case "quizzing":
            return GenerateQuiz(
                action_id=action_id,
                key=key,
                topic=topic,
                exam_type=state.exam_type,
                question_count=state.policy.questions_per_quiz,
                difficulty=state.policy.difficulty_for(state.mastery_of(topic).score),
                misconceptions=_targets(state, topic),
                lessons=list(state.lessons),
            )
        case "awaiting_answer":
            question = state.waiting_question
            due_ms = state.wait_due_ms
            assert question is not None
            assert due_ms is not None
            answer_deadline = state.wall_time_at(due_ms)
            session_deadline = state.wall_time_at(state.target_ms)
            assert answer_deadline is not None
            assert session_deadline is not None
            grading = state.pending is not None
            return AwaitAnswer(
                action_id=action_id,
                key=key,
                question=question.view(),
                question_number=len(state.answers) + 1,
                questions_total=len(state.quiz),
                answer_deadline=answer_deadline,
                # A pending answer's grade is waited for past the session's end.
                until=answer_deadline if grading else min(answer_deadline, session_deadline),
                grading=grading,
            )
        case "diagnosing":
            answer = _wrong_answers(state)[state.diagnosed]
            assert answer.answer_index is not None
            return DiagnoseAnswer(
                action_id=action_id,
                key=key,
                topic=topic,
                question=_question(state, answer.question_id),
                answer_index=answer.answer_index,
            )
        case _:
            return ReadLearner(action_id=action_id, key=key, topics=[t.name for t in state.topics])


def _update_mastery(state: AutopilotRun, action_id: int, key: str) -> UpdateMastery:
    asked = {answer.question_id for answer in state.answers}
    return UpdateMastery(
        action_id=action_id,
        key=key,
        topic=state.current_topic or "",
        questions=[q for q in state.quiz if q.id in asked],
        answers=list(state.answers),
    )


def _targets(state: AutopilotRun, topic: str) -> list[str]:
    """The topic's newest open misconceptions, for the quiz to aim at."""
    return state.mastery_of(topic).misconceptions[: state.policy.misconceptions_per_quiz]


def _wrong_answers(state: AutopilotRun) -> list[GradedAnswer]:
    return [answer for answer in state.answers if answer.result == "wrong"]


def _question(state: AutopilotRun, question_id: str) -> QuizQuestion:
    return next(q for q in state.quiz if q.id == question_id)


def apply(
    state: AutopilotRun, outcome: DriverOutcome | StudentOutcome, now: dt.datetime
) -> Applied:
    """Record what happened.

    Args:
        state: The run (left unchanged).
        outcome: A driver's outcome, or the student's answer, pause, resume or stop.
        now: When it happened (timezone-aware); the steps carry it.

    Returns:
        The new run and the steps added; a redelivered or late driver outcome changes
        nothing and says so.

    Raises:
        AnswerRefused: An answer that does not fit the waiting question (a 400).
        ControlRefused: Pause when not running, resume when not paused, stop when over.
        OutcomeRejected: A driver outcome that does not answer the action the run waits for.
    """
    _require_aware(now)
    if isinstance(outcome, AnswerReceived | AnswerGiven):
        pending = state.pending_answer
        same = (
            pending is not None
            and pending.question_id == outcome.question_id
            and pending.answer_index == outcome.answer_index
        )
        if same and isinstance(outcome, AnswerReceived) and state.pending is not None:
            return Applied(
                run=state,
                new_steps=(),
                duplicate=True,
                ignored=f"the answer to question {outcome.question_id} is already received",
            )
        if same and state.is_finished:
            return Applied(
                run=state,
                new_steps=(),
                ignored=f"the run is {state.status}; the grade of question "
                f"{outcome.question_id} came after it ended",
            )
    if isinstance(
        outcome,
        AnswerGiven | AnswerReceived | PauseRequested | ResumeRequested | StopRequested,
    ):
        run = _fork(state)
        _apply_student(run, outcome, now)
        return Applied(run=run, new_steps=tuple(run.steps[len(state.steps) :]))
    if outcome.action_id < state.next_action_id:
        return Applied(
            run=state,
            new_steps=(),
            duplicate=True,
            ignored=f"action {outcome.action_id} is already recorded (a redelivery)",
        )
    if state.is_finished:
        return Applied(
            run=state,
            new_steps=(),
            ignored=f"the run is {state.status}; the outcome of action {outcome.action_id} "
            "is not recorded",
        )
    _check_expected(state, outcome, now)
    run = _fork(state)
    run.actions_resolved += 1
    _apply_driver(run, outcome, now)
    # The step names its action, so a store can key steps by action as well as by number.
    run.steps[-1].data["action_id"] = outcome.action_id
    return Applied(run=run, new_steps=tuple(run.steps[len(state.steps) :]))


def _fork(state: AutopilotRun) -> AutopilotRun:
    """A copy of the run that the machine may change without touching ``state``.

    Steps, questions and answers are never changed once recorded, so the lists are copied
    and their items shared; a deep copy of the whole log on every step would cost time in
    proportion to the run's length.
    """
    run = state.model_copy()
    run.steps = list(state.steps)
    run.lessons = list(state.lessons)
    run.quiz = list(state.quiz)
    run.answers = list(state.answers)
    run.mastery = [entry.model_copy(deep=True) for entry in state.mastery]
    run.reviews_due = dict(state.reviews_due)
    run.topics_completed = list(state.topics_completed)
    run.topics_skipped = list(state.topics_skipped)
    return run


def _check_expected(state: AutopilotRun, outcome: DriverOutcome, now: dt.datetime) -> None:
    expected = state.next_action_id
    if outcome.action_id > expected:
        raise OutcomeRejected(
            f"action {outcome.action_id} was never given; the run waits for action {expected}",
            action_id=outcome.action_id,
            expected_action_id=expected,
        )
    if isinstance(outcome, ActionFailed):
        return
    # The phase's own outcome is taken even after the time ran out: a call made before is
    # paid for and worth keeping. The time-up action's outcome is taken once it is due.
    phase_action = _PHASE_ACTIONS[state.phase]
    fitting = {
        _ANSWERS[phase_action],
        _ANSWERS[_due_kind(state, now)],
        *_ALTERNATIVES.get(phase_action, ()),
    }
    if outcome.kind not in fitting:
        raise OutcomeRejected(
            f"in phase {state.phase} the run waits for {' or '.join(sorted(fitting))}, "
            f"not {outcome.kind}",
            action_id=outcome.action_id,
            expected_action_id=expected,
        )
    if isinstance(outcome, AnswerTimedOut):
        waiting = state.waiting_question
        due_ms = state.wait_due_ms
        assert waiting is not None
        assert due_ms is not None
        if outcome.question_id != waiting.id:
            raise OutcomeRejected(
                f"question {waiting.id} is waiting, not {outcome.question_id}",
                action_id=outcome.action_id,
                expected_action_id=expected,
            )
        if state.elapsed_ms(now) < due_ms:
            left = (due_ms - state.elapsed_ms(now)) / 1000
            raise OutcomeRejected(
                f"question {waiting.id} still has {left:g} s of its wait left",
                action_id=outcome.action_id,
                expected_action_id=expected,
            )
    if isinstance(outcome, AnswerDiagnosed):
        answer = _wrong_answers(state)[state.diagnosed]
        if outcome.question_id != answer.question_id:
            raise OutcomeRejected(
                f"the diagnosis due is of question {answer.question_id}, not {outcome.question_id}",
                action_id=outcome.action_id,
                expected_action_id=expected,
            )
    if isinstance(outcome, MasteryUpdated) and topic_key(outcome.topic) != topic_key(
        state.current_topic or ""
    ):
        raise OutcomeRejected(
            f"the quiz was on {state.current_topic}, not {outcome.topic}",
            action_id=outcome.action_id,
            expected_action_id=expected,
        )


def _end(run: AutopilotRun, now: dt.datetime, status: AutopilotStatus, reason: str) -> None:
    run.elapsed_before_ms = run.elapsed_ms(now)
    run.running_since = None
    run.status = status
    run.phase = "finished"
    run.completed_at = now
    run.end_reason = reason
    run.wait_started_ms = None


def _apply_student(run: AutopilotRun, outcome: StudentOutcome, now: dt.datetime) -> None:
    if isinstance(outcome, PauseRequested):
        if run.status != "running":
            raise ControlRefused("pause", run.status, "running")
        run.elapsed_before_ms = run.elapsed_ms(now)
        run.running_since = None
        run.status = "paused"
        data: dict[str, JsonValue] = {"elapsed_ms": run.elapsed_before_ms}
        reasoning = f"paused at {_clock(run.elapsed_before_ms)} of study; the clock stops"
        waiting, due_ms = run.waiting_question, run.answer_due_ms
        if waiting is not None and due_ms is not None:
            left_ms = max(0, due_ms - run.elapsed_before_ms)
            data |= {"question_id": waiting.id, "answer_ms_left": left_ms}
            reasoning += f"; question {waiting.id} keeps {left_ms / 1000:g} s of its wait"
        _record(run, now, "pause", reasoning, data)
    elif isinstance(outcome, ResumeRequested):
        if run.status != "paused":
            raise ControlRefused("resume", run.status, "paused")
        paused_at = next(s.timestamp for s in reversed(run.steps) if s.action == "pause")
        paused_ms = max(0, (now - paused_at) // dt.timedelta(milliseconds=1))
        run.running_since = now
        run.status = "running"
        data = {"paused_ms": paused_ms}
        reasoning = f"resumed after {paused_ms / 1000:g} s paused, not counted as study"
        waiting, due_ms = run.waiting_question, run.answer_due_ms
        if waiting is not None and due_ms is not None:
            data["question_id"] = waiting.id
            reasoning += f"; question {waiting.id} waits again"
        _record(run, now, "resume", reasoning, data)
    elif isinstance(outcome, StopRequested):
        if run.is_finished:
            raise ControlRefused("stop", run.status, "running or paused")
        _end(run, now, "stopped", "stopped by the student")
        _record(
            run,
            now,
            "stop",
            f"stopped by the student at {_clock(run.elapsed_before_ms)} of study",
            {"elapsed_ms": run.elapsed_before_ms},
        )
    else:
        _apply_answer(run, outcome, now)


def _apply_answer(
    run: AutopilotRun, answer: AnswerGiven | AnswerReceived, now: dt.datetime
) -> None:
    waiting = run.waiting_question

    def refuse(reason: str) -> AnswerRefused:
        return AnswerRefused(
            reason,
            question_id=answer.question_id,
            answer_index=answer.answer_index,
            waiting_question_id=None if waiting is None else waiting.id,
        )

    pending = run.pending
    graded_pending = (
        isinstance(answer, AnswerGiven)
        and pending is not None
        and pending.question_id == answer.question_id
        and pending.answer_index == answer.answer_index
    )
    # A pending answer's grade is recorded while paused, as a driver's outcome is.
    if run.status != "running" and not (graded_pending and run.status == "paused"):
        raise refuse(f"no question is waiting: the run is {run.status}")
    if waiting is None:
        raise refuse(f"no question is waiting: the run is in phase {run.phase}")
    if answer.question_id != waiting.id:
        known = any(q.id == answer.question_id for q in run.quiz)
        what = "was already answered or skipped" if known else "is not a question of this quiz"
        raise refuse(f"question {answer.question_id} {what}; question {waiting.id} is waiting")
    if not 0 <= answer.answer_index < len(waiting.options):
        raise refuse(
            f"answer_index {answer.answer_index} is out of range: question {waiting.id} has "
            f"{len(waiting.options)} options (0 to {len(waiting.options) - 1})"
        )
    if pending is not None and not graded_pending:
        raise refuse(
            f"question {waiting.id}'s answer (option {pending.answer_index}) is being graded; "
            f"option {answer.answer_index} is not taken"
        )
    elapsed = run.elapsed_ms(now)
    assert run.wait_started_ms is not None
    if pending is not None:
        elapsed = pending.received_ms  # it came in time; the grade took the rest
    else:
        if run.time_up(now):
            raise refuse("the session's study time is up; the answer is not taken")
        due_ms = run.answer_due_ms
        assert due_ms is not None
        if elapsed >= due_ms:
            raise refuse(
                f"the wait for question {waiting.id} ended after "
                f"{run.policy.answer_timeout_seconds} s; it counts as skipped"
            )
    if isinstance(answer, AnswerReceived):
        run.pending_answer = PendingAnswer(
            question_id=waiting.id, answer_index=answer.answer_index, received_ms=elapsed
        )
        return
    if answer.correct is not None:
        correct = answer.correct
        shown_index = answer.correct_option_index
        explanation = answer.explanation or waiting.explanation
    elif waiting.correct_option_index is not None:
        correct = answer.answer_index == waiting.correct_option_index
        shown_index, explanation = waiting.correct_option_index, waiting.explanation
    else:
        raise refuse(f"question {waiting.id} is graded by the quiz service; no verdict came")
    waited = elapsed - run.wait_started_ms
    action_id = run.next_action_id
    run.actions_resolved += 1  # the answer settles the AwaitAnswer action
    run.answers.append(
        GradedAnswer(
            question_id=waiting.id,
            answer_index=answer.answer_index,
            result="correct" if correct else "wrong",
            waited_ms=waited,
        )
    )
    entry = run.mastery_of(run.current_topic or "")
    entry.attempts += 1
    entry.last_attempted = now
    number = len(run.answers)
    verdict = (
        f"option {answer.answer_index} is correct"
        if correct
        else f"option {answer.answer_index} is wrong; the answer is option {shown_index}"
    )
    _after_answer(run, run.elapsed_ms(now))
    _record(
        run,
        now,
        "answer",
        f"question {number} of {len(run.quiz)}: {verdict}",
        {
            "question_id": waiting.id,
            "answer_index": answer.answer_index,
            "correct": correct,
            "correct_option_index": shown_index,
            "explanation": explanation,
            "action_id": action_id,
        },
        duration_ms=waited,
    )


def _after_answer(run: AutopilotRun, elapsed_ms: int) -> None:
    """Move to the next question, or on to the diagnoses or the mastery update."""
    run.pending_answer = None
    if len(run.answers) < len(run.quiz):
        run.wait_started_ms = elapsed_ms
        return
    run.wait_started_ms = None
    run.phase = "diagnosing" if _wrong_answers(run) else "updating_mastery"


_LESSON_STEPS = frozenset({"lesson", "lesson_skipped"})
_QUIZ_STEPS = frozenset({"quiz", "quiz_skipped"})


def _lesson_turn_taken(
    run: AutopilotRun, now: dt.datetime, duration_ms: int
) -> tuple[int, int, str, dict[str, JsonValue]]:
    """Counts a lesson turn (taught or skipped) and moves to the quiz after the last one, or
    earlier when a further lesson would leave no time to answer the quiz.

    Args:
        run: The run, the turn's step not recorded yet.
        now: When the turn ended.
        duration_ms: What the turn took.

    Returns:
        The turn's number, the topic's number of lessons, and when the quiz comes early the
        reasoning's addition and the step's data saying why ('' and {} otherwise).
    """
    number = len(run.lessons) + run.lessons_skipped
    total = run.policy.lessons_per_topic
    if number >= total:
        run.phase = "quizzing"
        return number, total, "", {}
    policy = run.policy
    left_ms = max(0, run.target_ms - run.elapsed_ms(now))
    lessons = [s.duration_ms for s in run.steps if s.action in _LESSON_STEPS] + [duration_ms]
    lesson_ms = sum(lessons) // len(lessons)
    quizzes = [s.duration_ms for s in run.steps if s.action in _QUIZ_STEPS]
    quiz_ms = sum(quizzes) // len(quizzes) if quizzes else policy.quiz_estimate_seconds * 1000
    if policy.room_for_lesson(left_ms=left_ms, lesson_ms=lesson_ms, quiz_ms=quiz_ms):
        return number, total, "", {}
    run.phase = "quizzing"
    why = (
        f"; {_clock(left_ms)} of study left: a further lesson (~{_clock(lesson_ms)}), the quiz "
        f"(~{_clock(quiz_ms)}) and an answer ({_clock(policy.answer_timeout_ms)}) would not "
        "fit, so the quiz comes now"
    )
    data: dict[str, JsonValue] = {
        "quiz_early": True,
        "study_left_ms": left_ms,
        "lesson_estimate_ms": lesson_ms,
        "quiz_estimate_ms": quiz_ms,
    }
    return number, total, why, data


def _apply_driver(run: AutopilotRun, outcome: DriverOutcome, now: dt.datetime) -> None:
    topic = run.current_topic or ""
    match outcome:
        case LearnerRead():
            _apply_learner(run, outcome, now)
        case LessonTaught():
            run.lessons.append(outcome.content)
            number, total, why, budget = _lesson_turn_taken(run, now, outcome.duration_ms)
            _record(
                run,
                now,
                "lesson",
                f"lesson {number} of {total} on {topic}{why}",
                {"topic": topic, "lesson_number": number, "content": outcome.content, **budget},
                duration_ms=outcome.duration_ms,
            )
        case LessonSkipped():
            run.lessons_skipped += 1
            number, total, why, budget = _lesson_turn_taken(run, now, outcome.duration_ms)
            _record(
                run,
                now,
                "lesson_skipped",
                f"lesson {number} of {total} on {topic} could not be written: "
                f"{outcome.reason}{why}",
                {"topic": topic, "lesson_number": number, "reason": outcome.reason, **budget},
                duration_ms=outcome.duration_ms,
            )
        case QuizGenerated():
            _apply_quiz(run, outcome, now)
        case QuizSkipped():
            if topic not in run.topics_skipped:
                run.topics_skipped.append(topic)
            run.lessons = []
            run.lessons_skipped = 0
            run.quiz = []
            run.answers = []
            run.diagnosed = 0
            run.wait_started_ms = None
            run.phase = "choosing_topic"
            _record(
                run,
                now,
                "quiz_skipped",
                f"no quiz on {topic}: {outcome.reason}; on to the next topic",
                {"topic": topic, "reason": outcome.reason},
                duration_ms=outcome.duration_ms,
            )
        case AnswerTimedOut():
            _apply_timeout(run, outcome, now)
        case AnswerDiagnosed():
            answer = _wrong_answers(run)[run.diagnosed]
            if outcome.misconception is not None:
                entry = run.mastery_of(topic)
                known = [m for m in entry.misconceptions if m != outcome.misconception]
                entry.misconceptions = [outcome.misconception, *known]
                found = outcome.misconception
            else:
                found = f"not diagnosed ({outcome.unavailable})"
            run.diagnosed += 1
            if run.diagnosed >= len(_wrong_answers(run)):
                run.phase = "updating_mastery"
            diagnosis: dict[str, JsonValue] = {
                "question_id": outcome.question_id,
                "answer_index": answer.answer_index,
                "misconception": outcome.misconception,
            }
            if outcome.unavailable is not None:
                diagnosis["unavailable"] = outcome.unavailable
            _record(
                run,
                now,
                "diagnose",
                f"question {outcome.question_id}, option {answer.answer_index}: {found}",
                diagnosis,
                duration_ms=outcome.duration_ms,
            )
        case MasteryUpdated():
            _apply_mastery(run, outcome, now)
        case RunFinished():
            elapsed = run.elapsed_ms(now)
            reason = (
                f"time is up: {_clock(elapsed)} of study in {run.target_duration_minutes} min; "
                f"{len(run.topics_completed)} topics completed"
            )
            _end(run, now, "completed", reason)
            _record(
                run,
                now,
                "complete",
                reason,
                {"elapsed_ms": elapsed},
                duration_ms=outcome.duration_ms,
            )
        case ActionFailed():
            reason = f"action {outcome.action_id} (phase {run.phase}) failed: {outcome.error}"
            data: dict[str, JsonValue] = {
                "action_id": outcome.action_id,
                "phase": run.phase,
                "error": outcome.error,
            }
            _end(run, now, "failed", reason)
            _record(
                run,
                now,
                "fail",
                reason,
                data,
                duration_ms=outcome.duration_ms,
            )


def _apply_timeout(run: AutopilotRun, outcome: AnswerTimedOut, now: dt.datetime) -> None:
    """The wait ended: no answer in the window, or an answer whose grade never came."""
    elapsed = run.elapsed_ms(now)
    assert run.wait_started_ms is not None
    waited = elapsed - run.wait_started_ms
    pending = run.pending
    run.answers.append(
        GradedAnswer(
            question_id=outcome.question_id,
            answer_index=None,
            result="skipped",
            waited_ms=waited,
        )
    )
    number = len(run.answers)
    data: dict[str, JsonValue] = {"question_id": outcome.question_id, "answer_index": None}
    if pending is None:
        reasoning = (
            f"question {number} of {len(run.quiz)}: no answer within "
            f"{run.policy.answer_timeout_seconds} s of study time; skipped, not graded"
        )
    else:
        data |= {"received_answer_index": pending.answer_index, "ungraded": True}
        reasoning = (
            f"question {number} of {len(run.quiz)}: option {pending.answer_index}, given at "
            f"{_clock(pending.received_ms)}, got no grade within "
            f"{run.policy.grading_timeout_seconds} s of study time; skipped, not graded"
        )
    _after_answer(run, elapsed)
    _record(run, now, "skip", reasoning, data, duration_ms=waited)


def _apply_learner(run: AutopilotRun, outcome: LearnerRead, now: dt.datetime) -> None:
    scores = {topic_key(name): value for name, value in outcome.mastery.items()}
    mistakes = {topic_key(name): value for name, value in outcome.misconceptions.items()}
    due = {topic_key(name): value for name, value in outcome.reviews_due.items()}
    run.reviews_due = {}
    for entry in run.mastery:
        key = topic_key(entry.topic)
        entry.score = scores.get(key, entry.score)
        if key in mistakes:
            entry.misconceptions = list(mistakes[key])
        if key in due:
            run.reviews_due[entry.topic] = due[key]
    # A topic whose quiz could not be made counts as done for this run's choice, so the run
    # moves on (and it holds back no topic that needs it first).
    skipped = set(run.topics_skipped)
    choice = choose_topic(
        run.topics,
        {entry.topic: 1.0 if entry.topic in skipped else entry.score for entry in run.mastery},
        now=now,
        reviews_due=run.reviews_due,
        prerequisites=run.prerequisites,
        exam_date=run.exam_date,
        policy=run.policy,
    )
    if choice is None:
        reason = (
            f"all {len(run.topics)} topics are at mastery "
            f"{run.policy.mastery_threshold:.2f} or above"
        )
        if skipped:
            reason = (
                f"every topic is at mastery {run.policy.mastery_threshold:.2f} or above or "
                f"had no quiz in this run ({', '.join(run.topics_skipped)})"
            )
        _end(run, now, "completed", reason)
        _record(run, now, "complete", reason, {}, duration_ms=outcome.duration_ms)
        return
    run.current_topic = choice.topic
    run.lessons = []
    run.lessons_skipped = 0
    run.quiz = []
    run.answers = []
    run.diagnosed = 0
    run.wait_started_ms = None
    run.phase = "teaching"
    _record(
        run,
        now,
        "choose_topic",
        choice.reason,
        {"topic": choice.topic, "rule": choice.rule, "mastery": choice.mastery},
        duration_ms=outcome.duration_ms,
    )


def _apply_quiz(run: AutopilotRun, outcome: QuizGenerated, now: dt.datetime) -> None:
    topic = run.current_topic or ""
    entry = run.mastery_of(topic)
    difficulty = run.policy.difficulty_for(entry.score)
    targets = _targets(run, topic)
    run.quiz = list(outcome.questions)
    run.answers = []
    run.pending_answer = None
    run.diagnosed = 0
    run.phase = "awaiting_answer"
    run.wait_started_ms = run.elapsed_ms(now)
    aim = f", aimed at {len(targets)} open misconceptions" if targets else ""
    _record(
        run,
        now,
        "quiz",
        f"{len(run.quiz)} questions on {topic} at {difficulty} for mastery {entry.score:.2f}{aim}",
        {
            "topic": topic,
            "difficulty": difficulty,
            "misconceptions": list(targets),
            # Views only: the answers stay in the run until each question is answered.
            "questions": [q.view().model_dump(mode="json") for q in run.quiz],
        },
        duration_ms=outcome.duration_ms,
    )


def _apply_mastery(run: AutopilotRun, outcome: MasteryUpdated, now: dt.datetime) -> None:
    topic = run.current_topic or ""
    entry = run.mastery_of(topic)
    before = entry.score
    entry.score = outcome.score
    if outcome.next_review_at is None:
        run.reviews_due.pop(topic, None)
    else:
        run.reviews_due[topic] = outcome.next_review_at
    if topic not in run.topics_completed:
        run.topics_completed.append(topic)
    counts = dict.fromkeys(("correct", "wrong", "skipped"), 0)
    for answer in run.answers:
        counts[answer.result] += 1
    unasked = len(run.quiz) - len(run.answers)
    run.lessons = []
    run.lessons_skipped = 0
    run.quiz = []
    run.answers = []
    run.diagnosed = 0
    run.wait_started_ms = None
    run.phase = "choosing_topic"
    tally = ", ".join(f"{n} {result}" for result, n in counts.items())
    cut = f" ({unasked} not asked: time up)" if unasked else ""
    _record(
        run,
        now,
        "update_mastery",
        f"{tally}{cut}: mastery of {topic} {before:.2f} -> {outcome.score:.2f}",
        {
            "topic": topic,
            "score_before": before,
            "score": outcome.score,
            **counts,
            "next_review_at": None
            if outcome.next_review_at is None
            else outcome.next_review_at.isoformat(),
        },
        duration_ms=outcome.duration_ms,
    )
