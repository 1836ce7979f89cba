"""Errors of the planner's domain; each one is bad input the service answers with a 4xx."""

from __future__ import annotations


class PlanningError(ValueError):
    """Base class: the request cannot be planned as it stands."""


class EmptySyllabusError(PlanningError):
    """No topics to plan."""


class DuplicateTopicError(PlanningError):
    """Two topics whose normalised names are the same."""


class NoStudyDaysError(PlanningError):
    """Every day of the plan is a day off, or the exam leaves no day before it."""


class PrerequisiteCycleError(PlanningError):
    """Prerequisite links that go round in a circle.

    Attributes:
        cycle: The topic names along the cycle, the first repeated at the end.
    """

    def __init__(self, cycle: list[str], where: str = "") -> None:
        self.cycle = cycle
        place = f" in {where}" if where else ""
        super().__init__(f"prerequisite cycle{place}: {' -> '.join(cycle)}")


class CapacityError(PlanningError):
    """The syllabus needs more hours than the days can hold.

    Attributes:
        needed_hours: Hours of learning the topics need (quarter hours, rounded up per topic).
        available_hours: Hours of learning the plan can hold at most.
        revision_reserve_hours: Hours kept for revision, not counted as available.
        study_days: Days of the plan that are not days off.
        hours_per_day: The daily cap used.
        min_days_needed: The fewest days that would fit at the same cap, or ``None`` when no
            number of days up to the limit (or up to the exam) would.
        dropping_allowed: Whether the request allowed dropping topics (and still nothing fit).
    """

    def __init__(
        self,
        *,
        needed_hours: float,
        available_hours: float,
        revision_reserve_hours: float,
        study_days: int,
        hours_per_day: float,
        min_days_needed: int | None,
        dropping_allowed: bool = False,
    ) -> None:
        self.needed_hours = needed_hours
        self.available_hours = available_hours
        self.revision_reserve_hours = revision_reserve_hours
        self.study_days = study_days
        self.hours_per_day = hours_per_day
        self.min_days_needed = min_days_needed
        hint = (
            f"{min_days_needed} days would fit"
            if min_days_needed is not None
            else "no number of days up to the limit would fit"
        )
        remedy = (
            "not even one topic fits; add days or hours per day"
            if dropping_allowed
            else "add days or hours per day, or ask for overflow='drop'"
        )
        super().__init__(
            f"the syllabus needs {needed_hours:g} h of study but {study_days} study days at "
            f"{hours_per_day:g} h/day hold {available_hours:g} h after "
            f"{revision_reserve_hours:g} h of revision; {hint} - {remedy}"
        )


class RegistryError(ValueError):
    """A syllabus registry file that cannot be used (bad TOML, unknown names, cycles)."""


class UnknownScopeError(LookupError):
    """An exam, subject or sub-subject the registry does not know.

    Attributes:
        known: The keys that would have been accepted at that level.
    """

    def __init__(self, message: str, known: list[str]) -> None:
        self.known = known
        super().__init__(f"{message}; known: {', '.join(known) if known else 'none'}")
