"""Chat memory within a token budget.

The chat is kept in the original's roles (``user``, ``ai``); the model sees them as ``user``
and ``assistant``. The newest turns are kept, as many as fit (and at most ``max_turns``);
what is trimmed is the oldest. A turn is kept whole or not at all, except the newest one,
which is clipped from its end when it alone is over the budget, so the model always sees
what was said last. When turns are trimmed, one short line (room for it is kept when the
budget allows) names the last questions the student asked among them.

The budget is a hard bound: :attr:`HistoryWindow.tokens`, the estimate the kit's LLM client
also uses (a message's text plus :data:`MESSAGE_OVERHEAD_TOKENS`), never exceeds it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from exammentor.contracts.tutor import ChatTurn
from exammentor.llm.answers import clean, clip
from exammentor.llm.client import CHARS_PER_TOKEN, ChatMessage, estimate_tokens

MESSAGE_OVERHEAD_TOKENS = 4
"""Tokens of a message's role markers in the chat template (the kit's estimate)."""
SUMMARY_MAX_TOKENS = 60
"""Most tokens of the line about trimmed turns."""
SUMMARY_QUESTIONS = 3
"""Trimmed questions the summary line names, the newest of them."""


def message_tokens(message: ChatMessage) -> int:
    """Estimated tokens of one message in the prompt.

    Args:
        message: A chat message.

    Returns:
        Its text's estimate plus the role markers.
    """
    return estimate_tokens(message["content"]) + MESSAGE_OVERHEAD_TOKENS


def to_model_message(turn: ChatTurn) -> ChatMessage:
    """A chat turn in the model's roles (``ai`` becomes ``assistant``).

    Args:
        turn: A turn of the student's chat.

    Returns:
        The message.
    """
    if turn.role == "ai":
        return {"role": "assistant", "content": turn.content}
    return {"role": "user", "content": turn.content}


@dataclass(frozen=True)
class HistoryWindow:
    """The part of a chat that goes into a prompt.

    Attributes:
        messages: The kept turns, oldest first, in the model's roles.
        summary: One line about the trimmed turns, or None; for the system message.
        kept_turns: Turns kept (the newest; the first of them may be clipped).
        trimmed_turns: Older turns left out.
        tokens: Estimated tokens of ``messages`` and ``summary`` together.
    """

    messages: tuple[ChatMessage, ...]
    summary: str | None
    kept_turns: int
    trimmed_turns: int
    tokens: int


def clip_to_tokens(text: str, tokens: int) -> str:
    """``text`` cut at its end (with an ellipsis) so that its estimate is at most ``tokens``.

    Args:
        text: Any text.
        tokens: The most tokens it may take.

    Returns:
        The text, whole when it fits; empty when ``tokens`` is not positive.
    """
    if estimate_tokens(text) <= tokens:
        return text
    if tokens <= 0:
        return ""
    return text[: tokens * CHARS_PER_TOKEN - 1].rstrip() + "\u2026"


def _summary(trimmed: Sequence[ChatTurn], budget_tokens: int) -> str | None:
    asked = [clip(clean(t.content), 50) for t in trimmed if t.role == "user" and clean(t.content)]
    if not asked or budget_tokens <= 0:
        return None
    turns = len(trimmed)
    line = (
        f"Earlier in this chat ({turns} older turn{'' if turns == 1 else 's'} not shown) "
        f"the student asked: {'; '.join(asked[-SUMMARY_QUESTIONS:])}"
    )
    line = clip_to_tokens(line, min(budget_tokens, SUMMARY_MAX_TOKENS))
    return line or None


def _newest(turns: Sequence[ChatTurn], budget: int, limit: int) -> tuple[list[ChatMessage], int]:
    """The newest turns that fit ``budget`` (at most ``limit``), oldest first, and their cost."""
    kept: list[ChatMessage] = []
    used = 0
    for turn in reversed(turns):
        if len(kept) >= limit:
            break
        message = to_model_message(turn)
        cost = message_tokens(message)
        if used + cost > budget:
            if not kept:
                text = clip_to_tokens(message["content"], budget - MESSAGE_OVERHEAD_TOKENS)
                if text:
                    message = {"role": message["role"], "content": text}
                    kept.append(message)
                    used += message_tokens(message)
            break
        kept.append(message)
        used += cost
    kept.reverse()
    return kept, used


def fit_history(
    turns: Sequence[ChatTurn],
    budget_tokens: int,
    *,
    max_turns: int | None = None,
    summarise: bool = True,
) -> HistoryWindow:
    """The newest turns of a chat that fit ``budget_tokens``.

    Args:
        turns: The chat, oldest first.
        budget_tokens: Tokens the history may take in the prompt.
        max_turns: Most turns kept (the original: 10 for the stream, 5 for explain), or None.
        summarise: Whether to add a line about trimmed turns.

    Returns:
        The window; its ``tokens`` never exceed ``max(budget_tokens, 0)``.
    """
    budget = max(budget_tokens, 0)
    limit = len(turns) if max_turns is None else max(max_turns, 0)
    kept, used = _newest(turns, budget, limit)
    summary: str | None = None
    if summarise and len(kept) < len(turns) and budget >= 2 * SUMMARY_MAX_TOKENS:
        # Turns are trimmed: keep room for the line that says so, at the cost of a turn or
        # two, rather than squeezing it into whatever the turns left over.
        kept, used = _newest(turns, budget - SUMMARY_MAX_TOKENS, limit)
        summary = _summary(turns[: len(turns) - len(kept)], SUMMARY_MAX_TOKENS)
        if summary is not None:
            used += estimate_tokens(summary)
    return HistoryWindow(
        messages=tuple(kept),
        summary=summary,
        kept_turns=len(kept),
        trimmed_turns=len(turns) - len(kept),
        tokens=used,
    )
