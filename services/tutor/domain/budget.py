"""How a tutor prompt shares the model's context window.

The original cut the context at 5,000 characters, attached material at 8,000 and the history
at 10 (stream) or 5 (explain) turns, whatever the model. Here the window is split by tokens:
the answer's cap and the fixed instructions first, then the student's context text, the
material and the chat history, in shares a policy sets; what the material leaves unused goes
to the history. The prompt, by the kit's estimate, never exceeds the window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from exammentor.contracts.tutor import Difficulty
from services.tutor.domain.errors import TutorError


@dataclass(frozen=True)
class TutorPolicy:
    """Tunable rules of the tutor's prompts; the defaults fit the embedded model.

    Attributes:
        context_tokens: The model's context window per request (the embedded server's 4,096
            with one slot).
        margin_tokens: Slack for the estimate's error (4 characters a token is rough).
        explanation_tokens: Generated-token cap of a structured explanation.
        stream_tokens: Generated-token cap of a streamed explanation.
        lesson_tokens_per_word: Generated tokens allowed per word a lesson asks for.
        context_share: Share of the free room the student's context text may take.
        material_share: Share of the room left after the context that material may take.
        max_passages: Most passages of material in one prompt.
        stream_history_turns: Most chat turns the stream sees (the original's 10).
        explain_history_turns: Most chat turns a structured explanation sees (the original's 5).
        steps: Steps an explanation has, by difficulty.
    """

    context_tokens: int = 4096
    margin_tokens: int = 64
    explanation_tokens: int = 700
    stream_tokens: int = 900
    lesson_tokens_per_word: float = 1.6
    context_share: float = 0.25
    material_share: float = 0.6
    max_passages: int = 6
    stream_history_turns: int = 10
    explain_history_turns: int = 5
    steps: tuple[tuple[Difficulty, int], ...] = (("easy", 3), ("medium", 4), ("hard", 5))

    def steps_for(self, difficulty: Difficulty) -> int:
        """Steps an explanation at ``difficulty`` asks for."""
        return dict(self.steps)[difficulty]

    def lesson_tokens(self, target_words: int) -> int:
        """Generated-token cap of a lesson of about ``target_words`` words."""
        return math.ceil(target_words * self.lesson_tokens_per_word) + 32


DEFAULT_POLICY = TutorPolicy()


class ContextTooSmallError(TutorError):
    """The model's window cannot hold the instructions and the answer's cap.

    A configuration error (a small ``context_tokens`` or a large answer cap), reported with
    the numbers rather than sent to a model that would refuse it.

    Attributes:
        needed_tokens: Instructions, answer cap and margin.
        context_tokens: The window.
    """

    code = "context_too_small"

    def __init__(self, needed_tokens: int, context_tokens: int) -> None:
        self.needed_tokens = needed_tokens
        self.context_tokens = context_tokens
        super().__init__(
            f"the prompt needs {needed_tokens:,} tokens before any context, material or "
            f"history, and the model's window is {context_tokens:,}"
        )


@dataclass(frozen=True)
class PromptBudget:
    """Tokens each part of a prompt may take.

    Attributes:
        context_tokens: The student's context text (and attached text shown as context).
        material_tokens: Passages of material, labels included.
        history_tokens: Chat history, before what the material leaves unused.
    """

    context_tokens: int
    material_tokens: int
    history_tokens: int

    def history_after(self, material_used: int) -> int:
        """History tokens once the material took ``material_used`` of its share.

        Args:
            material_used: Tokens the chosen passages take.

        Returns:
            The history's share plus what the material left unused.
        """
        return self.history_tokens + max(self.material_tokens - material_used, 0)


def split_budget(
    fixed_tokens: int, answer_tokens: int, policy: TutorPolicy = DEFAULT_POLICY
) -> PromptBudget:
    """Shares the window left after the instructions and the answer among the variable parts.

    Args:
        fixed_tokens: Tokens of the prompt's fixed parts (instructions, topic).
        answer_tokens: The answer's generated-token cap.
        policy: The window and the shares.

    Returns:
        The budget; its parts sum to at most the room left.

    Raises:
        ContextTooSmallError: The fixed parts and the answer do not fit the window.
    """
    needed = fixed_tokens + answer_tokens + policy.margin_tokens
    room = policy.context_tokens - needed
    if room < 0:
        raise ContextTooSmallError(needed, policy.context_tokens)
    context = math.floor(room * policy.context_share)
    material = math.floor((room - context) * policy.material_share)
    return PromptBudget(
        context_tokens=context, material_tokens=material, history_tokens=room - context - material
    )
