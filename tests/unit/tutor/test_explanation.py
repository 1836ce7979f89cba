"""Explanation repair: whatever the model wrote becomes a valid explanation, never a failure."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from exammentor.contracts.tutor import MAX_STEPS, TutorExplanation
from services.tutor.domain import (
    Passage,
    depth_instruction,
    repair_explanation,
    repair_image_explanation,
    usable_text,
)

LOOP = "the cell the cell the cell the cell the cell the cell the cell the cell"

GOOD: dict[str, Any] = {
    "intuition": "Plants turn light into sugar. Then they grow.",
    "steps": [
        {"step_number": 1, "title": "Light", "content": "Chlorophyll absorbs light."},
        {"step_number": 2, "title": "Sugar", "content": "The Calvin cycle fixes carbon."},
    ],
    "real_world_example": "A tomato plant on a sunny window grows faster.",
    "common_pitfall": "Thinking plants get their mass from the soil.",
    "practice_question": "Where does the oxygen released come from?",
}


def test_a_good_answer_is_kept_as_written_with_one_line_intuition() -> None:
    repaired = repair_explanation(GOOD, topic="Photosynthesis")
    assert repaired.repairs == ()
    explanation = repaired.explanation
    assert explanation.topic == "Photosynthesis"
    assert explanation.intuition == "Plants turn light into sugar."
    assert [s.title for s in explanation.steps] == ["Light", "Sugar"]
    assert explanation.common_pitfall == GOOD["common_pitfall"]


def test_empty_steps_become_steps_of_our_own_from_the_material() -> None:
    material = [Passage(material_id=None, page=3, position=0, text="Chlorophyll absorbs light.")]
    repaired = repair_explanation({**GOOD, "steps": []}, topic="Photosynthesis", passages=material)
    assert "steps" in repaired.repairs
    assert [s.title for s in repaired.explanation.steps] == ["From your material, page 3"]
    assert repaired.explanation.steps[0].content == "Chlorophyll absorbs light."


def test_empty_steps_without_material_become_a_study_method() -> None:
    repaired = repair_explanation({**GOOD, "steps": "none"}, topic="Optics")
    assert [s.step_number for s in repaired.explanation.steps] == [1, 2, 3]
    assert all("Optics" in s.content for s in repaired.explanation.steps)


def test_a_missing_pitfall_is_filled_with_our_own() -> None:
    draft = {k: v for k, v in GOOD.items() if k != "common_pitfall"}
    repaired = repair_explanation(draft, topic="Photosynthesis")
    assert repaired.repairs == ("common_pitfall",)
    assert repaired.explanation.common_pitfall.startswith("Learning the result of Photosynthesis")


def test_looping_text_is_replaced_and_repeated_sentences_dropped() -> None:
    draft = {
        **GOOD,
        "real_world_example": LOOP,
        "common_pitfall": "Mixing up stomata. Mixing up stomata. Mixing up stomata.",
    }
    repaired = repair_explanation(draft, topic="Photosynthesis")
    assert "real_world_example" in repaired.repairs
    assert repaired.explanation.real_world_example != LOOP
    assert repaired.explanation.common_pitfall == "Mixing up stomata."


def test_misnumbered_duplicate_and_broken_steps_are_renumbered() -> None:
    steps = [
        {"step_number": 1, "title": "A", "content": "First idea here."},
        {"step_number": 1, "title": "B", "content": "Second idea here."},
        {"step_number": 7, "title": "", "content": "Third idea, with no title at all."},
        {"step_number": 3, "title": "Dup", "content": "first idea here"},
        {"step_number": 4, "title": "Loop", "content": LOOP},
        "not a step",
        {"step_number": 5, "content": 42},
    ]
    repaired = repair_explanation({**GOOD, "steps": steps}, topic="T")
    got = [(s.step_number, s.title) for s in repaired.explanation.steps]
    assert got == [(1, "A"), (2, "B"), (3, "Third idea, with no title at")]
    assert {"step_numbers", "steps_dropped"} <= set(repaired.repairs)


def test_an_analogy_that_repeats_the_content_is_dropped() -> None:
    steps = [{"title": "A", "content": "Light is absorbed.", "analogy": "light is absorbed"}]
    repaired = repair_explanation({**GOOD, "steps": steps}, topic="T")
    assert repaired.explanation.steps[0].analogy is None


def test_no_answer_at_all_is_still_an_explanation() -> None:
    repaired = repair_explanation(None, topic="Kinematics")
    assert TutorExplanation.model_validate(repaired.explanation.model_dump())
    assert set(repaired.repairs) == {
        "intuition",
        "steps",
        "real_world_example",
        "common_pitfall",
        "practice_question",
    }


_ANYTHING = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=80),
    lambda inner: st.lists(inner, max_size=10) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)
_STEP = st.fixed_dictionaries(
    {},
    optional={
        "step_number": _ANYTHING,
        "title": _ANYTHING,
        "content": st.text(max_size=300) | _ANYTHING,
        "analogy": _ANYTHING,
    },
)


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "intuition": st.text(max_size=400) | _ANYTHING,
            "steps": st.lists(_STEP | _ANYTHING, max_size=12) | _ANYTHING,
            "real_world_example": _ANYTHING,
            "common_pitfall": _ANYTHING,
            "practice_question": _ANYTHING,
        },
    )
)
@settings(max_examples=150, deadline=None)
def test_repair_never_fails_and_always_validates(draft: dict[str, Any]) -> None:
    repaired = repair_explanation(draft, topic="Any topic")
    explanation = TutorExplanation.model_validate(repaired.explanation.model_dump())
    assert 1 <= len(explanation.steps) <= MAX_STEPS
    assert [s.step_number for s in explanation.steps] == list(range(1, len(explanation.steps) + 1))
    assert "\n" not in explanation.intuition
    for text in (explanation.intuition, explanation.common_pitfall, explanation.real_world_example):
        assert text.strip()


def test_usable_text_refuses_what_cannot_be_shown() -> None:
    assert usable_text(None, 100) is None
    assert usable_text(["a"], 100) is None
    assert usable_text("  \n ", 100) is None
    assert usable_text(LOOP, 100) is None
    assert usable_text("a  b\nc", 100) == "a b c"
    assert usable_text("word " * 50, 20) is None  # a loop of one word
    assert usable_text("alpha beta gamma delta epsilon zeta", 20) == "alpha beta gamma de\u2026"


def test_depth_follows_difficulty() -> None:
    assert "beginner" in depth_instruction("easy")
    assert "formula" in depth_instruction("medium")
    assert "edge cases" in depth_instruction("hard")


def test_an_image_explanation_never_invents_references() -> None:
    draft = {
        "intuition": "A force diagram.",
        "visual_references": [
            {"label": "Arrow A", "region": "top left", "description": "Weight, pointing down."},
            {"label": "", "region": "x", "description": "nothing"},
            "junk",
        ],
        "explanation": LOOP,
        "deep_dive": [{"step_number": 2, "title": "Sum", "content": "Add the forces."}],
    }
    repaired = repair_image_explanation(draft, topic="Forces")
    explanation = repaired.explanation
    assert [r.label for r in explanation.visual_references] == ["Arrow A"]
    assert explanation.explanation.startswith("No reliable explanation of this image")
    assert [s.step_number for s in explanation.deep_dive] == [1]
    assert {"visual_references", "explanation", "practice_question"} <= set(repaired.repairs)
    assert "deep_dive.step_numbers" in repaired.repairs
    empty = repair_image_explanation(None, topic="Forces").explanation
    assert (empty.visual_references, empty.deep_dive) == ([], [])
