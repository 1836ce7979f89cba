"""``exammentor demo`` (what ``make demo`` ends with) against the real stack and the embedded
model: past the plan, a tutor answer that cites the handout's page and a three-question quiz
on it, each labelled by who wrote it."""

from __future__ import annotations

import re

import pytest

from exammentor.ops.demo import run_demo
from tests.integration.conftest import Stack

pytestmark = [pytest.mark.integration, pytest.mark.llm]

CITES_PAGE_3 = r"   cites: (page \d, )*page 3(, page \d)* of Photosynthesis handout"
QUIZ_LINE = re.compile(r"^   [1-3]\. .+  \[(by the model|extract of your material(, page \d)?)\]$")


async def test_the_demo_ends_with_a_cited_answer_and_a_labelled_three_question_quiz(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    code = await run_demo(stack.base_url)
    out = capsys.readouterr().out
    assert code == 0, out
    lines = out.splitlines()
    answer_label = next(line for line in lines if line.startswith("   answer, "))
    assert answer_label in (
        "   answer, by the model:",
        "   answer, quoted from your material (extracts):",
    )
    answer = [line for line in lines if line.startswith("   | ")]
    assert answer, out
    # The question is about photosynthesis, which only page 3 of the handout holds.
    cites = next(line for line in lines if line.startswith("   cites: "))
    assert re.fullmatch(CITES_PAGE_3, cites), out
    quiz = [line for line in lines if QUIZ_LINE.match(line)]
    assert len(quiz) == 3, out
    assert lines[-1] == "done."
