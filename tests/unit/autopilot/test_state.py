"""The run's state: a JSON value that comes back exactly, and the questions it keeps."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from services.autopilot.domain import (
    AutopilotRun,
    LearnerRead,
    PauseRequested,
    QuizGenerated,
    QuizQuestion,
    apply,
)
from tests.unit.autopilot.strategies import NOW, ScriptedDriver, questions, started


def test_a_whole_run_survives_json_exactly_at_every_step() -> None:
    run, now = started("Kinematics", "Optics", duration_minutes=5), NOW
    driver = ScriptedDriver(answers=[1, 0, None, 2, 1, 1])
    read = LearnerRead(
        action_id=1,
        mastery={"Optics": 0.123456789},
        reviews_due={"Optics": NOW + dt.timedelta(days=3)},
        misconceptions={"Kinematics": ["sign of g"]},
    )
    run = apply(run, read, now).run
    seen = 0
    while not run.is_finished:
        text = run.model_dump_json()
        back = AutopilotRun.model_validate_json(text)
        assert back == run
        assert back.model_dump_json() == text
        applied, now = driver.step(run, now)
        if applied is not None:
            run = applied.run
        seen += 1
    assert seen > 20
    assert AutopilotRun.model_validate_json(run.model_dump_json()) == run


def test_study_time_is_whole_milliseconds_of_running_time() -> None:
    run = started("Kinematics")
    later = NOW + dt.timedelta(seconds=1, microseconds=999)
    assert run.elapsed_ms(later) == 1000
    paused = apply(run, PauseRequested(), later).run
    assert (paused.elapsed_before_ms, paused.running_since) == (1000, None)
    assert paused.elapsed_ms(later + dt.timedelta(days=1)) == 1000
    assert paused.wall_time_at(5000) is None


def test_a_question_keeps_its_answer_in_range_and_shows_none_of_it() -> None:
    with pytest.raises(ValidationError, match="correct_option_index 2 is out of range for 2"):
        QuizQuestion(id="q", text="t", options=["a", "b"], correct_option_index=2)
    question = questions("Optics", 1)[0]
    view = question.view().model_dump()
    assert "correct_option_index" not in view
    assert "explanation" not in view
    assert view["options"] == question.options


def test_a_quiz_needs_questions_with_distinct_ids() -> None:
    with pytest.raises(ValidationError, match="question ids must be unique"):
        QuizGenerated(action_id=1, questions=[*questions("Optics", 1, 1)] * 2)
    with pytest.raises(ValidationError):
        QuizGenerated(action_id=1, questions=[])
