"""Chat memory: newest turns kept, oldest trimmed, never over the budget."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from exammentor.contracts.tutor import ChatTurn
from exammentor.llm.client import estimate_tokens
from services.tutor.domain import clip_to_tokens, fit_history, message_tokens


def chat(turns: int) -> list[ChatTurn]:
    return [
        ChatTurn(
            role="user" if i % 2 == 0 else "ai",
            content=f"question {i} about osmosis" if i % 2 == 0 else f"answer {i} " + "word " * 30,
        )
        for i in range(turns)
    ]


def window_tokens(window_messages: tuple[dict[str, str], ...], summary: str | None) -> int:
    return sum(message_tokens(m) for m in window_messages) + estimate_tokens(summary or "")


def test_a_200_turn_chat_keeps_the_newest_turns_within_the_budget() -> None:
    turns = chat(200)
    window = fit_history(turns, budget_tokens=500)
    assert window.kept_turns + window.trimmed_turns == 200
    assert 0 < window.kept_turns < 200
    assert window.tokens <= 500
    assert window.tokens == window_tokens(window.messages, window.summary)
    # The newest turns, in order, in the model's roles.
    newest = turns[-window.kept_turns :]
    assert [m["content"] for m in window.messages] == [t.content for t in newest]
    assert window.messages[-1]["role"] == "assistant"
    assert {m["role"] for m in window.messages} == {"user", "assistant"}
    # The summary names the newest of the trimmed questions.
    assert window.summary is not None
    trimmed = window.trimmed_turns
    assert window.summary.startswith(f"Earlier in this chat ({trimmed} older turns not shown)")
    last_trimmed_question = next(t for t in reversed(turns[:trimmed]) if t.role == "user")
    assert last_trimmed_question.content in window.summary


def test_the_original_turn_limits_still_apply() -> None:
    window = fit_history(chat(200), budget_tokens=100_000, max_turns=10)
    assert (window.kept_turns, window.trimmed_turns) == (10, 190)


def test_an_oversized_newest_turn_is_clipped_not_dropped() -> None:
    turns = [ChatTurn(role="user", content="first"), ChatTurn(role="user", content="z" * 4000)]
    window = fit_history(turns, budget_tokens=50, summarise=False)
    assert window.kept_turns == 1
    assert window.messages[0]["content"].startswith("zzz")
    assert window.messages[0]["content"].endswith("\u2026")
    assert window.tokens <= 50


def test_no_summary_when_nothing_was_trimmed_or_asked_for() -> None:
    assert fit_history(chat(4), budget_tokens=10_000).summary is None
    assert fit_history(chat(40), budget_tokens=200, summarise=False).summary is None


@given(
    st.lists(
        st.builds(
            ChatTurn,
            role=st.sampled_from(["user", "ai"]),
            content=st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=400),
        ),
        max_size=200,
    ),
    st.integers(min_value=-5, max_value=3000),
    st.none() | st.integers(min_value=0, max_value=20),
)
@settings(max_examples=300, deadline=None)
def test_the_window_never_overflows_and_is_a_suffix_of_the_chat(
    turns: list[ChatTurn], budget: int, max_turns: int | None
) -> None:
    window = fit_history(turns, budget_tokens=budget, max_turns=max_turns)
    assert window.tokens <= max(budget, 0)
    assert window.tokens == window_tokens(window.messages, window.summary)
    assert window.kept_turns + window.trimmed_turns == len(turns)
    assert max_turns is None or window.kept_turns <= max_turns
    kept = turns[len(turns) - window.kept_turns :]
    for message, turn in zip(window.messages, kept, strict=True):
        assert message["role"] == ("assistant" if turn.role == "ai" else "user")
    # Every kept turn is whole except possibly the oldest kept when it is the only one.
    whole = [m["content"] == t.content for m, t in zip(window.messages, kept, strict=True)]
    assert all(whole) or (len(whole) == 1)


@given(st.text(max_size=300), st.integers(min_value=-3, max_value=100))
def test_clipping_to_tokens_fits(text: str, tokens: int) -> None:
    clipped = clip_to_tokens(text, tokens)
    assert estimate_tokens(clipped) <= max(tokens, 0)
    if estimate_tokens(text) <= max(tokens, 0):
        assert clipped == text
