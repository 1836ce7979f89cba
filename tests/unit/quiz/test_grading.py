"""Grading in code: right, wrong, skipped, and refusals that name the range."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exammentor.contracts.quiz import Question
from services.quiz.domain import AnswerKindError, AnswerOutOfRangeError, grade_answer
from tests.unit.quiz.factories import blank_question, choice_question


@given(st.integers(0, 3), st.integers(0, 3))
def test_an_index_is_correct_exactly_when_it_is_the_stored_answer(
    correct: int, chosen: int
) -> None:
    question = choice_question(correct=correct)
    grade = grade_answer(question, chosen)
    assert grade.is_correct == (chosen == correct)
    assert grade.outcome == ("correct" if chosen == correct else "wrong")
    assert grade.chosen_text == question.options[chosen]
    assert grade.correct_answer == question.options[correct]
    assert grade.observation is (chosen == correct)


@given(st.one_of(st.integers(max_value=-1), st.integers(min_value=4)))
def test_an_index_outside_the_options_is_refused_with_the_range(index: int) -> None:
    with pytest.raises(AnswerOutOfRangeError) as caught:
        grade_answer(choice_question(), index)
    assert caught.value.index == index
    assert caught.value.option_count == 4
    assert "options are 0..3" in str(caught.value)


def test_a_timeout_is_skipped_not_the_last_option() -> None:
    grade = grade_answer(choice_question(correct=3), None)
    assert grade.outcome == "skipped"
    assert not grade.is_correct
    assert grade.chosen_index is None
    assert grade.observation is None
    # The original's timeout value is refused, never read as option 3.
    with pytest.raises(AnswerOutOfRangeError):
        grade_answer(choice_question(correct=3), -1)


@pytest.mark.parametrize("answer", [True, "1"])
def test_text_or_a_boolean_is_not_an_option_index(answer: object) -> None:
    with pytest.raises(AnswerKindError, match="takes an option index"):
        grade_answer(choice_question(), answer)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("written", "outcome"),
    [
        ("watt", "correct"),
        ("  Watt. ", "correct"),
        ("w", "correct"),
        ("joule", "wrong"),
        ("   ", "skipped"),
    ],
)
def test_fill_in_the_blank_matches_the_accepted_answers(written: str, outcome: str) -> None:
    grade = grade_answer(blank_question(), written)
    assert grade.outcome == outcome
    assert grade.correct_answer == "watt"


def test_an_index_for_a_blank_is_refused() -> None:
    with pytest.raises(AnswerKindError, match="takes a written answer"):
        grade_answer(blank_question(), 0)


def test_true_false_grades_by_index() -> None:
    question = Question(
        id="tf",
        text="Light is faster than sound.",
        question_type="true_false",
        options=["True", "False"],
        correct_option_index=0,
        explanation="About 300,000 km/s against 343 m/s.",
        concept_tested="waves",
    )
    assert grade_answer(question, 0).is_correct
    assert grade_answer(question, 1).outcome == "wrong"
    with pytest.raises(AnswerOutOfRangeError, match=r"0\.\.1"):
        grade_answer(question, 2)
