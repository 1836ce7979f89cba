"""The run's state machine: the loop, control that acts at once, keyed answers, skipped
timeouts, idempotent outcomes and the original's defects, one test per rule."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from services.autopilot.domain import (
    ActionFailed,
    AnswerDiagnosed,
    AnswerGiven,
    AnswerReceived,
    AnswerRefused,
    AnswerTimedOut,
    AutopilotPolicy,
    AutopilotRun,
    AwaitAnswer,
    ControlRefused,
    DiagnoseAnswer,
    DriverOutcome,
    FinishRun,
    GenerateQuiz,
    Idle,
    LearnerRead,
    LessonSkipped,
    LessonTaught,
    MasteryUpdated,
    OutcomeRejected,
    PauseRequested,
    PrerequisiteCycleError,
    QuizGenerated,
    QuizSkipped,
    ReadLearner,
    ResumeRequested,
    RunActiveError,
    RunFinished,
    StopRequested,
    TeachLesson,
    UpdateMastery,
    apply,
    next_action,
    start_run,
    status_view,
)
from tests.unit.autopilot.strategies import (
    NOW,
    SESSION,
    TOPICS,
    ScriptedDriver,
    at_first_question,
    make_request,
    questions,
    seconds,
    started,
    waiting,
)


def test_start_records_step_one_and_then_reads_the_learner_model() -> None:
    run = started(*TOPICS, duration_minutes=45)
    assert (run.status, run.phase, run.run_number) == ("running", "choosing_topic", 1)
    assert [(s.number, s.action) for s in run.steps] == [(1, "start")]
    assert run.steps[0].reasoning == (
        "run 1: 45 min of study over 3 plan topics; prerequisites from the plan's order"
    )
    action = next_action(run, NOW)
    assert action == ReadLearner(action_id=1, key=f"autopilot:{SESSION}:1:1", topics=list(TOPICS))


def test_the_loop_teaches_quizzes_diagnoses_wrong_answers_and_updates_mastery() -> None:
    run = started(*TOPICS)
    now = NOW
    kinds = []
    # Answers: right, wrong, then let the third wait time out.
    driver = ScriptedDriver(answers=[1, 3, None])
    while len(run.topics_completed) < 1:
        kinds.append(next_action(run, now).kind)
        applied, now = driver.step(run, now)
        assert applied is not None
        run = applied.run
    assert kinds == [
        "read_learner",
        "teach_lesson",
        "teach_lesson",
        "generate_quiz",
        "await_answer",
        "await_answer",
        "await_answer",
        "diagnose_answer",
        "update_mastery",
    ]
    assert [s.action for s in run.steps] == [
        "start",
        "choose_topic",
        "lesson",
        "lesson",
        "quiz",
        "answer",
        "answer",
        "skip",
        "diagnose",
        "update_mastery",
    ]
    assert [s.number for s in run.steps] == list(range(1, 11))
    assert (
        run.steps[1].reasoning
        == "lowest mastery 0.00 among 3 plan topics; 2 wait for prerequisites"
    )
    assert run.steps[9].reasoning == (
        "1 correct, 1 wrong, 1 skipped: mastery of Kinematics 0.00 -> 0.10"
    )
    kinematics = run.mastery_of("Kinematics")
    # Two answers are attempts; the skipped question is not.
    assert (kinematics.score, kinematics.attempts) == (0.1, 2)
    assert kinematics.misconceptions == ["confuses option 3 with option 1"]
    assert run.phase == "choosing_topic"
    assert isinstance(next_action(run, now), ReadLearner)


def test_lesson_two_builds_on_lesson_one_and_the_quiz_aims_at_newest_misconceptions() -> None:
    run = started(*TOPICS)
    read = LearnerRead(
        action_id=1,
        mastery={"Kinematics": 0.55},
        misconceptions={"kinematics": ["newest", "older", "oldest", "ancient"]},
    )
    run = apply(run, read, NOW).run
    run = apply(run, LessonTaught(action_id=2, content="first"), NOW).run
    lesson = next_action(run, NOW)
    assert isinstance(lesson, TeachLesson)
    assert (lesson.lesson_number, lesson.previous_lessons) == (2, ["first"])
    run = apply(run, LessonTaught(action_id=3, content="second"), NOW).run
    quiz = next_action(run, NOW)
    assert isinstance(quiz, GenerateQuiz)
    assert (quiz.question_count, quiz.difficulty) == (3, "medium")
    assert quiz.misconceptions == ["newest", "older", "oldest"]


def test_a_lesson_the_tutor_could_not_write_takes_its_turn_and_the_run_goes_on() -> None:
    run = started(*TOPICS)
    run = apply(run, LearnerRead(action_id=1, mastery={"Kinematics": 0.55}), NOW).run
    skipped = apply(run, LessonSkipped(action_id=2, reason="every round looped"), NOW)
    run = skipped.run
    (step,) = skipped.new_steps
    assert step.action == "lesson_skipped"
    assert step.data["reason"] == "every round looped"
    assert run.status == "running"
    lesson = next_action(run, NOW)
    assert isinstance(lesson, TeachLesson)
    # The skipped turn counts: this is lesson 2 of 2, and nothing looping reaches its prompt.
    assert (lesson.lesson_number, lesson.previous_lessons) == (2, [])
    run = apply(run, LessonTaught(action_id=3, content="second"), NOW).run
    quiz = next_action(run, NOW)
    assert isinstance(quiz, GenerateQuiz)
    assert quiz.lessons == ["second"]


def test_two_skipped_lessons_still_lead_to_the_quiz_and_the_next_topic_starts_afresh() -> None:
    run = started(*TOPICS)
    run = apply(run, LearnerRead(action_id=1, mastery={"Kinematics": 0.55}), NOW).run
    run = apply(run, LessonSkipped(action_id=2, reason="loop"), NOW).run
    run = apply(run, LessonSkipped(action_id=3, reason="loop"), NOW).run
    quiz = next_action(run, NOW)
    assert isinstance(quiz, GenerateQuiz)
    assert quiz.lessons == []
    run = apply(run, QuizSkipped(action_id=4, reason="no source text"), NOW).run
    assert run.lessons_skipped == 0
    assert isinstance(next_action(run, NOW), ReadLearner)


def test_pause_during_an_answer_wait_acts_at_once_and_resume_continues_the_question() -> None:
    run, now = at_first_question()
    question = waiting(run, now).question
    elapsed = status_view(run, now).elapsed_seconds
    # 20 s into the wait the student pauses: paused in the same call.
    paused = apply(run, PauseRequested(), now + seconds(20)).run
    assert paused.status == "paused"
    assert paused.steps[-1].action == "pause"
    assert paused.steps[-1].data["answer_ms_left"] == 40_000
    assert next_action(paused, now + seconds(25)) == Idle(
        reason="the run is paused; nothing starts until it is resumed"
    )
    # Ten minutes paused count for nothing, and the wait does not run out meanwhile.
    later = now + seconds(620)
    view = status_view(paused, later)
    assert view.elapsed_seconds == elapsed + 20
    assert (view.current_question, view.awaiting_input) == (question, False)
    with pytest.raises(AnswerRefused, match="no question is waiting: the run is paused"):
        apply(paused, AnswerGiven(question_id=question.id, answer_index=1), later)
    with pytest.raises(OutcomeRejected):
        apply(
            paused,
            AnswerTimedOut(action_id=waiting(run, now).action_id, question_id=question.id),
            later,
        )
    resumed = apply(paused, ResumeRequested(), later).run
    assert resumed.steps[-1].reasoning == (
        f"resumed after 600 s paused, not counted as study; question {question.id} waits again"
    )
    again = waiting(resumed, later)
    assert again.question == question
    assert again.answer_deadline == later + seconds(40)
    assert again.action_id == waiting(run, now).action_id
    answered = apply(
        resumed, AnswerGiven(question_id=question.id, answer_index=1), later + seconds(39)
    )
    assert answered.run.answers[0].result == "correct"
    assert answered.run.answers[0].waited_ms == 59_000


def test_stop_during_an_answer_wait_ends_the_run_stopped_at_once() -> None:
    run, now = at_first_question()
    action = waiting(run, now)
    stopped = apply(run, StopRequested(), now + seconds(5)).run
    assert (stopped.status, stopped.phase) == ("stopped", "finished")
    assert stopped.completed_at == now + seconds(5)
    assert stopped.end_reason == "stopped by the student"
    assert next_action(stopped, now + seconds(6)) == Idle(reason="the run is stopped")
    with pytest.raises(AnswerRefused, match="the run is stopped"):
        apply(
            stopped, AnswerGiven(question_id=action.question.id, answer_index=1), now + seconds(6)
        )
    # The wait's timer, firing later, changes nothing.
    late = apply(
        stopped,
        AnswerTimedOut(action_id=action.action_id, question_id=action.question.id),
        now + seconds(61),
    )
    assert (late.new_steps, late.duplicate, late.run) == ((), False, stopped)
    assert late.ignored is not None
    view = status_view(stopped, now + seconds(3600))
    assert (view.status, view.current_question, view.awaiting_input) == ("stopped", None, False)
    assert view.elapsed_seconds == status_view(run, now).elapsed_seconds + 5


def test_pause_during_a_lesson_acts_at_once_and_the_lesson_paid_for_is_kept() -> None:
    run = apply(started(*TOPICS), LearnerRead(action_id=1), NOW).run
    lesson = next_action(run, NOW)
    assert isinstance(lesson, TeachLesson)
    paused = apply(run, PauseRequested(), NOW + seconds(1)).run
    assert paused.status == "paused"
    # The tutor answers while paused: recorded, and nothing new starts.
    kept = apply(paused, LessonTaught(action_id=lesson.action_id, content="text"), NOW + seconds(9))
    assert kept.new_steps[0].action == "lesson"
    assert kept.new_steps[0].status == "paused"
    assert isinstance(next_action(kept.run, NOW + seconds(9)), Idle)
    resumed = apply(kept.run, ResumeRequested(), NOW + seconds(30)).run
    after = next_action(resumed, NOW + seconds(30))
    assert isinstance(after, TeachLesson)
    assert after.lesson_number == 2


def test_a_timeout_is_skipped_never_graded_as_an_option() -> None:
    run, now = at_first_question(duration_minutes=60)
    for _ in range(3):
        action = waiting(run, now)
        early = AnswerTimedOut(action_id=action.action_id, question_id=action.question.id)
        with pytest.raises(OutcomeRejected, match="still has 1 s of its wait left"):
            apply(run, early, action.answer_deadline - seconds(1))
        now = action.answer_deadline
        run = apply(run, early, now).run
    assert [(a.answer_index, a.result) for a in run.answers] == [(None, "skipped")] * 3
    assert [s.action for s in run.steps[-3:]] == ["skip"] * 3
    assert run.steps[-1].reasoning == (
        "question 3 of 3: no answer within 60 s of study time; skipped, not graded"
    )
    # Nothing to diagnose: skips are no mistakes; and no attempt is counted.
    update = next_action(run, now)
    assert isinstance(update, UpdateMastery)
    assert run.mastery_of("Kinematics").attempts == 0


def test_the_answer_wait_is_configurable() -> None:
    policy = AutopilotPolicy(answer_timeout_seconds=15)
    run = start_run(make_request(*TOPICS), session_id=SESSION, now=NOW, policy=policy)
    run = apply(run, LearnerRead(action_id=1), NOW).run
    run = apply(run, LessonTaught(action_id=2, content="a"), NOW).run
    run = apply(run, LessonTaught(action_id=3, content="b"), NOW).run
    run = apply(run, QuizGenerated(action_id=4, questions=questions("Kinematics", 4)), NOW).run
    assert waiting(run, NOW).answer_deadline == NOW + seconds(15)
    # Policy is part of the stored run: a replica with other defaults keeps the 15 s.
    assert AutopilotRun.model_validate_json(run.model_dump_json()).policy == policy


@pytest.mark.parametrize(
    ("question", "index", "message"),
    [
        ("Kinematics-4-q9", 1, "question Kinematics-4-q9 is not a question of this quiz"),
        (
            "Kinematics-4-q1",
            4,
            "answer_index 4 is out of range: question Kinematics-4-q1 has 4 options (0 to 3)",
        ),
        ("Kinematics-4-q1", -1, "answer_index -1 is out of range"),
    ],
)
def test_a_wrong_answer_request_is_refused_with_the_reason_and_changes_nothing(
    question: str, index: int, message: str
) -> None:
    run, now = at_first_question()
    before = run.model_dump_json()
    with pytest.raises(AnswerRefused) as caught:
        apply(run, AnswerGiven(question_id=question, answer_index=index), now)
    assert message in str(caught.value)
    assert caught.value.waiting_question_id == "Kinematics-4-q1"
    assert run.model_dump_json() == before


def test_an_answer_to_an_earlier_question_or_with_none_waiting_is_refused() -> None:
    run, now = at_first_question()
    run = apply(run, AnswerGiven(question_id="Kinematics-4-q1", answer_index=1), now).run
    with pytest.raises(AnswerRefused, match="Kinematics-4-q1 was already answered or skipped"):
        apply(run, AnswerGiven(question_id="Kinematics-4-q1", answer_index=1), now)
    teaching = apply(started(*TOPICS), LearnerRead(action_id=1), NOW).run
    with pytest.raises(AnswerRefused, match="no question is waiting: the run is in phase teaching"):
        apply(teaching, AnswerGiven(question_id="Kinematics-4-q1", answer_index=0), NOW)


def test_an_answer_after_the_wait_ended_is_refused_the_timeout_records_it() -> None:
    run, now = at_first_question()
    action = waiting(run, now)
    with pytest.raises(AnswerRefused, match="ended after 60 s; it counts as skipped"):
        apply(
            run, AnswerGiven(question_id=action.question.id, answer_index=1), action.answer_deadline
        )


@pytest.mark.parametrize(
    ("controls", "refused", "message"),
    [
        ([], ResumeRequested(), "resume needs a paused run; this run is running"),
        ([PauseRequested()], PauseRequested(), "pause needs a running run; this run is paused"),
        ([StopRequested()], PauseRequested(), "pause needs a running run; this run is stopped"),
        ([StopRequested()], ResumeRequested(), "resume needs a paused run; this run is stopped"),
        ([StopRequested()], StopRequested(), "stop needs a running or paused run"),
    ],
)
def test_control_that_does_not_fit_the_status_is_refused(
    controls: list[PauseRequested | ResumeRequested | StopRequested],
    refused: PauseRequested | ResumeRequested | StopRequested,
    message: str,
) -> None:
    run = started(*TOPICS)
    for control in controls:
        run = apply(run, control, NOW).run
    with pytest.raises(ControlRefused, match=message):
        apply(run, refused, NOW)


def test_an_immediate_resume_after_pause_is_taken() -> None:
    # The original set a flag and changed the status later, so this resume was refused.
    run = apply(started(*TOPICS), PauseRequested(), NOW).run
    assert apply(run, ResumeRequested(), NOW).run.status == "running"


def test_the_same_outcome_twice_is_detected_and_changes_nothing() -> None:
    run = apply(started(*TOPICS), LearnerRead(action_id=1), NOW).run
    lesson = LessonTaught(action_id=2, content="text")
    once = apply(run, lesson, NOW)
    twice = apply(once.run, lesson, NOW + seconds(3))
    # The step names its action, so a store can refuse a second copy too.
    assert once.new_steps[0].data["action_id"] == 2
    assert twice.duplicate
    assert (twice.run, twice.new_steps) == (once.run, ())
    assert twice.ignored == "action 2 is already recorded (a redelivery)"


def test_outcomes_that_answer_no_issued_action_are_rejected() -> None:
    run = started(*TOPICS)
    with pytest.raises(
        OutcomeRejected, match="action 5 was never given; the run waits for action 1"
    ):
        apply(run, LearnerRead(action_id=5), NOW)
    with pytest.raises(OutcomeRejected, match="waits for learner_read, not lesson_taught"):
        apply(run, LessonTaught(action_id=1, content="x"), NOW)
    with pytest.raises(OutcomeRejected, match="not run_finished"):
        apply(run, RunFinished(action_id=1), NOW)


def test_a_run_completes_when_its_study_time_is_up() -> None:
    run = started(*TOPICS, duration_minutes=5)
    run, now = ScriptedDriver(answers=[1] * 100).run_to_end(run, NOW)
    assert (run.status, run.phase) == ("completed", "finished")
    assert run.steps[-1].action == "complete"
    assert run.end_reason is not None
    assert run.end_reason.startswith("time is up: 5:")
    assert status_view(run, now + seconds(999)).elapsed_seconds >= 300
    assert [s.number for s in run.steps] == list(range(1, len(run.steps) + 1))


def test_time_up_mid_quiz_still_reports_the_answers_given_then_completes() -> None:
    run, now = at_first_question(duration_minutes=5)
    question = waiting(run, now).question
    run = apply(run, AnswerGiven(question_id=question.id, answer_index=1), now).run
    end = run.wall_time_at(run.target_ms)
    assert end is not None
    update = next_action(run, end)
    assert isinstance(update, UpdateMastery)
    assert [a.question_id for a in update.answers] == [question.id]
    run = apply(
        run, MasteryUpdated(action_id=update.action_id, topic="Kinematics", score=0.3), end
    ).run
    assert "(2 not asked: time up)" in run.steps[-1].reasoning
    finish = next_action(run, end)
    assert isinstance(finish, FinishRun)
    run = apply(run, RunFinished(action_id=finish.action_id), end).run
    assert run.status == "completed"
    assert run.topics_completed == ["Kinematics"]


def test_finishing_before_the_time_is_up_is_rejected() -> None:
    run = started(*TOPICS)
    with pytest.raises(OutcomeRejected):
        apply(run, RunFinished(action_id=1), NOW + seconds(60))


def test_a_run_whose_topics_are_all_mastered_completes() -> None:
    mastered = dict.fromkeys(TOPICS, 0.9)
    applied = apply(started(*TOPICS), LearnerRead(action_id=1, mastery=mastered), NOW)
    assert applied.run.status == "completed"
    assert applied.new_steps[-1].reasoning == "all 3 topics are at mastery 0.85 or above"


def test_a_call_that_failed_for_good_ends_the_run_failed() -> None:
    run = apply(started(*TOPICS), LearnerRead(action_id=1), NOW).run
    failed = apply(run, ActionFailed(action_id=2, error="tutor dead-lettered"), NOW).run
    assert (failed.status, failed.end_reason) == (
        "failed",
        "action 2 (phase teaching) failed: tutor dead-lettered",
    )


def test_a_diagnosis_must_be_of_the_wrong_answer_due() -> None:
    run, now = at_first_question()
    for index in (2, 1, 1):
        action = waiting(run, now)
        run = apply(run, AnswerGiven(question_id=action.question.id, answer_index=index), now).run
    diagnose = next_action(run, now)
    assert isinstance(diagnose, DiagnoseAnswer)
    assert (diagnose.question.id, diagnose.answer_index) == ("Kinematics-4-q1", 2)
    with pytest.raises(OutcomeRejected, match="of question Kinematics-4-q1, not Kinematics-4-q2"):
        apply(
            run,
            AnswerDiagnosed(
                action_id=diagnose.action_id, question_id="Kinematics-4-q2", misconception="m"
            ),
            now,
        )


def test_a_diagnosis_the_model_could_not_write_is_recorded_and_the_run_goes_on() -> None:
    run, now = at_first_question()
    for index in (2, 2, 1):
        action = waiting(run, now)
        run = apply(run, AnswerGiven(question_id=action.question.id, answer_index=index), now).run
    before = list(run.mastery_of("Kinematics").misconceptions)
    diagnose = next_action(run, now)
    assert isinstance(diagnose, DiagnoseAnswer)
    applied = apply(
        run,
        AnswerDiagnosed(
            action_id=diagnose.action_id,
            question_id=diagnose.question.id,
            unavailable="no valid redemption question within 3 rounds",
        ),
        now,
    )
    assert applied.run.status == "running"
    assert applied.run.mastery_of("Kinematics").misconceptions == before
    (step,) = applied.new_steps
    assert step.action == "diagnose"
    assert step.data == {
        "action_id": diagnose.action_id,
        "question_id": "Kinematics-4-q1",
        "answer_index": 2,
        "misconception": None,
        "unavailable": "no valid redemption question within 3 rounds",
    }
    assert "not diagnosed (no valid redemption question" in step.reasoning
    following = next_action(applied.run, now)
    assert isinstance(following, DiagnoseAnswer)  # the next wrong answer is still diagnosed
    assert following.question.id == "Kinematics-4-q2"


def test_a_diagnosis_has_a_misconception_or_a_reason_it_is_missing() -> None:
    with pytest.raises(ValueError, match="either a misconception or why"):
        AnswerDiagnosed(action_id=1, question_id="q")
    with pytest.raises(ValueError, match="either a misconception or why"):
        AnswerDiagnosed(action_id=1, question_id="q", misconception="m", unavailable="x")


def test_starting_again_while_active_is_refused_and_after_the_end_begins_afresh() -> None:
    run = apply(started(*TOPICS), LearnerRead(action_id=1, mastery={"Kinematics": 0.4}), NOW).run
    with pytest.raises(RunActiveError, match="run 1 of this session is running"):
        start_run(make_request(*TOPICS), session_id=SESSION, now=NOW, previous=run)
    paused = apply(run, PauseRequested(), NOW).run
    with pytest.raises(RunActiveError, match="is paused"):
        start_run(make_request(*TOPICS), session_id=SESSION, now=NOW, previous=paused)
    stopped = apply(run, StopRequested(), NOW).run
    fresh = start_run(
        make_request(*TOPICS), session_id=SESSION, now=NOW + seconds(9), previous=stopped
    )
    assert (fresh.run_number, fresh.status, len(fresh.steps)) == (2, "running", 1)
    assert fresh.mastery_of("Kinematics").score == 0.0
    assert next_action(fresh, NOW + seconds(9)).key == f"autopilot:{SESSION}:2:1"  # type: ignore[union-attr]


def test_a_run_of_another_session_is_no_previous_run() -> None:
    other = started(*TOPICS).model_copy(update={"session_id": uuid.uuid4(), "status": "stopped"})
    with pytest.raises(ValueError, match="run 1 belongs to another session"):
        start_run(make_request(*TOPICS), session_id=SESSION, now=NOW, previous=other)


def test_a_prerequisite_cycle_is_refused_at_start() -> None:
    with pytest.raises(PrerequisiteCycleError):
        start_run(
            make_request(*TOPICS),
            session_id=SESSION,
            now=NOW,
            prerequisites=[("Kinematics", "Gravitation"), ("Gravitation", "Kinematics")],
        )


def test_time_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_action(started(*TOPICS), dt.datetime(2026, 3, 2, 9))


def test_apply_never_changes_the_state_passed_in() -> None:
    run, now = at_first_question()
    before = run.model_dump_json()
    action = waiting(run, now)
    apply(run, AnswerGiven(question_id=action.question.id, answer_index=0), now)
    apply(run, PauseRequested(), now)
    apply(run, StopRequested(), now)
    assert run.model_dump_json() == before


Op = tuple[str, int]
# Mostly driving and answering, now and then waiting or a control; at most one stop, drawn
# apart, so that runs get through whole topics.
OPS = (
    ["drive"] * 8
    + ["answer"] * 4
    + ["wait"] * 2
    + ["pause", "resume", "restore", "receive", "grade"]
)
ops = st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 90)), min_size=20, max_size=150)


@settings(max_examples=200, deadline=None)
@given(
    ops,
    st.integers(5, 10),
    st.none() | st.integers(0, 150),
    st.sets(st.sampled_from(TOPICS), max_size=2),
    st.sets(st.sampled_from(TOPICS), max_size=2),
)
def test_any_interleaving_keeps_the_runs_invariants(
    program: list[Op], minutes: int, stop_at: int | None, no_quiz: set[str], no_lesson: set[str]
) -> None:
    if stop_at is not None:
        program = [*program[:stop_at], ("stop", 0), *program[stop_at:]]
    run = started(*TOPICS, duration_minutes=minutes)
    driver = ScriptedDriver(no_quiz=no_quiz, no_lesson=no_lesson)
    now = NOW
    expected_ms = 0
    last_outcome: DriverOutcome | None = None
    received: dict[str, int] = {}  # question id -> the option taken as received
    for op, number in program:
        before, previous = run.model_dump_json(), run
        action = next_action(run, now)
        if op == "wait":
            if run.status == "running":
                expected_ms += number * 1000
            now += seconds(number)
        elif op == "drive" and not isinstance(action, Idle):
            outcome: DriverOutcome | None = driver.outcome(run, action)
            if isinstance(action, AwaitAnswer) and now >= action.answer_deadline:
                outcome = AnswerTimedOut(action_id=action.action_id, question_id=action.question.id)
            if outcome is not None:
                run, last_outcome = apply(run, outcome, now).run, outcome
        elif op == "answer" and isinstance(action, AwaitAnswer):
            question_id = action.question.id if number % 3 else "no-such-question"
            try:
                run = apply(
                    run, AnswerGiven(question_id=question_id, answer_index=number % 5), now
                ).run
            except AnswerRefused:
                assert run.model_dump_json() == before
            else:
                assert run.answers[-1].answer_index == number % 5
        elif op == "receive" and isinstance(action, AwaitAnswer):
            # An answer the quiz service grades: taken first, graded later ("grade").
            try:
                taken = apply(
                    run,
                    AnswerReceived(question_id=action.question.id, answer_index=number % 4),
                    now,
                )
            except AnswerRefused:
                assert run.model_dump_json() == before
            else:
                run = taken.run
                pending = run.pending
                assert pending is not None
                received.setdefault(pending.question_id, pending.answer_index)
                assert taken.new_steps == ()
        elif op == "grade" and run.pending_answer is not None:
            pending = run.pending_answer
            try:
                run = apply(
                    run,
                    AnswerGiven(
                        question_id=pending.question_id,
                        answer_index=pending.answer_index,
                        correct=number % 2 == 0,
                        correct_option_index=0,
                    ),
                    now,
                ).run
            except AnswerRefused:
                assert run.model_dump_json() == before
        elif op in ("pause", "resume", "stop"):
            control = {
                "pause": PauseRequested(),
                "resume": ResumeRequested(),
                "stop": StopRequested(),
            }
            try:
                run = apply(run, control[op], now).run
            except ControlRefused:
                assert run.model_dump_json() == before
            else:
                # Control acts at once.
                assert run.status == {"pause": "paused", "resume": "running", "stop": "stopped"}[op]
        elif op == "restore":
            # Another replica carries the run on from its stored JSON.
            restored = AutopilotRun.model_validate_json(before)
            assert restored == run
            assert restored.model_dump_json() == before
            assert next_action(restored, now) == action
            run = restored
        if last_outcome is not None:
            again = apply(run, last_outcome, now)
            assert again.ignored is not None
            assert (again.run, again.new_steps) == (run, ())
        # The state passed in is never changed, whatever was applied to it.
        assert previous.model_dump_json() == before
        # Steps are contiguous; study time is running time only, pauses excluded.
        assert [s.number for s in run.steps] == list(range(1, len(run.steps) + 1))
        assert run.elapsed_ms(now) == expected_ms
        assert run.steps[-1].status == run.status
        # No answer of a waiting question anywhere the client can see.
        view = status_view(run, now)
        if view.current_question is not None:
            assert "correct_option_index" not in view.current_question.model_dump()
            assert not any(
                s.data.get("question_id") == view.current_question.id
                and "correct_option_index" in s.data
                for s in view.steps
            )
        assert view.awaiting_input == (
            run.status == "running" and run.waiting_question is not None and run.pending is None
        )
        # An answer taken as received is settled with its own option, or skipped only as
        # ungraded after the grading bound: never as an unanswered timeout.
        for step in run.steps:
            qid = step.data.get("question_id")
            if step.action == "skip" and isinstance(qid, str) and qid in received:
                assert step.data.get("ungraded") is True
                assert step.data.get("received_answer_index") == received[qid]
            if step.action == "answer" and isinstance(qid, str) and qid in received:
                assert step.data["answer_index"] == received[qid]
    event(f"ended {run.status}")
    event(f"{len(run.topics_completed)} topics completed")
    event(f"skips: {sum(s.action == 'skip' for s in run.steps) > 0}")
    event(f"answers taken as received: {bool(received)}")
    event(f"ungraded skips: {any(s.data.get('ungraded') for s in run.steps)}")


# --- A quiz that cannot be made ------------------------------------------------------------


def test_the_quiz_is_asked_with_the_topics_lessons_as_source_text() -> None:
    run, now = ScriptedDriver().until(
        started(*TOPICS), NOW, lambda run, now: isinstance(next_action(run, now), GenerateQuiz)
    )
    action = next_action(run, now)
    assert isinstance(action, GenerateQuiz)
    assert action.lessons == ["Lesson 1 on Kinematics", "Lesson 2 on Kinematics"]


def quiz_skipped(run: AutopilotRun, _: dt.datetime) -> bool:
    return "quiz_skipped" in [s.action for s in run.steps]


def test_a_quiz_that_cannot_be_made_is_skipped_and_the_run_goes_on() -> None:
    driver = ScriptedDriver(no_quiz={"Kinematics"})
    run, now = driver.until(started(*TOPICS), NOW, quiz_skipped)
    skipped = run.steps[-1]
    assert (skipped.action, skipped.status, skipped.phase) == (
        "quiz_skipped",
        "running",
        "choosing_topic",
    )
    assert skipped.data["topic"] == "Kinematics"
    assert skipped.data["reason"] == "no valid question from the model and no source text"
    assert skipped.reasoning.startswith("no quiz on Kinematics: no valid question")
    assert run.topics_skipped == ["Kinematics"]
    assert (run.lessons, run.quiz, run.answers) == ([], [], [])
    # The next choice is another topic (the skipped one would otherwise be chosen again,
    # and it holds back no topic that needs it first); that topic is quizzed and graded.
    run, now = driver.until(run, now, lambda run, _: bool(run.topics_completed))
    chosen = [s.data["topic"] for s in run.steps if s.action == "choose_topic"]
    assert chosen == ["Kinematics", "Laws of Motion"]
    assert run.topics_completed == ["Laws of Motion"]
    assert any(s.action == "answer" for s in run.steps)
    assert run.status == "running"


def test_a_run_whose_every_quiz_is_skipped_completes_saying_why() -> None:
    run = started(*TOPICS)
    driver = ScriptedDriver(no_quiz=set(TOPICS))
    run, _ = driver.run_to_end(run, NOW)
    assert run.status == "completed"
    assert [s.action for s in run.steps].count("quiz_skipped") == 3
    assert run.end_reason == (
        "every topic is at mastery 0.85 or above or had no quiz in this run "
        "(Kinematics, Laws of Motion, Gravitation)"
    )


def test_a_skipped_quiz_is_taken_only_while_a_quiz_is_due() -> None:
    run = apply(started(*TOPICS), LearnerRead(action_id=1), NOW).run
    assert run.phase == "teaching"
    with pytest.raises(OutcomeRejected):
        apply(run, QuizSkipped(action_id=2, reason="no quiz"), NOW)


def test_a_redelivered_skip_changes_nothing() -> None:
    driver = ScriptedDriver(no_quiz={"Kinematics"})
    run, now = driver.until(started(*TOPICS), NOW, quiz_skipped)
    again = apply(run, driver.applied[-1], now)
    assert again.duplicate
    assert again.run is run
