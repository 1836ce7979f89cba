"""Two rules of the run, on the pure machine (no clock; times and durations are given):

- an answer that arrived within its window is never turned into a skip because its grade
  (the quiz's ``quiz.grade``, which may ask the model for feedback) is slow;
- before a further lesson, the study time left must still hold a lesson, the quiz and an
  answer, else the quiz comes now.
"""

from __future__ import annotations

import datetime as dt

import pytest

from services.autopilot.domain import (
    AnswerGiven,
    AnswerReceived,
    AnswerRefused,
    AnswerTimedOut,
    AutopilotPolicy,
    AutopilotRun,
    AwaitAnswer,
    GenerateQuiz,
    LearnerRead,
    LessonSkipped,
    LessonTaught,
    OutcomeRejected,
    PauseRequested,
    QuizSkipped,
    StopRequested,
    TeachLesson,
    UpdateMastery,
    apply,
    next_action,
    status_view,
)
from tests.unit.autopilot.strategies import (
    NOW,
    TOPICS,
    at_first_question,
    seconds,
    started,
    waiting,
)


def keyless_first_question(**fields: object) -> tuple[AutopilotRun, dt.datetime, AwaitAnswer]:
    """A run waiting for its first answer, its questions' keys held by the quiz service."""
    run, now = at_first_question(**fields)
    keyless = [q.model_copy(update={"correct_option_index": None}) for q in run.quiz]
    run = run.model_copy(update={"quiz": keyless})
    return run, now, waiting(run, now)


def graded(question_id: str, index: int, *, correct: bool) -> AnswerGiven:
    return AnswerGiven(
        question_id=question_id,
        answer_index=index,
        correct=correct,
        correct_option_index=1,
        explanation="Option 1 is the key.",
    )


def test_an_answer_given_in_time_survives_the_deadline_and_its_slow_grade_is_recorded() -> None:
    run, now, action = keyless_first_question()
    question = action.question.id
    # Ten seconds into the 60 s window the answer arrives; grading it takes 90 s more.
    received = apply(run, AnswerReceived(question_id=question, answer_index=2), now + seconds(10))
    assert received.new_steps == ()
    pending = received.run.pending
    assert pending is not None
    assert (pending.question_id, pending.answer_index) == (question, 2)
    assert received.run.pending_answer == pending
    assert received.run.pending_answer.received_ms == received.run.wait_started_ms + 10_000
    assert status_view(received.run, now + seconds(11)).awaiting_input is False
    # The window's end does not time the question out: the wait is for the grade now.
    wait = next_action(received.run, action.answer_deadline + seconds(1))
    assert isinstance(wait, AwaitAnswer)
    assert wait.grading is True
    assert wait.action_id == action.action_id
    assert wait.answer_deadline == now + seconds(10 + 300)
    assert wait.until == wait.answer_deadline
    with pytest.raises(OutcomeRejected, match="still has"):
        apply(
            received.run,
            AnswerTimedOut(action_id=action.action_id, question_id=question),
            action.answer_deadline + seconds(1),
        )
    # The grade comes 90 s after the answer, long past the window: it is recorded, and the
    # answer counts the 10 s the student took, not the grading time.
    done = apply(received.run, graded(question, 2, correct=False), now + seconds(100))
    step = done.new_steps[-1]
    assert step.action == "answer"
    assert step.data["correct"] is False
    assert step.data["correct_option_index"] == 1
    assert step.duration_ms == 10_000
    assert done.run.answers[-1].result == "wrong"
    assert done.run.pending is None
    assert done.run.pending_answer is None
    # The next question waits a whole window from the moment the grade was recorded.
    following = next_action(done.run, now + seconds(100))
    assert isinstance(following, AwaitAnswer)
    assert following.question.id != question
    assert following.answer_deadline == now + seconds(160)
    assert following.grading is False


def test_the_same_answer_twice_changes_nothing_and_another_option_is_refused() -> None:
    run, now, action = keyless_first_question()
    question = action.question.id
    first = apply(run, AnswerReceived(question_id=question, answer_index=2), now + seconds(5))
    # A redelivered command, even after the window: the answer was received in time.
    again = apply(
        first.run,
        AnswerReceived(question_id=question, answer_index=2),
        action.answer_deadline + seconds(30),
    )
    assert again.duplicate is True
    assert again.run is first.run
    assert again.new_steps == ()
    with pytest.raises(AnswerRefused, match="is being graded; option 0 is not taken"):
        apply(first.run, AnswerReceived(question_id=question, answer_index=0), now + seconds(6))
    with pytest.raises(AnswerRefused, match="is being graded; option 3 is not taken"):
        apply(first.run, graded(question, 3, correct=False), now + seconds(6))


def test_an_answer_that_arrives_after_the_window_is_not_taken_as_received() -> None:
    run, _, action = keyless_first_question()
    with pytest.raises(AnswerRefused, match="ended after 60 s; it counts as skipped"):
        apply(
            run,
            AnswerReceived(question_id=action.question.id, answer_index=1),
            action.answer_deadline,
        )


def test_a_grade_that_never_comes_ends_the_wait_with_a_clear_ungraded_skip() -> None:
    run, now, action = keyless_first_question()
    question = action.question.id
    received = apply(run, AnswerReceived(question_id=question, answer_index=2), now + seconds(4))
    wait = next_action(received.run, now + seconds(200))
    assert isinstance(wait, AwaitAnswer)
    timed_out = apply(
        received.run,
        AnswerTimedOut(action_id=wait.action_id, question_id=question),
        wait.answer_deadline,
    )
    step = timed_out.new_steps[-1]
    assert step.action == "skip"
    assert step.reasoning == (
        "question 1 of 3: option 2, given at 1:10, got no grade within 300 s of study time; "
        "skipped, not graded"
    )
    assert step.data["received_answer_index"] == 2
    assert step.data["ungraded"] is True
    assert timed_out.run.answers[-1].result == "skipped"
    # The run has moved on: the late grade is refused, and the next question waits.
    with pytest.raises(AnswerRefused, match="already answered or skipped"):
        apply(timed_out.run, graded(question, 2, correct=True), wait.answer_deadline)
    following = next_action(timed_out.run, wait.answer_deadline)
    assert isinstance(following, AwaitAnswer)
    assert following.question.id != question


def test_a_grade_arriving_while_paused_is_recorded_and_one_after_a_stop_is_left_out() -> None:
    run, now, action = keyless_first_question()
    question = action.question.id
    received = apply(run, AnswerReceived(question_id=question, answer_index=1), now + seconds(3))
    paused = apply(received.run, PauseRequested(), now + seconds(4)).run
    # An answer is not taken while paused; the grade of one received before is recorded.
    paused_first = apply(run, PauseRequested(), now + seconds(3)).run
    with pytest.raises(AnswerRefused, match="the run is paused"):
        apply(paused_first, AnswerReceived(question_id=question, answer_index=1), now + seconds(5))
    recorded = apply(paused, graded(question, 1, correct=True), now + seconds(500))
    assert recorded.new_steps[-1].action == "answer"
    assert recorded.new_steps[-1].status == "paused"
    assert recorded.run.answers[-1].result == "correct"

    stopped = apply(received.run, StopRequested(), now + seconds(4)).run
    late = apply(stopped, graded(question, 1, correct=True), now + seconds(90))
    assert late.new_steps == ()
    assert late.run is stopped
    assert late.ignored is not None
    assert "stopped" in late.ignored
    # The redelivered command of that answer is taken quietly too.
    assert apply(stopped, AnswerReceived(question_id=question, answer_index=1), now).ignored


def test_a_pending_answer_is_waited_for_past_the_end_of_the_study_time() -> None:
    run, now, action = keyless_first_question(duration_minutes=5)
    question = action.question.id
    # The session ends at 5:00 of study; the answer arrives before that.
    received = apply(run, AnswerReceived(question_id=question, answer_index=1), now + seconds(2))
    end = NOW + seconds(300)
    # Without the answer, the end of the study time would end the run now.
    assert next_action(run, end + seconds(5)).kind == "finish_run"
    wait = next_action(received.run, end + seconds(5))
    assert isinstance(wait, AwaitAnswer)
    assert wait.grading is True
    assert wait.until > end
    done = apply(received.run, graded(question, 1, correct=True), end + seconds(20))
    assert done.new_steps[-1].action == "answer"
    # With the grade in, the time-up rule takes over: the answer reaches the learner model.
    update = next_action(done.run, end + seconds(20))
    assert isinstance(update, UpdateMastery)
    assert [a.result for a in update.answers] == ["correct"]


def test_a_question_whose_key_the_run_holds_needs_no_pending_mark() -> None:
    run, now = at_first_question()
    action = waiting(run, now)
    answered = apply(run, AnswerGiven(question_id=action.question.id, answer_index=1), now)
    assert answered.new_steps[-1].action == "answer"
    assert answered.run.answers[-1].result == "correct"


# ---- the time budget: a further lesson only while the quiz still fits ----------------------


def first_lesson(duration_ms: int, *, minutes: int = 5) -> tuple[AutopilotRun, str]:
    """A run whose first lesson took ``duration_ms`` of its ``minutes`` of study."""
    run = apply(started(*TOPICS, duration_minutes=minutes), LearnerRead(action_id=1), NOW).run
    lesson = LessonTaught(
        action_id=2, content="Speed is distance over time.", duration_ms=duration_ms
    )
    run = apply(run, lesson, NOW + dt.timedelta(milliseconds=duration_ms)).run
    return run, run.steps[-1].reasoning


def test_a_further_lesson_is_taught_while_a_quiz_and_an_answer_still_fit() -> None:
    # 4:50 left; 10 s lesson + 60 s quiz (the default before any quiz) + 60 s answer fit.
    run, reasoning = first_lesson(10_000)
    assert reasoning == "lesson 1 of 2 on Kinematics"
    assert "quiz_early" not in run.steps[-1].data
    action = next_action(run, NOW + seconds(10))
    assert isinstance(action, TeachLesson)
    assert action.lesson_number == 2


def test_the_quiz_comes_now_when_a_further_lesson_would_leave_no_time_for_it() -> None:
    # A lesson took 2:30 of a 5 min session: another would leave no time to be assessed.
    run, reasoning = first_lesson(150_000)
    assert reasoning == (
        "lesson 1 of 2 on Kinematics; 2:30 of study left: a further lesson (~2:30), the quiz "
        "(~1:00) and an answer (1:00) would not fit, so the quiz comes now"
    )
    step = run.steps[-1]
    assert step.data["quiz_early"] is True
    assert (step.data["study_left_ms"], step.data["lesson_estimate_ms"]) == (150_000, 150_000)
    assert step.data["quiz_estimate_ms"] == 60_000
    action = next_action(run, NOW + seconds(150))
    assert isinstance(action, GenerateQuiz)
    assert action.lessons == ["Speed is distance over time."]


def test_a_skipped_lesson_counts_its_time_and_can_send_the_run_to_its_quiz() -> None:
    run = apply(started(*TOPICS, duration_minutes=5), LearnerRead(action_id=1), NOW).run
    skipped = LessonSkipped(action_id=2, reason="every round looped", duration_ms=200_000)
    run = apply(run, skipped, NOW + seconds(200)).run
    assert run.steps[-1].reasoning.endswith("so the quiz comes now")
    assert isinstance(next_action(run, NOW + seconds(200)), GenerateQuiz)


def test_the_quiz_estimate_is_what_this_runs_quizzes_have_taken() -> None:
    # Topic 1: two quick lessons, then a quiz that took 5 minutes (and gave nothing).
    run = apply(started(*TOPICS, duration_minutes=10), LearnerRead(action_id=1), NOW).run
    for action_id, at in ((2, 1), (3, 2)):
        run = apply(
            run,
            LessonTaught(action_id=action_id, content="text", duration_ms=1000),
            NOW + seconds(at),
        ).run
    run = apply(
        run, QuizSkipped(action_id=4, reason="no question", duration_ms=300_000), NOW + seconds(302)
    ).run
    run = apply(run, LearnerRead(action_id=5), NOW + seconds(302)).run
    # Topic 2's first lesson ends at 5:03: 4:57 left. With the 60 s default the second lesson
    # would fit; with this run's 5 min quiz it does not.
    run = apply(
        run, LessonTaught(action_id=6, content="text", duration_ms=1000), NOW + seconds(303)
    ).run
    step = run.steps[-1]
    assert step.data["quiz_estimate_ms"] == 300_000
    assert step.data["study_left_ms"] == 297_000
    assert isinstance(next_action(run, NOW + seconds(303)), GenerateQuiz)


@pytest.mark.parametrize(
    ("left_s", "lesson_s", "quiz_s", "room"),
    [(300, 10, 60, True), (130, 10, 60, True), (129, 10, 60, False), (0, 0, 0, False)],
)
def test_room_for_a_lesson_is_a_lesson_a_quiz_and_one_answer_window(
    left_s: int, lesson_s: int, quiz_s: int, room: bool
) -> None:
    policy = AutopilotPolicy(answer_timeout_seconds=60)
    assert (
        policy.room_for_lesson(
            left_ms=left_s * 1000, lesson_ms=lesson_s * 1000, quiz_ms=quiz_s * 1000
        )
        is room
    )
