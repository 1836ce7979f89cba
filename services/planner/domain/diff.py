"""What changed between two versions of a plan, for the history's diff view."""

from __future__ import annotations

from collections.abc import Iterable

from exammentor.contracts.plan import DayHoursChange, PlanDiff, StudyPlan, TopicMove
from services.planner.domain.names import normalise_topic_name

_TOLERANCE_HOURS = 1e-9


def _learning_days(plan: StudyPlan) -> dict[str, tuple[str, list[int]]]:
    """Normalised name -> (name as first written, sorted days with a ``learn`` session)."""
    found: dict[str, tuple[str, set[int]]] = {}
    for day in plan.schedule:
        for topic in day.topics:
            if topic.kind == "learn":
                key = normalise_topic_name(topic.name)
                found.setdefault(key, (topic.name, set()))[1].add(day.day)
    return {key: (name, sorted(days)) for key, (name, days) in found.items()}


def _hours_by_day(plan: StudyPlan) -> dict[int, float]:
    hours: dict[int, float] = {}
    for day in plan.schedule:
        hours[day.day] = hours.get(day.day, 0.0) + day.estimated_hours
    return hours


def _by_first_day(keys: Iterable[str], days: dict[str, tuple[str, list[int]]]) -> list[str]:
    return sorted(keys, key=lambda key: (days[key][1][0], days[key][0]))


def diff_plans(before: StudyPlan, after: StudyPlan) -> PlanDiff:
    """Compare two plans.

    Topics are compared by normalised name on their ``learn`` sessions: added, removed, or
    moved when the set of days they are learned on changed. Day totals are compared by day
    number (a day missing from one plan counts as 0 h there).

    Args:
        before: The earlier version.
        after: The later version.

    Returns:
        The changes, topics in order of the day they (first) appear on.
    """
    old, new = _learning_days(before), _learning_days(after)
    added = _by_first_day(new.keys() - old.keys(), new)
    removed = _by_first_day(old.keys() - new.keys(), old)
    moved = [
        TopicMove(topic=new[key][0], from_days=old[key][1], to_days=new[key][1])
        for key in _by_first_day(new.keys() & old.keys(), new)
        if old[key][1] != new[key][1]
    ]
    old_hours, new_hours = _hours_by_day(before), _hours_by_day(after)
    changed = [
        DayHoursChange(
            day=number,
            hours_before=old_hours.get(number, 0.0),
            hours_after=new_hours.get(number, 0.0),
        )
        for number in sorted(old_hours.keys() | new_hours.keys())
        if abs(old_hours.get(number, 0.0) - new_hours.get(number, 0.0)) > _TOLERANCE_HOURS
    ]
    return PlanDiff(
        topics_added=[new[key][0] for key in added],
        topics_removed=[old[key][0] for key in removed],
        topics_moved=moved,
        hours_changed=changed,
    )
