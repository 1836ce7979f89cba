"""Routing and topic resolution for a syllabus of an exam the registry does not know."""

from __future__ import annotations

import pytest

from exammentor.contracts.plan import PlanRequest
from services.planner.domain import (
    ParsedTopic,
    Routing,
    SyllabusRegistry,
    cross_check,
    load_registry,
    parse_syllabus,
    resolve_topics,
)

GRE_QUANT = """\
Arithmetic
- Integers and divisibility
- Exponents and roots
Geometry
- Lines and angles
- Triangles
Data Analysis
- Descriptive statistics
- Probability
"""


@pytest.fixture(scope="module")
def registry() -> SyllabusRegistry:
    return load_registry()


def parsed(registry: SyllabusRegistry, text: str) -> list[ParsedTopic]:
    return parse_syllabus(
        text, known_topics=registry.vocabulary(), section_names=registry.section_names()
    )


def routed(registry: SyllabusRegistry, exam_type: str, goal: str, text: str) -> Routing:
    request = PlanRequest(exam_type=exam_type, goal=goal, syllabus_text=text)
    routing = cross_check(registry, request, parsed(registry, text), None)
    assert isinstance(routing, Routing)
    return routing


def test_an_exam_the_registry_does_not_know_is_not_planned_as_another(
    registry: SyllabusRegistry,
) -> None:
    routing = routed(registry, "GRE", "GRE quantitative in a month", GRE_QUANT)
    assert (routing.exam, routing.exam_name, routing.scopes) == (None, "GRE", ())
    assert routing.borrowed_from is not None
    assert routing.borrowed_from.key == "cat"
    assert routing.as_dict()["borrowed_from"] == "cat"
    assert not any("matched to" in note for note in routing.notes)
    assert any("GRE is not in the registry" in note for note in routing.notes)


def test_only_topics_that_match_by_themselves_borrow_and_each_is_named(
    registry: SyllabusRegistry,
) -> None:
    goal = "GRE quantitative in a month"
    routing = routed(registry, "GRE", goal, GRE_QUANT)
    resolved = resolve_topics(registry, routing, parsed(registry, GRE_QUANT), goal)
    # "quantitative" names CAT's quant subject; it narrows nothing of a GRE syllabus.
    assert len(resolved.topics) == 6
    assert resolved.excluded == []
    lent = {t.name: t.registry_name for t in resolved.topics if t.registry_name}
    # CAT's "Arithmetic" is not GRE arithmetic: the items under that heading borrow nothing.
    assert lent == {
        "Geometry: Triangles": "Geometry & Mensuration",
        "Data Analysis: Probability": "Modern Math",
    }
    assert len(resolved.notes) == 2
    assert all("borrows" in note and "CAT" in note for note in resolved.notes)
    assert "'Geometry: Triangles'" in resolved.notes[0]


def test_a_topic_listed_alone_borrows_when_its_own_name_matches(
    registry: SyllabusRegistry,
) -> None:
    text = "- Arithmetic\n- Vocabulary in context"
    routing = routed(registry, "GRE", "GRE prep", text)
    resolved = resolve_topics(registry, routing, parsed(registry, text), "GRE prep")
    arithmetic, vocabulary = resolved.topics
    assert (arithmetic.registry_name, arithmetic.hours) == ("Arithmetic", 16)
    assert vocabulary.registry_name is None
    # A weight is importance in CAT; it says nothing of what matters in the GRE.
    assert arithmetic.weight == vocabulary.weight == 1.0


def test_an_exam_type_the_registry_knows_still_lends_through_headings(
    registry: SyllabusRegistry,
) -> None:
    routing = routed(registry, "CAT", "CAT quant", GRE_QUANT)
    assert routing.exam is not None
    assert routing.borrowed_from is None
    resolved = resolve_topics(registry, routing, parsed(registry, GRE_QUANT), "CAT quant")
    first = resolved.topics[0]
    assert (first.name, first.registry_name) == (
        "Arithmetic: Integers and divisibility",
        "Arithmetic",
    )
