"""Exact plan verifier: the hard constraints of a plan, checked in code rather than judged.

A topic counts as scheduled when it has a ``learn`` session (reviews and revision do not
cover a topic nobody learned), matched by :func:`normalise_topic_name`. A day's hours are
the larger of its ``estimated_hours`` and the sum of its sessions' hours, so neither figure
can hide an overload. A prerequisite is violated when the dependent's first ``learn``
session comes on an earlier day than the prerequisite's first one; a prerequisite that is
not scheduled at all is reported once, as missing, not again as an ordering problem.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from exammentor.contracts.plan import (
    DEFAULT_HOURS_PER_DAY,
    DailyPlan,
    PlanVerification,
    PrerequisiteViolation,
    StudyPlan,
)
from services.planner.domain.names import normalise_topic_name
from services.planner.domain.topics import SyllabusTopic

_TOLERANCE_HOURS = 1e-6
"""Float noise allowed over the cap (plans in quarter hours are exact anyway)."""


def day_hours(day: DailyPlan) -> float:
    """Hours a day asks of the student: its stated total or its sessions' sum, the larger.

    Args:
        day: A day of a plan.

    Returns:
        The hours the verifier holds against the daily cap.
    """
    return max(day.estimated_hours, sum(topic.hours or 0.0 for topic in day.topics))


def first_learning_days(plan: StudyPlan) -> dict[str, int]:
    """The day of each topic's first ``learn`` session.

    Args:
        plan: Any plan.

    Returns:
        Normalised topic name -> lowest day number with a ``learn`` session of it.
    """
    first: dict[str, int] = {}
    for day in plan.schedule:
        for topic in day.topics:
            if topic.kind == "learn":
                key = normalise_topic_name(topic.name)
                first[key] = min(first.get(key, day.day), day.day)
    return first


def verify_plan(
    plan: StudyPlan,
    topics: Sequence[SyllabusTopic],
    *,
    hours_per_day: float = DEFAULT_HOURS_PER_DAY,
    require_revision: bool = True,
) -> PlanVerification:
    """Check a plan against the topics it must cover.

    Args:
        plan: The plan to check (computed, or proposed by the model).
        topics: The required topics, with their prerequisites; prerequisite names that are
            not required topics are ignored.
        hours_per_day: The daily cap.
        require_revision: Whether a plan without revision is defective.

    Returns:
        The verification: the original's fields, exact coverage, and a critique that lists
        every defect found (or says the plan passed).
    """
    required: dict[str, str] = {}
    for topic in topics:
        required.setdefault(normalise_topic_name(topic.name), topic.name)
    first = first_learning_days(plan)

    missing = [name for key, name in required.items() if key not in first]
    scheduled = len(required) - len(missing)
    # Floor, not round: 2999 of 3000 topics must not read as 100 %.
    coverage = math.floor(scheduled / len(required) * 1000) / 10 if required else 100.0

    overloaded = [
        day.day for day in plan.schedule if day_hours(day) > hours_per_day + _TOLERANCE_HOURS
    ]

    violations: list[PrerequisiteViolation] = []
    seen_topics: set[str] = set()
    for topic in topics:
        key = normalise_topic_name(topic.name)
        if key in seen_topics or key not in first:
            continue
        seen_topics.add(key)
        checked: set[str] = set()
        for name in topic.prerequisites:
            basis = normalise_topic_name(name)
            if basis == key or basis in checked or basis not in required or basis not in first:
                continue
            checked.add(basis)
            if first[key] < first[basis]:
                violations.append(
                    PrerequisiteViolation(
                        topic=topic.name,
                        prerequisite=required[basis],
                        topic_day=first[key],
                        prerequisite_day=first[basis],
                    )
                )

    revision_present = any(
        day.day_type == "revision" or any(topic.kind == "revision" for topic in day.topics)
        for day in plan.schedule
    )

    extra: list[str] = []
    extra_keys: set[str] = set()
    for day in plan.schedule:
        for session in day.topics:
            key = normalise_topic_name(session.name)
            if session.kind == "learn" and key not in required and key not in extra_keys:
                extra_keys.add(key)
                extra.append(session.name)

    issues = [
        f"'{v.topic}' starts on day {v.topic_day} but its prerequisite '{v.prerequisite}' "
        f"starts on day {v.prerequisite_day}"
        for v in violations
    ]
    revision_missing = require_revision and not revision_present
    is_valid = not (missing or overloaded or violations or revision_missing)
    return PlanVerification(
        is_valid=is_valid,
        missing_topics=missing,
        overloaded_days=overloaded,
        prerequisite_issues=issues,
        critique=_critique(
            plan,
            missing=missing,
            required_count=len(required),
            overloaded=overloaded,
            issues=issues,
            revision_missing=revision_missing,
            hours_per_day=hours_per_day,
        ),
        coverage_percent=coverage,
        revision_present=revision_present,
        required_topics_count=len(required),
        scheduled_topics_count=scheduled,
        hours_cap=hours_per_day,
        prerequisite_violations=violations,
        extra_topics=extra,
    )


def _critique(
    plan: StudyPlan,
    *,
    missing: Sequence[str],
    required_count: int,
    overloaded: Sequence[int],
    issues: Sequence[str],
    revision_missing: bool,
    hours_per_day: float,
) -> str:
    """The defects in words, one sentence each, precise enough for a model to fix them."""
    defects: list[str] = []
    if missing:
        defects.append(
            f"{len(missing)} of {required_count} required topics have no learning session: "
            f"{', '.join(missing)}."
        )
    if overloaded:
        by_day = {day.day: day_hours(day) for day in plan.schedule}
        days = ", ".join(f"day {number} ({by_day[number]:g} h)" for number in overloaded)
        defects.append(f"Over the {hours_per_day:g} h daily cap: {days}.")
    if issues:
        defects.append(f"Prerequisites out of order: {'; '.join(issues)}.")
    if revision_missing:
        defects.append("No revision: add revision sessions or a revision day before the exam.")
    if defects:
        return " ".join(defects)
    return (
        f"All {required_count} required topics are scheduled, no day exceeds "
        f"{hours_per_day:g} h, prerequisites come first and revision is included."
    )
