"""What clients see of a run: the status, the replies and the watch stream."""

from __future__ import annotations

import datetime as dt

from services.autopilot.domain import (
    AutopilotRun,
    LearnerRead,
    LessonTaught,
    PauseRequested,
    apply,
    control_response,
    start_response,
    status_view,
    watch_events,
)
from tests.unit.autopilot.strategies import NOW, SESSION, ScriptedDriver, awaits_answer, started

TOPICS = ("Kinematics", "Laws of Motion")


def waiting_run() -> tuple[AutopilotRun, dt.datetime]:
    return ScriptedDriver().until(started(*TOPICS), NOW, awaits_answer)


def test_the_status_while_a_lesson_is_shown_and_while_a_question_waits() -> None:
    run = apply(started(*TOPICS), LearnerRead(action_id=1), NOW).run
    run = apply(run, LessonTaught(action_id=2, content="Velocity is..."), NOW).run
    view = status_view(run, NOW + dt.timedelta(seconds=90))
    assert (view.current_phase, view.current_topic, view.current_content) == (
        "teaching",
        "Kinematics",
        "Velocity is...",
    )
    assert (view.current_question, view.awaiting_input, view.elapsed_seconds) == (None, False, 90)

    run, now = waiting_run()
    view = status_view(run, now)
    assert view.current_content is None
    assert view.current_question is not None
    assert view.current_question.id == "Kinematics-4-q1"
    assert view.awaiting_input
    assert view.answer_deadline == now + dt.timedelta(seconds=60)
    assert '"correct_option_index"' not in view.model_dump_json()
    assert [m.topic for m in view.topic_mastery] == list(TOPICS)


def test_a_paused_run_shows_its_question_but_awaits_no_input() -> None:
    run, now = waiting_run()
    paused = apply(run, PauseRequested(), now).run
    view = status_view(paused, now + dt.timedelta(hours=1))
    assert view.current_question is not None
    assert (view.status, view.awaiting_input, view.answer_deadline) == ("paused", False, None)


def test_the_replies_carry_the_originals_fields() -> None:
    run = started(*TOPICS, duration_minutes=20)
    assert start_response(run).model_dump() == {
        "session_id": SESSION,
        "status": "running",
        "target_duration_minutes": 20,
        "started_at": NOW,
        "run_number": 1,
    }
    paused = apply(run, PauseRequested(), NOW).run
    assert control_response(paused).model_dump() == {"status": "paused", "session_id": SESSION}


def test_the_watch_stream_is_the_steps_in_seq_order_resumable_after_any_seq() -> None:
    run, _ = waiting_run()
    events = watch_events(run)
    assert [e.seq for e in events] == [s.number for s in run.steps] == [1, 2, 3, 4, 5]
    assert [e.step.action for e in events] == ["start", "choose_topic", "lesson", "lesson", "quiz"]
    assert [e.seq for e in watch_events(run, after_seq=3)] == [4, 5]
    assert watch_events(run, after_seq=5) == []
    newest, older = events[-1], events[-2]
    assert newest.current_question is not None
    assert newest.awaiting_input
    assert (older.current_question, older.current_content, older.awaiting_input) == (
        None,
        None,
        False,
    )
    # The quiz step lists its questions without their answers.
    quiz = events[-1].step
    assert quiz.action == "quiz"
    assert "correct_option_index" not in str(quiz.data)
