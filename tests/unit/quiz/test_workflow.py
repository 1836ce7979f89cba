"""The quiz's rounds of model calls, on a stand-in client: what a round keeps of an answer
the screen refused, and how it asks."""

from __future__ import annotations

from typing import Any

from exammentor.llm.messages import LLMInvalidOutput, LLMUnavailable
from exammentor.llm.sampling import Sampling
from services.quiz.workflow import QuizWorkflow
from tests.unit.quiz.broken_outputs import ONE_GOOD_TWO_BAD


class _ScreenFailsThenDown:
    """The first call's answer matches the schema but failed the screen (one usable item of
    three); every later call finds the model down. Records each call's arguments."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def structured(self, **call: Any) -> Any:
        self.calls.append(call)
        if len(self.calls) > 1:
            raise LLMUnavailable("connection refused", purpose=call["purpose"])
        raise LLMInvalidOutput(
            "screen", purpose=call["purpose"], errors=["q2", "q3"], output=ONE_GOOD_TWO_BAD
        )


async def test_a_round_keeps_the_valid_questions_of_an_answer_the_screen_refused() -> None:
    model = _ScreenFailsThenDown()
    workflow = QuizWorkflow(model, rounds=3)  # type: ignore[arg-type]
    generated = await workflow.questions("Photosynthesis", count=3, difficulty="easy")
    assert [q.text for q in generated.questions] == [
        "What gas do plants take in for photosynthesis?"
    ]
    assert generated.from_model == 1
    # Round 2 found the model down, so no third round was asked for.
    assert len(model.calls) == 2
    assert [c["sampling"] for c in model.calls] == [Sampling().for_round(n) for n in (1, 2)]
    assert all(c["purpose"] == "quiz.generate" and c["repairs"] is None for c in model.calls)
    assert "round 2: the model's answer was unavailable" in generated.model_problems
