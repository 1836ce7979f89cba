"""Prompt budgets: the parts share the window and never overflow it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.tutor.domain import DEFAULT_POLICY, ContextTooSmallError, TutorPolicy, split_budget


@given(st.integers(min_value=0, max_value=3000), st.integers(min_value=0, max_value=2000))
def test_the_parts_never_exceed_the_room(fixed: int, answer: int) -> None:
    policy = DEFAULT_POLICY
    room = policy.context_tokens - fixed - answer - policy.margin_tokens
    if room < 0:
        with pytest.raises(ContextTooSmallError) as caught:
            split_budget(fixed, answer, policy)
        assert caught.value.context_tokens == policy.context_tokens
        return
    budget = split_budget(fixed, answer, policy)
    parts = (budget.context_tokens, budget.material_tokens, budget.history_tokens)
    assert min(parts) >= 0
    assert sum(parts) == room
    assert budget.history_after(0) == budget.history_tokens + budget.material_tokens
    assert budget.history_after(budget.material_tokens) == budget.history_tokens


def test_the_defaults_split_the_embedded_window() -> None:
    budget = split_budget(100, DEFAULT_POLICY.stream_tokens)
    assert (budget.context_tokens, budget.material_tokens, budget.history_tokens) == (
        758,
        1364,
        910,
    )


def test_a_window_too_small_is_refused_with_the_numbers() -> None:
    with pytest.raises(ContextTooSmallError) as caught:
        split_budget(300, 900, TutorPolicy(context_tokens=1024))
    assert str(caught.value) == (
        "the prompt needs 1,264 tokens before any context, material or history, and the "
        "model's window is 1,024"
    )


def test_difficulty_sets_the_number_of_steps() -> None:
    assert [DEFAULT_POLICY.steps_for(d) for d in ("easy", "medium", "hard")] == [3, 4, 5]
    assert DEFAULT_POLICY.lesson_tokens(300) == 512
