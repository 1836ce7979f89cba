"""Autopilot contracts: the start request's refusals, the original's shapes, no answer in a
question view."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from exammentor.contracts.autopilot import (
    AutopilotAnswerRequest,
    AutopilotStartRequest,
    AutopilotStatusResponse,
    AutopilotStep,
    AutopilotWatchEvent,
    QuestionView,
    plan_topic_names,
)
from tests.unit.autopilot.strategies import NOW, make_plan

PLAN = make_plan("Kinematics", "Optics", "kinematics ", "Gravitation")


def error_of(**fields: Any) -> tuple[str, str]:
    with pytest.raises(ValidationError) as caught:
        AutopilotStartRequest.model_validate({"study_plan": PLAN, **fields})
    errors = caught.value.errors()
    assert len(errors) == 1, errors
    return errors[0]["type"], errors[0]["msg"]


def test_defaults_are_the_originals() -> None:
    request = AutopilotStartRequest(study_plan=PLAN)
    assert (request.duration_minutes, request.exam_type) == (30, "")
    assert (request.focus_topics, request.exam_date) == (None, None)


@pytest.mark.parametrize(
    ("minutes", "expected"),
    [
        (4, ("greater_than_equal", "Input should be greater than or equal to 5")),
        (241, ("less_than_equal", "Input should be less than or equal to 240")),
    ],
)
def test_a_duration_outside_5_to_240_minutes_is_refused(
    minutes: int, expected: tuple[str, str]
) -> None:
    assert error_of(duration_minutes=minutes) == expected
    schema = AutopilotStartRequest.model_json_schema()["properties"]["duration_minutes"]
    assert (schema["minimum"], schema["maximum"]) == (5, 240)


def test_a_plan_with_no_topics_is_refused() -> None:
    kind, message = error_of(study_plan=make_plan())
    assert kind == "plan_has_no_topics"
    assert "study_plan has no topics in schedule[].topics[]" in message


def test_focus_topics_must_be_plan_topics() -> None:
    kind, message = error_of(focus_topics=["optics", "Thermodynamics", "Mole Concept"])
    assert kind == "focus_not_in_plan"
    assert message == (
        "focus_topics must name topics of the plan; not in it: Thermodynamics, Mole Concept "
        "(the plan has 3 topics)"
    )
    assert error_of(focus_topics=[])[0] == "focus_not_in_plan"
    request = AutopilotStartRequest(study_plan=PLAN, focus_topics=[" OPTICS"])
    assert request.focus_topics == [" OPTICS"]


def test_plan_topic_names_are_distinct_in_plan_order() -> None:
    assert plan_topic_names(PLAN) == ["Kinematics", "Optics", "Gravitation"]


def test_an_answer_index_is_never_negative() -> None:
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        AutopilotAnswerRequest(question_id="q1", answer_index=-1)
    with pytest.raises(ValidationError):
        AutopilotAnswerRequest.model_validate({"question_id": "q1", "answer_index": 0, "x": 1})


def test_a_question_view_has_no_field_for_the_answer() -> None:
    # The original's current_question carried correct_option_index.
    assert "correct_option_index" not in QuestionView.model_fields
    assert "explanation" not in QuestionView.model_fields
    with pytest.raises(ValidationError):
        QuestionView.model_validate(
            {"id": "q", "text": "t", "options": ["a", "b"], "correct_option_index": 1}
        )


def test_the_status_keeps_the_originals_field_names() -> None:
    original = {
        "status",
        "current_phase",
        "current_topic",
        "topics_completed",
        "elapsed_seconds",
        "target_duration_minutes",
        "topic_mastery",
        "steps",
        "started_at",
        "completed_at",
        "current_content",
        "current_question",
        "awaiting_input",
    }
    assert original <= set(AutopilotStatusResponse.model_fields)
    assert {"timestamp", "action", "data", "reasoning", "duration_ms"} <= set(
        AutopilotStep.model_fields
    )


def test_a_step_and_a_watch_event_survive_json() -> None:
    step = AutopilotStep(
        number=3,
        timestamp=NOW,
        action="lesson",
        data={"topic": "Optics", "nested": {"list": [1, 2.5, None, True]}},
        reasoning="lesson 1 of 2 on Optics",
        duration_ms=1200,
        status="running",
        phase="teaching",
    )
    event = AutopilotWatchEvent(
        seq=3,
        session_id="00000000-0000-4000-8000-000000000001",  # type: ignore[arg-type]
        run_number=1,
        step=step,
        status="running",
        current_phase="teaching",
    )
    text = event.model_dump_json()
    assert AutopilotWatchEvent.model_validate_json(text) == event
    assert AutopilotWatchEvent.model_validate_json(text).model_dump_json() == text
    with pytest.raises(ValidationError, match="timezone"):
        AutopilotStep.model_validate({**step.model_dump(), "timestamp": "2026-03-02T09:00:00"})
