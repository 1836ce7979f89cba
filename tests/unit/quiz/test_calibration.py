"""Elo-style item calibration, picking questions near a student's level, adaptive difficulty."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from services.quiz.domain import (
    SkillRating,
    adaptive_difficulty,
    difficulty_label,
    expected_success,
    grade_answer,
    initial_item_rating,
    pick_questions,
    questions_near_level,
    update_ratings,
)
from tests.unit.quiz.factories import choice_question

RIGHT = grade_answer(choice_question(correct=1), 1)
WRONG = grade_answer(choice_question(correct=1), 0)
SKIPPED = grade_answer(choice_question(correct=1), None)


@given(st.floats(-50, 50), st.floats(-50, 50))
def test_expected_success_is_a_probability_decreasing_in_difficulty(
    ability: float, difficulty: float
) -> None:
    p = expected_success(ability, difficulty)
    assert 0 <= p <= 1
    assert expected_success(ability, difficulty + 1) <= p


@given(st.floats(-3, 3), st.floats(-3, 3), st.integers(0, 50), st.integers(0, 50))
def test_a_right_answer_raises_ability_and_lowers_difficulty(
    ability: float, difficulty: float, seen: int, answered: int
) -> None:
    student, item = (
        SkillRating(rating=ability, answers=seen),
        SkillRating(rating=difficulty, answers=answered),
    )
    up_student, down_item = update_ratings(student, item, RIGHT)
    assert up_student.rating > student.rating
    assert down_item.rating < item.rating
    down_student, up_item = update_ratings(student, item, WRONG)
    assert down_student.rating < student.rating
    assert up_item.rating > item.rating
    assert up_student.answers == seen + 1
    assert down_item.answers == answered + 1


def test_a_skip_moves_nothing() -> None:
    student, item = SkillRating(rating=0.3), SkillRating(rating=-0.2)
    assert update_ratings(student, item, SKIPPED) == (student, item)


def test_steps_shrink_as_answers_accumulate() -> None:
    fresh = update_ratings(SkillRating(), SkillRating(), RIGHT)[1]
    seasoned = update_ratings(SkillRating(), SkillRating(answers=100), RIGHT)[1]
    assert abs(fresh.rating) > abs(seasoned.rating) > 0


def test_calibration_recovers_the_order_of_item_difficulties() -> None:
    rng = np.random.default_rng(4)
    true_difficulty = np.linspace(-2, 2, 9)
    abilities = rng.normal(0, 1, 400)
    items = {i: initial_item_rating("medium") for i in range(9)}
    students = [SkillRating() for _ in abilities]
    for _ in range(6):
        for s, ability in enumerate(abilities):
            for i in rng.permutation(9):
                right = rng.random() < expected_success(ability, true_difficulty[i])
                grade = RIGHT if right else WRONG
                students[s], items[i] = update_ratings(students[s], items[i], grade)
    fitted = [items[i].rating for i in range(9)]
    assert np.corrcoef(fitted, true_difficulty)[0, 1] > 0.95
    assert difficulty_label(items[0]) == "easy"
    assert difficulty_label(items[8]) == "hard"


def test_picked_questions_sit_near_the_target_success() -> None:
    items = {f"q{i}": SkillRating(rating=r) for i, r in enumerate([-3, -1.5, -0.85, 0, 1, 3])}
    ability = SkillRating(rating=0.0)
    # sigmoid(0.85) ~ 0.70, the default target.
    assert pick_questions(items, ability, 2) == ["q2", "q1"]
    assert pick_questions(items, ability, 2, exclude={"q2"}) == ["q1", "q3"]
    assert pick_questions(items, ability, 0) == []


def test_only_stored_questions_near_the_level_are_asked_again() -> None:
    items = {f"q{i}": SkillRating(rating=r) for i, r in enumerate([-3, -1.5, -0.85, 0, 1, 3])}
    ability = SkillRating(rating=0.0)
    # Expected success 0.70 (q2) and 0.82 (q1) are within 0.15 of the target; q3 (0.50) and
    # q0 (0.95) are not, so a third question would be written fresh.
    assert questions_near_level(items, ability, 3) == ["q2", "q1"]
    assert questions_near_level(items, ability, 1) == ["q2"]
    assert questions_near_level(items, ability, 3, label="easy") == ["q2", "q1"]
    assert questions_near_level(items, ability, 3, label="medium") == []
    # A stronger student gets the harder items instead.
    assert questions_near_level(items, SkillRating(rating=2.0), 1) == ["q4"]
    assert questions_near_level({}, ability, 3) == []


def test_labels_start_and_end_where_they_should() -> None:
    assert initial_item_rating("easy").rating < initial_item_rating("hard").rating
    for label in ("easy", "medium", "hard"):
        assert difficulty_label(initial_item_rating(label)) == label


def test_adaptive_difficulty_follows_mastery() -> None:
    assert adaptive_difficulty(None) == "medium"
    assert adaptive_difficulty(0.1) == "easy"
    assert adaptive_difficulty(0.6) == "medium"
    assert adaptive_difficulty(0.95) == "hard"
