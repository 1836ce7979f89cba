"""Topic resolution: the topics a routed request plans, and where they came from.

The student's pasted syllabus wins: every pasted topic is planned, enriched by the registry
(weights, hours, prerequisites). What the goal names (a pasted unit, topic or a subject) is
weighted, never narrowed to (:mod:`~services.planner.domain.focus`); a pasted topic is left
out only when the goal asks for it in as many words ("only Genetics", "skip Ecology"), and
then the notes say which and why. The registry's own topics are planned when nothing was
pasted, narrowed to the scope the goal names. The syllabus of an exam the registry does not
know borrows figures topic by topic from the exam routing names, and each borrowing is said
in the notes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from services.planner.domain.errors import CapacityError
from services.planner.domain.focus import GoalFocus, read_focus
from services.planner.domain.names import normalise_topic_name
from services.planner.domain.registry import RegistryTopic, Scope, SyllabusRegistry
from services.planner.domain.routing import Routing
from services.planner.domain.syllabus import ParsedTopic, enrich_topics, topics_from_registry
from services.planner.domain.topics import SyllabusTopic


@dataclass(frozen=True)
class ResolvedTopics:
    """The topics to plan and where they came from."""

    topics: list[SyllabusTopic]
    source: Literal["pasted", "registry"]
    excluded: list[str] = field(default_factory=list)
    """Pasted topics left out because the goal asks for it ("only Genetics")."""
    notes: list[str] = field(default_factory=list)
    left_out: list[SyllabusTopic] = field(default_factory=list)
    """The topics of ``excluded``, with their figures."""
    left_out_reason: str = ""
    """Why they were left out, quoting the goal (for the plan's ``dropped_topics``)."""


MIN_ESTIMATE_SHARE = 0.5
"""A pasted syllabus's estimated hours are scaled to fit its days down to this share; a
syllabus that needs more is refused (or trimmed) as the request says."""
FOCUS_WEIGHT_FACTOR = 2.0
"""A topic the goal names weighs this many times the heaviest pasted topic: it is learned
first where prerequisites allow, is among the critical topics and is revised last."""


def _quoted(phrases: Sequence[str]) -> str:
    return ", ".join(f"'{p}'" for p in phrases)


def _focused(
    topics: Sequence[SyllabusTopic], focus: GoalFocus, notes: Sequence[str]
) -> ResolvedTopics:
    """The pasted topics with the goal's focus applied: named ones weighted, and those the
    goal explicitly asks to leave out left out, with the notes that say so."""
    said = [*notes, *focus.notes]
    heaviest = max((t.weight for t in topics), default=1.0)
    planned: list[SyllabusTopic] = []
    left_out: list[SyllabusTopic] = []
    for topic in topics:
        if topic.name in focus.left_out:
            left_out.append(topic)
        elif topic.name in focus.weighted:
            planned.append(topic.model_copy(update={"weight": heaviest * FOCUS_WEIGHT_FACTOR}))
        else:
            planned.append(topic)
    if focus.weighted:
        count = len(focus.weighted)
        said.append(
            f"your goal names {_join(focus.named)}: {count} of your topics "
            f"{'is' if count == 1 else 'are'} "
            "weighted as the most important (learned first where prerequisites allow, "
            "critical, revised last); "
            + (
                "the others kept are planned too"
                if left_out
                else "every other pasted topic is planned too"
            )
        )
    reason = ""
    if left_out:
        reason = f"left out because your goal asks for it ({_quoted(focus.asked)})"
        said.append(
            f"{len(left_out)} of your topics {'is' if len(left_out) == 1 else 'are'} {reason}: "
            f"{', '.join(t.name for t in left_out)}"
        )
    return ResolvedTopics(
        planned,
        "pasted",
        excluded=[t.name for t in left_out],
        notes=said,
        left_out=left_out,
        left_out_reason=reason,
    )


def _join(names: Sequence[str]) -> str:
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} and {names[-1]}"


def _scope_topics(registry: SyllabusRegistry, scopes: Sequence[Scope]) -> list[RegistryTopic]:
    seen: dict[tuple[str, str], RegistryTopic] = {}
    for scope in scopes:
        for topic in registry.topics(scope.exam, scope.subject, scope.sub_subject):
            seen.setdefault((topic.subject, topic.name), topic)
    return list(seen.values())


def registry_syllabus(
    registry: SyllabusRegistry, registry_topics: Sequence[RegistryTopic]
) -> list[SyllabusTopic]:
    """Registry topics as scheduler input, across subjects.

    Two subjects may share a topic name (NEET has Thermodynamics in physics and in
    chemistry); the scheduler needs unique names, so a shared name is qualified with its
    subject ("Thermodynamics (Chemistry)"), prerequisites included.

    Args:
        registry: The registry (for subject names).
        registry_topics: The topics in scope, in registry order.

    Returns:
        Topics for the scheduler, prerequisites outside the scope left out.
    """
    subjects: dict[str, list[RegistryTopic]] = {}
    for topic in registry_topics:
        subjects.setdefault(f"{topic.exam}/{topic.subject}", []).append(topic)
    owners: dict[str, set[str]] = {}
    for key, topics in subjects.items():
        for topic in topics:
            owners.setdefault(normalise_topic_name(topic.name), set()).add(key)
    clashing = {name for name, keys in owners.items() if len(keys) > 1}
    result: list[SyllabusTopic] = []
    for topics in subjects.values():
        first = topics[0]
        subject_name = next(
            s.name for s in registry.exam(first.exam).subjects if s.key == first.subject
        )

        def qualified(name: str, label: str = subject_name) -> str:
            return f"{name} ({label})" if normalise_topic_name(name) in clashing else name

        result.extend(
            planned.model_copy(
                update={
                    "name": qualified(planned.name),
                    "prerequisites": tuple(qualified(p) for p in planned.prerequisites),
                }
            )
            for planned in topics_from_registry(topics)
        )
    return result


def resolve_topics(
    registry: SyllabusRegistry,
    routing: Routing,
    parsed: Sequence[ParsedTopic] | None,
    goal: str,
) -> ResolvedTopics:
    """The topics to plan: every pasted topic, enriched by the registry and weighted by
    what the goal names; the registry's own topics in the goal's scope when nothing was
    pasted.

    Args:
        registry: The registry.
        routing: The cross-checked routing.
        parsed: The pasted syllabus, parsed (None when nothing was pasted).
        goal: The student's goal: what it names is weighted, and only what it explicitly
            asks to leave out is left out (:func:`read_focus`).

    Returns:
        The topics.
    """
    exam = routing.exam
    if parsed is not None and exam is None and routing.borrowed_from is not None:
        lender = routing.borrowed_from
        borrowed = enrich_topics(parsed, lender.topics, borrowed=True)
        notes = [
            f"{t.name!r} borrows its hours and difficulty from {lender.name}'s {t.registry_name!r}"
            for t in borrowed
            if t.registry_name is not None
        ] or [f"no topic matches one of {lender.name}'s: default figures are used"]
        return _focused(borrowed, read_focus(goal, borrowed), notes)
    if parsed is None:
        assert exam is not None  # cross_check refuses an unknown exam without a syllabus
        chosen = _scope_topics(registry, routing.scopes) if routing.scopes else list(exam.topics)
        return ResolvedTopics(registry_syllabus(registry, chosen), "registry")
    enriched = enrich_topics(parsed, exam.topics if exam else ())
    return _focused(enriched, read_focus(goal, enriched, exam), [])


def fit_estimates(resolved: ResolvedTopics, error: CapacityError) -> ResolvedTopics | None:
    """A pasted syllabus that does not fit, with its estimated hours scaled down to fit.

    A pasted syllabus gives no hours (the parser drops figures): its hours are the
    registry's estimates or defaults, not the student's. Leaving out the student's topics
    because our estimate ran long would break the rule that the paste wins, so the estimates
    are scaled to the hours the days hold, down to :data:`MIN_ESTIMATE_SHARE`, and a note
    says so. The registry's own topics are never scaled: their hours are the registry's.

    Args:
        resolved: The topics that did not fit.
        error: The scheduler's refusal, with the hours needed and available.

    Returns:
        The topics with scaled hours and a note, or None when they were not pasted or would
        need scaling below the floor.
    """
    share = error.available_hours / error.needed_hours if error.needed_hours else 0.0
    if resolved.source != "pasted" or share < MIN_ESTIMATE_SHARE:
        return None
    units = [math.ceil(topic.hours * 4 - 1e-9) for topic in resolved.topics]
    shares = _largest_remainder(units, math.floor(error.available_hours * 4 + 1e-9))
    if shares is None:
        return None  # more topics than quarter hours: refuse with the numbers
    topics = [
        topic.model_copy(update={"hours": share / 4})
        for topic, share in zip(resolved.topics, shares, strict=True)
    ]
    scaled = sum(shares) / 4
    note = (
        f"your syllabus gives no hours, so its hours are estimates: they were scaled to "
        f"{round(100 * scaled / error.needed_hours)}% ({error.needed_hours:g} h -> "
        f"{scaled:g} h) to fit {error.study_days} study days; no topic was left out for "
        "lack of time"
    )
    return replace(resolved, topics=topics, notes=[*resolved.notes, note])


def _largest_remainder(units: Sequence[int], total: int) -> list[int] | None:
    """``units`` scaled to sum to ``total`` (quarter hours, each at least one): the floor of
    each share, and the quarters left over to the largest remainders, first in order on a
    tie. None when ``total`` is fewer quarters than topics."""
    needed = sum(units)
    if total < len(units) or needed == 0:
        return None
    shares = [max(1, u * total // needed) for u in units]
    spare = total - sum(shares)
    by_remainder = sorted(range(len(units)), key=lambda i: (-(units[i] * total % needed), i))
    for i in by_remainder:
        if spare <= 0:
            break
        if shares[i] < units[i]:
            shares[i] += 1
            spare -= 1
    return shares if sum(shares) <= total else None
