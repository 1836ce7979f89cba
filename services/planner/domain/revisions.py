"""Revisions of a scheduled plan: the moves the fix loop applies for what the scheduler
cannot express, the model's screened words, the final choice among the versions, and the
planned study that carries them all.

Nothing here is checked or screened: the verifier judges a moved plan, ``prompts`` screens
the model's words before they arrive.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from exammentor.contracts.plan import (
    DailyPlan,
    DroppedTopic,
    PlanVerification,
    PlanVersion,
    StudyPlan,
    Topic,
    VerifiedPlanHistory,
)
from services.planner.domain.focus import asks_for_order
from services.planner.domain.names import mentions, normalise_topic_name, padded_phrase
from services.planner.domain.resolution import ResolvedTopics
from services.planner.domain.routing import Routing
from services.planner.domain.scheduler import CapacityReport
from services.planner.domain.topics import SyllabusTopic

# --- The fix loop's edits ----------------------------------------------------------------


class ProposedMove(Protocol):
    """A topic and the day its learning should move to (the model's edit answers this)."""

    @property
    def topic(self) -> str:
        """The topic's name, as planned."""
        ...

    @property
    def to_day(self) -> int:
        """The day number that receives it."""
        ...


def wished_topics(goal: str, topics: Sequence[SyllabusTopic]) -> list[str]:
    """Planned topics the goal names, when it also asks for an order or a day.

    This is what the scheduler cannot express: it orders by prerequisites and weight, not
    by what a student prefers.

    Args:
        goal: The student's goal.
        topics: The topics planned.

    Returns:
        Topic names (as planned) the goal places; empty when it places none.
    """
    if not asks_for_order(goal):
        return []
    phrase = padded_phrase(goal)
    # A goal that names a heading ("Arithmetic first") places every item planned under it;
    # one that names an item ("triangles first") places that item.
    return [
        t.name
        for t in topics
        if mentions(phrase, tuple(n for n in (t.name, t.item, t.registry_name, t.heading) if n))
    ]


def _day_theme(day: DailyPlan) -> str:
    """A learning day's theme in the scheduler's style, for a day an edit changed."""
    learned = list(dict.fromkeys(t.name for t in day.topics if t.kind == "learn"))
    if learned:
        extra = f"; {len(learned) - 3} more" if len(learned) > 3 else ""
        return "; ".join(learned[:3]) + extra
    return "Spaced reviews" if day.topics else "Buffer day: catch up or rest"


def apply_moves(plan: StudyPlan, moves: Sequence[ProposedMove]) -> StudyPlan:
    """The plan with every learning session of each moved topic put on its new day.

    A moved topic's sessions become one session of the same total hours; its spaced reviews
    on or before the new day are dropped (a review cannot come before the learning). Day
    totals and the themes of changed learning days are recomputed; nothing is checked here.

    Args:
        plan: The plan to change.
        moves: Topic and target day, in order (a later move of the same topic wins).

    Returns:
        A new plan.
    """
    new = plan.model_copy(deep=True)
    by_number = {day.day: day for day in new.schedule}
    touched: set[int] = set()
    for move in moves:
        key = normalise_topic_name(move.topic)
        target = by_number.get(move.to_day)
        if target is None:
            continue
        taken: list[Topic] = []
        for day in new.schedule:
            kept: list[Topic] = []
            for session in day.topics:
                same = normalise_topic_name(session.name) == key
                if same and session.kind == "learn":
                    taken.append(session)
                elif same and session.kind == "review" and day.day <= move.to_day:
                    pass  # a review before (or on) the day it is now learned
                else:
                    kept.append(session)
            if len(kept) != len(day.topics):
                day.topics = kept
                touched.add(day.day)
        if not taken:
            continue
        merged = taken[0].model_copy(
            update={"hours": sum(s.hours or 0.0 for s in taken), "part": 1, "parts": 1}
        )
        target.topics.insert(
            sum(1 for s in target.topics if s.kind == "learn"),
            merged,
        )
        touched.add(target.day)
    for number in touched:
        day = by_number[number]
        day.estimated_hours = sum(s.hours or 0.0 for s in day.topics)
        if day.day_type == "study":
            day.theme = _day_theme(day)
    return new


def plan_lines(plan: StudyPlan, hours_per_day: float, limit: int) -> list[str]:
    """``day N (h of cap): topic (h), ...`` lines, for the fix prompt.

    Args:
        plan: The plan.
        hours_per_day: The daily cap, shown with each day's load.
        limit: Most days listed.

    Returns:
        The lines.
    """
    lines: list[str] = []
    for day in plan.schedule:
        if day.day_type == "off":
            continue
        load = f"day {day.day} ({day.estimated_hours:g} of {hours_per_day:g} h)"
        learned = [f"{t.name} ({t.hours or 0:g} h)" for t in day.topics if t.kind == "learn"]
        if day.day_type == "revision":
            lines.append(f"{load}: revision")
        else:
            lines.append(f"{load}: {', '.join(learned) or 'reviews only'}")
        if len(lines) >= limit:
            lines.append("...")
            break
    return lines


def learning_days(plan: StudyPlan) -> dict[str, list[int]]:
    """The days each topic is learned on, to tell whether an edit moved a wished topic.

    Args:
        plan: The plan.

    Returns:
        Normalised topic name -> day numbers with a ``learn`` session, in plan order.
    """
    days: dict[str, list[int]] = {}
    for day in plan.schedule:
        for t in day.topics:
            if t.kind == "learn":
                days.setdefault(normalise_topic_name(t.name), []).append(day.day)
    return days


def choose_final(versions: Sequence[PlanVersion]) -> PlanVersion:
    """The version to serve: the last one that passed the check (the last one if none did).

    Args:
        versions: The plan's versions, in order; at least one.

    Returns:
        The chosen version.
    """
    passed = [v for v in versions if v.verification.is_valid]
    return passed[-1] if passed else versions[-1]


# --- Words -------------------------------------------------------------------------------


def apply_prose(
    plan: StudyPlan,
    *,
    overview: str | None,
    themes: dict[int, str],
    reasons: dict[str, str],
) -> StudyPlan:
    """The plan with the model's screened words added to the scheduler's.

    The scheduler's text carries the exact facts (hours, parts, prerequisites), so the
    model's words come first and the facts stay: ``"<model's theme>: <topics>"``,
    ``"<model's reason> <weight, hours, prerequisites>"``.

    Args:
        plan: The final plan.
        overview: The model's overview, or None.
        themes: Day number -> the model's theme.
        reasons: Topic name -> the model's reason (learning sessions only).

    Returns:
        A new plan.
    """
    new = plan.model_copy(deep=True)
    if overview:
        new.overview = f"{overview} {plan.overview}"
    by_key = {normalise_topic_name(name): text for name, text in reasons.items()}
    for day in new.schedule:
        if day.day in themes:
            day.theme = f"{themes[day.day]}: {day.theme}"
        for session in day.topics:
            reason = by_key.get(normalise_topic_name(session.name))
            if reason and session.kind == "learn":
                session.rationale = f"{reason} {session.rationale}"
    return new


def with_left_out(plan: StudyPlan, topics: Sequence[SyllabusTopic], reason: str) -> StudyPlan:
    """The plan with the pasted topics the goal asked to leave out recorded in it.

    They join ``dropped_topics`` with the reason, and the overview says so, so the stored
    plan (not only the request's result) tells which topics are not in it and why.

    Args:
        plan: The scheduler's plan.
        topics: The topics left out at the student's request.
        reason: Why, quoting the goal.

    Returns:
        A new plan; the same plan when nothing was left out.
    """
    if not topics:
        return plan
    left_out = [
        DroppedTopic(name=t.name, weight=t.weight, hours=t.hours, reason=reason) for t in topics
    ]
    names = [t.name for t in topics]
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return plan.model_copy(
        update={
            "dropped_topics": [*plan.dropped_topics, *left_out],
            "overview": f"{plan.overview} Not planned, {reason}: {shown}.",
        }
    )


def theme_listing(day: DailyPlan) -> str:
    """What a day holds, as the theme prompt lists it.

    Args:
        day: A study or revision day.

    Returns:
        ``revision``, the learned topics joined by ``;``, or ``spaced reviews``.
    """
    if day.day_type == "revision":
        return "revision"
    learned = list(dict.fromkeys(t.name for t in day.topics if t.kind == "learn"))
    return "; ".join(learned) if learned else "spaced reviews"


# --- The result --------------------------------------------------------------------------


@dataclass
class PlannedStudy:
    """A verified plan with its history and how it was made."""

    history: VerifiedPlanHistory
    verification: PlanVerification
    routing: Routing
    capacity: CapacityReport
    topics: ResolvedTopics
    fix_log: list[dict[str, Any]]
    prose: dict[str, Any]

    def as_result(self) -> dict[str, Any]:
        """The request's result: the original's history shape plus ExamMentor's reports."""
        return {
            "needs_clarification": False,
            **self.history.model_dump(mode="json"),
            "verification": self.verification.model_dump(mode="json"),
            "routing": self.routing.as_dict(),
            "capacity": self.capacity.model_dump(mode="json"),
            "topic_source": self.topics.source,
            "excluded_topics": self.topics.excluded,
            "notes": [*self.routing.notes, *self.topics.notes],
            "fix_log": self.fix_log,
            "prose": self.prose,
        }
