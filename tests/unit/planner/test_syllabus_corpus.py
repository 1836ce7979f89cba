"""The parser against syllabi pasted the way students paste them (``syllabus_corpus/``).

One YAML file per syllabus: ``text`` (as pasted) and ``topics`` (the names planned, in
order: the items under a heading as "Heading: item", topics listed without items as they
are). Add a file to add a case; a comment at its top says what shape it shows.

A case may also give the request around the paste: ``exam_type`` and ``goal``, with
``weighted`` (the topics the goal's names weight, in order) and ``left_out`` (the topics
the goal explicitly asks to leave out; every other topic is planned).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from exammentor.contracts.plan import PlanRequest
from services.planner.domain import (
    Routing,
    SyllabusRegistry,
    cross_check,
    load_registry,
    parse_syllabus,
    planned_names,
    resolve_topics,
)

CORPUS = Path(__file__).parent / "syllabus_corpus"
CASES = sorted(CORPUS.glob("*.yaml"))
CASE_KEYS = {"text", "topics"}
REQUEST_KEYS = {"exam_type", "goal", "weighted", "left_out"}


def _load(path: Path) -> dict[str, Any]:
    case: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert set(case) in (CASE_KEYS, CASE_KEYS | REQUEST_KEYS), (
        f"{path.name}: keys are text and topics, and optionally all of {sorted(REQUEST_KEYS)}"
    )
    return case


GOAL_CASES = [path for path in CASES if "goal" in _load(path)]


@pytest.fixture(scope="module")
def registry() -> SyllabusRegistry:
    return load_registry()


def test_the_corpus_holds_at_least_thirty_syllabi() -> None:
    assert len(CASES) >= 30


def test_the_corpus_holds_unit_lists_with_goals_in_several_exams() -> None:
    exams = {str(_load(path)["exam_type"]).upper() for path in GOAL_CASES}
    assert {"NEET", "JEE", "UPSC", "CAT"} <= exams


@pytest.mark.parametrize("path", CASES, ids=lambda path: path.stem)
def test_a_pasted_syllabus_yields_its_topics(path: Path, registry: SyllabusRegistry) -> None:
    case = _load(path)
    expected = [str(name) for name in case["topics"]]
    parsed = parse_syllabus(
        case["text"], known_topics=registry.vocabulary(), section_names=registry.section_names()
    )
    found = planned_names(parsed)
    missing = [name for name in expected if name not in found]
    extra = [name for name in found if name not in expected]
    assert (missing, extra) == ([], []), (
        f"{path.stem}: missing {missing}, extra {extra}\nparsed as: {found}"
    )
    assert found == expected, f"{path.stem}: same topics, other order: {found}"


@pytest.mark.parametrize("path", GOAL_CASES, ids=lambda path: path.stem)
def test_the_goal_weights_what_it_names_and_leaves_out_only_what_it_asks_to(
    path: Path, registry: SyllabusRegistry
) -> None:
    case = _load(path)
    request = PlanRequest(
        syllabus_text=case["text"], goal=case["goal"], exam_type=case["exam_type"], days=30
    )
    parsed = parse_syllabus(
        case["text"], known_topics=registry.vocabulary(), section_names=registry.section_names()
    )
    routing = cross_check(registry, request, parsed, None)
    assert isinstance(routing, Routing)
    resolved = resolve_topics(registry, routing, parsed, request.goal)

    planned = [t.name for t in resolved.topics]
    assert resolved.excluded == case["left_out"]
    assert planned == [name for name in case["topics"] if name not in case["left_out"]]
    heaviest = max(t.weight for t in resolved.topics)
    weighted = [t.name for t in resolved.topics if t.weight == heaviest]
    if case["weighted"]:
        assert weighted == case["weighted"]
        others = [t.weight for t in resolved.topics if t.name not in weighted]
        assert all(weight < heaviest for weight in others)
    else:
        assert not any("weighted" in note for note in resolved.notes)
    if case["left_out"]:
        said = [note for note in resolved.notes if "left out because your goal asks" in note]
        assert len(said) == 1
        assert all(name in said[0] for name in case["left_out"])
        assert resolved.left_out_reason.startswith("left out because your goal asks for it")
