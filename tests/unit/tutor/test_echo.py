"""What counts as an explanation copying its prompt: the instructions, never a faithful quote
of the student's material (a good tutor quotes it, with its page)."""

from __future__ import annotations

import uuid

import pytest

from exammentor.contracts.tutor import ExplainRequest
from services.tutor.domain.passages import Passage
from services.tutor.prompts import check_explanation, explanation_prompt, explanation_schema
from services.tutor.workflow import echo_source

MATERIAL = uuid.uuid4()
PAGE = (
    "Projectile motion. A projectile launched at an angle moves with constant horizontal "
    "velocity and uniform vertical acceleration while gravity alone acts on it, so its path "
    "is a parabola and its range is greatest at forty five degrees."
)
PROMPT = explanation_prompt(
    ExplainRequest(topic="Projectile motion", material_ids=[MATERIAL]),
    [Passage(material_id=MATERIAL, page=1, position=0, text=PAGE)],
)
Answer = explanation_schema(2)


def answer(step_one: str) -> object:
    return Answer(
        intuition="A thrown body falls while it keeps moving sideways.",
        t1="What the notes say",
        s1=step_one,
        t2="Why the path curves",
        s2="Gravity changes only the vertical speed, so the height traces a curve over time.",
        analogy="Like a ball rolled off a table that keeps rolling forward as it drops.",
        example="A long jumper takes off at an angle close to the best one for distance.",
        pitfall="Thinking the horizontal speed shrinks during the flight.",
        question="At which launch angle does a projectile go furthest on level ground?",
    )


def test_a_step_that_quotes_the_material_word_for_word_with_its_page_passes() -> None:
    quote = PAGE.split(". ", 1)[1]  # 37 words of the page, as written
    check_explanation(answer(f"{quote} [p. 1]"), prompt=echo_source(PROMPT))  # type: ignore[arg-type]


def test_a_step_that_copies_the_instructions_is_sent_back() -> None:
    system = str(PROMPT.messages[0]["content"])
    copied = " ".join(system.split()[:30])
    with pytest.raises(ValueError, match="s1 copies the material"):
        check_explanation(answer(copied), prompt=echo_source(PROMPT))  # type: ignore[arg-type]
