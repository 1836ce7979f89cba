"""The autopilot's rules: defaults, their limits and the quiz difficulty bands."""

from __future__ import annotations

import pytest

from services.autopilot.domain import DEFAULT_POLICY, AutopilotPolicy


def test_the_defaults_are_the_originals_loop() -> None:
    policy = DEFAULT_POLICY
    assert (policy.lessons_per_topic, policy.questions_per_quiz) == (2, 3)
    assert (policy.answer_timeout_seconds, policy.answer_timeout_ms) == (60, 60_000)


@pytest.mark.parametrize(
    ("mastery", "difficulty"),
    [(0.0, "easy"), (0.39, "easy"), (0.4, "medium"), (0.69, "medium"), (0.7, "hard"), (1, "hard")],
)
def test_quiz_difficulty_follows_mastery(mastery: float, difficulty: str) -> None:
    assert DEFAULT_POLICY.difficulty_for(mastery) == difficulty


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"prerequisite_floor": 0.9}, "prerequisite_floor (0.9) <= mastery_threshold (0.85)"),
        ({"mastery_threshold": 1.5}, "mastery_threshold (1.5) <= 1"),
        ({"questions_per_quiz": 0}, "at least one lesson and one question"),
        ({"answer_timeout_seconds": 0}, "must be positive"),
        ({"critical_topic_weight": 0}, "critical_topic_weight positive"),
    ],
)
def test_rules_that_cannot_work_are_refused(changes: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        AutopilotPolicy(**changes)  # type: ignore[arg-type]
