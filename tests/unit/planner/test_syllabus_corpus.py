"""The parser against syllabi pasted the way students paste them (``syllabus_corpus/``).

One YAML file per syllabus: ``text`` (as pasted) and ``topics`` (the names planned, in
order: the items under a heading as "Heading: item", topics listed without items as they
are). Add a file to add a case; a comment at its top says what shape it shows.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from services.planner.domain import SyllabusRegistry, load_registry, parse_syllabus, planned_names

CORPUS = Path(__file__).parent / "syllabus_corpus"
CASES = sorted(CORPUS.glob("*.yaml"))


@pytest.fixture(scope="module")
def registry() -> SyllabusRegistry:
    return load_registry()


def test_the_corpus_holds_at_least_thirty_syllabi() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("path", CASES, ids=lambda path: path.stem)
def test_a_pasted_syllabus_yields_its_topics(path: Path, registry: SyllabusRegistry) -> None:
    case = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert set(case) == {"text", "topics"}, f"{path.name}: keys are text and topics"
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
