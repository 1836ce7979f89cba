"""Topic resolution: the topics a routed request plans, and where they came from.

The student's pasted syllabus wins; the registry narrows it to the scope the goal names and
enriches it (weights, hours, prerequisites); the registry's own topics are planned when
nothing was pasted. The syllabus of an exam the registry does not know borrows figures
topic by topic from the exam routing names, and each borrowing is said in the notes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from services.planner.domain.names import normalise_topic_name
from services.planner.domain.registry import RegistryTopic, Scope, SyllabusRegistry
from services.planner.domain.routing import Routing
from services.planner.domain.syllabus import (
    ParsedTopic,
    enrich_topics,
    narrow_to_scope,
    topics_from_registry,
)
from services.planner.domain.topics import SyllabusTopic


@dataclass(frozen=True)
class ResolvedTopics:
    """The topics to plan and where they came from."""

    topics: list[SyllabusTopic]
    source: Literal["pasted", "registry"]
    excluded: list[str] = field(default_factory=list)
    """Pasted topics left out because they are outside the scope the goal names."""
    notes: list[str] = field(default_factory=list)


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
    registry: SyllabusRegistry, routing: Routing, parsed: Sequence[ParsedTopic] | None
) -> ResolvedTopics:
    """The topics to plan: the student's pasted syllabus wins, the registry narrows and
    enriches it, and the registry's own topics are planned when nothing was pasted.

    Args:
        registry: The registry.
        routing: The cross-checked routing.
        parsed: The pasted syllabus, parsed (None when nothing was pasted).

    Returns:
        The topics.
    """
    exam = routing.exam
    if parsed is not None and exam is None and routing.borrowed_from is not None:
        lender = routing.borrowed_from
        borrowed = enrich_topics(parsed, lender.topics, borrowed=True)
        return ResolvedTopics(
            borrowed,
            "pasted",
            notes=[
                f"{t.name!r} borrows its hours and difficulty from {lender.name}'s "
                f"{t.registry_name!r}"
                for t in borrowed
                if t.registry_name is not None
            ]
            or [f"no topic matches one of {lender.name}'s: default figures are used"],
        )
    if parsed is None:
        assert exam is not None  # cross_check refuses an unknown exam without a syllabus
        chosen = _scope_topics(registry, routing.scopes) if routing.scopes else list(exam.topics)
        return ResolvedTopics(registry_syllabus(registry, chosen), "registry")
    enriched = enrich_topics(parsed, exam.topics if exam else ())
    if exam is None or not routing.scopes:
        return ResolvedTopics(enriched, "pasted")
    inside, outside = narrow_to_scope(enriched, _scope_topics(registry, routing.scopes))
    if not inside:
        return ResolvedTopics(
            enriched,
            "pasted",
            notes=["none of your topics is in the scope the goal names; all of them are planned"],
        )
    return ResolvedTopics(inside, "pasted", excluded=[t.name for t in outside])
