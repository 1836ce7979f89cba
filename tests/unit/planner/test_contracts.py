"""Plan contracts: the request's validation messages and the original's shapes."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pydantic import ValidationError

from exammentor.contracts.plan import (
    MAX_SYLLABUS_CHARS,
    PlanRequest,
    PlanVerification,
    RouterDecision,
    StudyPlan,
    VerificationSummary,
    VerifiedPlanHistory,
)


def error_of(**fields: Any) -> tuple[str, tuple[str | int, ...], str]:
    with pytest.raises(ValidationError) as caught:
        PlanRequest(**fields)
    errors = caught.value.errors()
    assert len(errors) == 1, errors
    return errors[0]["type"], errors[0]["loc"], errors[0]["msg"]


def test_defaults_are_the_originals() -> None:
    request = PlanRequest(syllabus_text="Kinematics", exam_type="NEET", goal="Crack physics")
    assert (request.days, request.hours_per_day, request.overflow) == (7, 8.0, "refuse")
    assert request.days_off == []
    assert request.exam_date is None


def test_the_registry_syllabus_is_used_when_none_is_pasted() -> None:
    assert PlanRequest(exam_type=" neet ", goal="all of it").exam_type == "neet"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"syllabus_text": "x" * (MAX_SYLLABUS_CHARS + 1)},
            (
                "syllabus_too_large",
                ("syllabus_text",),
                "syllabus_text is 50,001 characters; the limit is 50,000",
            ),
        ),
        (
            {"syllabus_text": " \n\t "},
            ("syllabus_empty", ("syllabus_text",), "syllabus_text is empty; paste a syllabus"),
        ),
        (
            {"syllabus_text": "Optics\ud800"},
            ("text_not_utf8", ("syllabus_text",), "syllabus_text is not valid UTF-8 text"),
        ),
        (
            {"syllabus_text": "Optics\x00"},
            ("text_has_nul", ("syllabus_text",), "syllabus_text contains NUL characters"),
        ),
        (
            {"goal": " \n "},
            ("goal_blank", ("goal",), "goal is empty or only whitespace"),
        ),
        (
            {"days": 0},
            ("days_out_of_range", ("days",), "days must be between 1 and 365, got 0"),
        ),
        (
            {"days": 366},
            ("days_out_of_range", ("days",), "days must be between 1 and 365, got 366"),
        ),
        (
            {"hours_per_day": 0},
            (
                "hours_per_day_out_of_range",
                ("hours_per_day",),
                "hours_per_day must be between 0.25 and 16.0, got 0.0",
            ),
        ),
        (
            {"hours_per_day": float("nan")},
            ("finite_number", ("hours_per_day",), "Input should be a finite number"),
        ),
        (
            {"overflow": "cram"},
            ("literal_error", ("overflow",), "Input should be 'refuse' or 'drop'"),
        ),
        (
            {"colour": "blue"},
            ("extra_forbidden", ("colour",), "Extra inputs are not permitted"),
        ),
        (
            {"syllabus_text": None, "exam_type": ""},
            ("syllabus_missing", (), "give syllabus_text, or an exam_type"),
        ),
        (
            {"start_date": "2026-03-01", "exam_date": "2026-03-01"},
            (
                "exam_date_not_after_start",
                (),
                "exam_date 2026-03-01 must be after start_date 2026-03-01",
            ),
        ),
    ],
)
def test_bad_requests_name_the_field_and_the_reason(
    fields: dict[str, Any], expected: tuple[str, tuple[str, ...], str]
) -> None:
    base: dict[str, Any] = {"syllabus_text": "Kinematics", "exam_type": "NEET", "goal": "pass"}
    kind, loc, message = error_of(**{**base, **fields})
    assert (kind, loc) == expected[:2]
    assert message.startswith(expected[2])


def test_days_off_are_a_sorted_set() -> None:
    request = PlanRequest(
        exam_type="jee", goal="g", days_off=["2026-02-02", "2026-02-01", "2026-02-02"]
    )
    assert request.days_off == [dt.date(2026, 2, 1), dt.date(2026, 2, 2)]


def test_plans_of_the_original_shape_parse_with_extension_defaults() -> None:
    original = {
        "exam_name": "NEET",
        "total_days": 1,
        "overview": "One day",
        "schedule": [
            {
                "day": 1,
                "theme": "Mechanics",
                "topics": [{"name": "Kinematics", "difficulty": "easy", "rationale": "basics"}],
                "estimated_hours": 6,
            }
        ],
        "critical_topics": ["Kinematics"],
    }
    plan = StudyPlan.model_validate(original)
    topic = plan.schedule[0].topics[0]
    assert (topic.kind, topic.hours, plan.schedule[0].day_type) == ("learn", None, "study")
    verification = PlanVerification.model_validate(
        {
            "is_valid": False,
            "missing_topics": ["Optics"],
            "overloaded_days": [],
            "prerequisite_issues": [],
            "critique": "Add Optics",
        }
    )
    summary = VerificationSummary.from_verification(verification, iterations_used=2)
    history = VerifiedPlanHistory(
        final_plan=plan,
        versions=[],
        total_iterations=2,
        self_correction_applied=True,
        verification_summary=summary,
    )
    assert history.model_dump()["verification_summary"] == {
        "coverage_percent": 0.0,
        "overloaded_days_count": 0,
        "prerequisite_issues_count": 0,
        "is_valid": False,
        "iterations_used": 2,
    }


def test_hours_in_a_plan_must_be_finite() -> None:
    with pytest.raises(ValidationError, match="finite number"):
        StudyPlan.model_validate_json(
            '{"exam_name": "", "total_days": 1, "overview": "", "schedule": [{"day": 1, '
            '"theme": "", "estimated_hours": NaN}]}'
        )


def test_critical_topics_are_at_most_five() -> None:
    with pytest.raises(ValidationError, match="at most 5 items"):
        StudyPlan(exam_name="", total_days=0, overview="", critical_topics=list("abcdef"))


def test_router_decisions_are_normalised_to_registry_keys() -> None:
    decision = RouterDecision.model_validate(
        {
            "intent": "plan",
            "exam": " NEET ",
            "scope": {"subject": "Chemistry", "sub_subject": "Organic", "topics": ["Hydrocarbons"]},
            "confidence": 0.9,
            "needs_clarification": False,
        }
    )
    assert (decision.exam, decision.scope.subject, decision.scope.sub_subject) == (
        "neet",
        "chemistry",
        "organic",
    )
    assert RouterDecision(intent="unknown", exam="", confidence=0).exam == "none"
    with pytest.raises(ValidationError):
        RouterDecision.model_validate({"intent": "gossip", "confidence": 0.5})
    with pytest.raises(ValidationError):
        RouterDecision(intent="plan", confidence=1.5)
