"""Item difficulty calibrated online (Elo-style) and questions picked near a student's level.

Student ability and item difficulty share one logit scale: the expected chance of a right
answer is ``sigmoid(ability - difficulty)``. After each answer both move by ``K x (outcome -
expected)``, in opposite directions, with ``K = k_base / (1 + k_decay x answers)`` so that a
new item or student moves fast and a well-known one settles (Pelanek's uncertainty
function). A skipped answer moves nothing.

A new item starts from its label (easy -1, medium 0, hard +1), and a calibrated item gets a
label back from its rating. Questions are picked so that the student's expected success is
closest to ``target_success`` (hard enough to learn from, easy enough to keep going), and the
difficulty of an ``adaptive`` quiz follows the learner model's mastery.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from exammentor.contracts.quiz import QuestionDifficulty
from services.quiz.domain.grading import Grade


@dataclass(frozen=True)
class DifficultyPolicy:
    """Elo constants and difficulty thresholds; the defaults are what the service uses.

    Attributes:
        k_base: Step size of a rating with no answers yet (logits).
        k_decay: How fast the step shrinks with the number of answers.
        label_ratings: Starting rating of an item by its label.
        easy_below: Item ratings below this are labelled easy.
        hard_above: Item ratings above this are labelled hard.
        target_success: Expected success a picked question aims at.
        adaptive_easy_below: Mastery below this asks for easy questions.
        adaptive_hard_from: Mastery from this asks for hard questions.
        reuse_max_gap: A stored question is asked again only when the student's expected
            success on it is within this of ``target_success`` (else a new one is written).
    """

    k_base: float = 0.8
    k_decay: float = 0.05
    label_ratings: tuple[tuple[QuestionDifficulty, float], ...] = (
        ("easy", -1.0),
        ("medium", 0.0),
        ("hard", 1.0),
    )
    easy_below: float = -0.5
    hard_above: float = 0.5
    target_success: float = 0.7
    adaptive_easy_below: float = 0.4
    adaptive_hard_from: float = 0.8
    reuse_max_gap: float = 0.15


DEFAULT_DIFFICULTY_POLICY = DifficultyPolicy()


class SkillRating(BaseModel):
    """An Elo rating: a student's ability on a concept, or an item's difficulty."""

    model_config = ConfigDict(frozen=True)

    rating: float = Field(default=0.0, allow_inf_nan=False)
    answers: int = Field(default=0, ge=0)


def expected_success(ability: float, difficulty: float) -> float:
    """P(right) of a student of ``ability`` on an item of ``difficulty``.

    Args:
        ability: The student's rating.
        difficulty: The item's rating.

    Returns:
        The logistic of the difference.
    """
    gap = ability - difficulty
    # The two forms avoid overflow in exp() for large gaps of either sign.
    if gap >= 0:
        return 1.0 / (1.0 + math.exp(-gap))
    z = math.exp(gap)
    return z / (1.0 + z)


def _step(rating: SkillRating, policy: DifficultyPolicy) -> float:
    return policy.k_base / (1.0 + policy.k_decay * rating.answers)


def update_ratings(
    student: SkillRating,
    item: SkillRating,
    grade: Grade,
    policy: DifficultyPolicy = DEFAULT_DIFFICULTY_POLICY,
) -> tuple[SkillRating, SkillRating]:
    """Both ratings after one answer.

    Args:
        student: The student's rating on the item's concept.
        item: The item's rating.
        grade: The verdict; a skip changes nothing.
        policy: The constants.

    Returns:
        ``(student, item)`` after the answer.
    """
    if grade.observation is None:
        return student, item
    surprise = float(grade.observation) - expected_success(student.rating, item.rating)
    return (
        SkillRating(
            rating=student.rating + _step(student, policy) * surprise, answers=student.answers + 1
        ),
        SkillRating(rating=item.rating - _step(item, policy) * surprise, answers=item.answers + 1),
    )


def initial_item_rating(
    label: QuestionDifficulty, policy: DifficultyPolicy = DEFAULT_DIFFICULTY_POLICY
) -> SkillRating:
    """The rating a new item starts from.

    Args:
        label: The difficulty it was written for.
        policy: The constants.

    Returns:
        A rating with no answers.
    """
    return SkillRating(rating=dict(policy.label_ratings)[label])


def difficulty_label(
    item: SkillRating, policy: DifficultyPolicy = DEFAULT_DIFFICULTY_POLICY
) -> QuestionDifficulty:
    """The label a calibrated item has earned.

    Args:
        item: The item's rating.
        policy: The thresholds.

    Returns:
        easy, medium or hard.
    """
    if item.rating < policy.easy_below:
        return "easy"
    if item.rating > policy.hard_above:
        return "hard"
    return "medium"


def adaptive_difficulty(
    p_mastery: float | None, policy: DifficultyPolicy = DEFAULT_DIFFICULTY_POLICY
) -> QuestionDifficulty:
    """The difficulty of an ``adaptive`` quiz from the learner model's mastery.

    Args:
        p_mastery: P(knows the concept or topic); ``None`` when there are no answers yet.
        policy: The thresholds.

    Returns:
        easy, medium or hard (medium before there is evidence).
    """
    if p_mastery is None:
        return "medium"
    if p_mastery < policy.adaptive_easy_below:
        return "easy"
    if p_mastery >= policy.adaptive_hard_from:
        return "hard"
    return "medium"


def pick_questions(
    items: Mapping[str, SkillRating],
    ability: SkillRating,
    count: int,
    *,
    exclude: Collection[str] = (),
    policy: DifficultyPolicy = DEFAULT_DIFFICULTY_POLICY,
) -> list[str]:
    """The ``count`` items whose expected success is nearest the target.

    Args:
        items: Item id -> rating.
        ability: The student's rating.
        count: How many to pick.
        exclude: Ids not to pick (seen recently).
        policy: The target.

    Returns:
        Item ids, best first; ties go to the lower id, so the choice is repeatable.
    """
    ranked = sorted(
        (
            abs(expected_success(ability.rating, rating.rating) - policy.target_success),
            item_id,
        )
        for item_id, rating in items.items()
        if item_id not in exclude
    )
    return [item_id for _, item_id in ranked[: max(0, count)]]


def questions_near_level(
    items: Mapping[str, SkillRating],
    ability: SkillRating,
    count: int,
    *,
    label: QuestionDifficulty | None = None,
    policy: DifficultyPolicy = DEFAULT_DIFFICULTY_POLICY,
) -> list[str]:
    """Stored questions worth asking again: :func:`pick_questions` among those near enough
    to the student's level, optionally of one (calibrated) difficulty label.

    Args:
        items: Item id -> rating (the candidates; recently seen ones already left out).
        ability: The student's rating.
        count: How many at most.
        label: Only items whose calibrated label is this (an explicitly asked difficulty).
        policy: The target and the largest gap from it.

    Returns:
        Item ids, nearest the target first; fewer than ``count`` (or none) when too few are
        near enough.
    """
    near = {
        item_id: rating
        for item_id, rating in items.items()
        if abs(expected_success(ability.rating, rating.rating) - policy.target_success)
        <= policy.reuse_max_gap
        and (label is None or difficulty_label(rating, policy) == label)
    }
    return pick_questions(near, ability, count, policy=policy)
