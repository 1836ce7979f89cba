"""Review scheduling with FSRS (the ``fsrs`` package; nothing of it is re-implemented here).

One card per student and concept, and one per misconception re-check. A grade becomes an
FSRS rating: right is ``Good``, wrong is ``Again``, and a skip is ``Again`` too (the student
could not recall it in time, which is what FSRS measures, even though the learner model
takes a skip as no evidence of a wrong belief).

The scheduler runs without learning steps and without fuzzing: a study coach's next review
is days away, not minutes, and the same answers at the same times must give the same due
date. Cards are stored as JSON-able dicts (:func:`card_to_record`) and read back with
:func:`card_from_record`, which refuses a record that is not a card.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from dataclasses import dataclass
from typing import Any

from fsrs import Card, Rating, Scheduler, State
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.quiz.domain.grading import Grade


@dataclass(frozen=True)
class ReviewPolicy:
    """How reviews are scheduled; the defaults are what the quiz service uses.

    Attributes:
        desired_retention: The recall probability FSRS schedules for.
        maximum_interval_days: Longest gap between two reviews.
    """

    desired_retention: float = 0.9
    maximum_interval_days: int = 365


DEFAULT_REVIEW_POLICY = ReviewPolicy()


@functools.cache
def _scheduler(policy: ReviewPolicy) -> Scheduler:
    return Scheduler(
        desired_retention=policy.desired_retention,
        learning_steps=(),
        relearning_steps=(),
        maximum_interval=policy.maximum_interval_days,
        enable_fuzzing=False,
    )


def review_key(student_id: str, concept: str, misconception_id: str | None = None) -> str:
    """The key of a card: a student's concept, or a misconception's re-check.

    Args:
        student_id: The student.
        concept: The concept tested.
        misconception_id: Set for a misconception's re-check card.

    Returns:
        A key to store the card under.
    """
    kind = f"misconception:{misconception_id}" if misconception_id else "concept"
    return f"{student_id}|{kind}|{concept.casefold().strip()}"


def _card_id(key: str) -> int:
    # fsrs would use the clock for the id; a digest of the key keeps it stable and pure.
    return int(hashlib.sha256(key.encode()).hexdigest()[:13], 16)


def _utc(at: dt.datetime) -> dt.datetime:
    if at.tzinfo is None:
        raise ValueError(f"{at.isoformat()} has no time zone; review times must be aware")
    return at.astimezone(dt.UTC)


def new_review_card(key: str, at: dt.datetime) -> Card:
    """A card nobody has reviewed yet, due at ``at``.

    Args:
        key: From :func:`review_key`.
        at: When it is created (time-zone aware).

    Returns:
        The card.
    """
    return Card(card_id=_card_id(key), due=_utc(at))


def rating_for(grade: Grade) -> Rating:
    """The FSRS rating of a graded answer.

    Args:
        grade: The verdict.

    Returns:
        ``Good`` for a right answer, ``Again`` for a wrong or skipped one.
    """
    return Rating.Good if grade.is_correct else Rating.Again


def record_review(
    card: Card, grade: Grade, at: dt.datetime, policy: ReviewPolicy = DEFAULT_REVIEW_POLICY
) -> Card:
    """The card after an answer at ``at``.

    Args:
        card: The card before.
        grade: The verdict on the answer.
        at: When it was answered (time-zone aware).
        policy: The schedule.

    Returns:
        The updated card (the given one is not changed).
    """
    updated, _ = _scheduler(policy).review_card(card, rating_for(grade), _utc(at))
    return updated


def recall_probability(
    card: Card, at: dt.datetime, policy: ReviewPolicy = DEFAULT_REVIEW_POLICY
) -> float:
    """FSRS's estimate that the student recalls the card's concept at ``at``.

    Args:
        card: The card.
        at: The moment (time-zone aware).
        policy: The schedule.

    Returns:
        A probability (0 for a card never reviewed).
    """
    return float(_scheduler(policy).get_card_retrievability(card, _utc(at)))


def is_due(card: Card, at: dt.datetime) -> bool:
    """Whether the card is due for review at ``at``.

    Args:
        card: The card.
        at: The moment (time-zone aware).

    Returns:
        True when its due date has come.
    """
    return bool(card.due <= _utc(at))


class _CardRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)

    card_id: int = Field(ge=1)
    state: int = Field(ge=min(State).value, le=max(State).value)
    step: int | None = Field(default=None, ge=0)
    stability: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    difficulty: float | None = Field(default=None, ge=1, le=10, allow_inf_nan=False)
    due: dt.datetime
    last_review: dt.datetime | None = None


def card_to_record(card: Card) -> dict[str, Any]:
    """A card as a JSON-able dict, to store.

    Args:
        card: The card.

    Returns:
        Numbers, ``None`` and ISO-8601 strings only.
    """
    return dict(card.to_dict())


def card_from_record(record: dict[str, Any]) -> Card:
    """A stored card back as an FSRS card.

    Args:
        record: From :func:`card_to_record`.

    Returns:
        The card.

    Raises:
        ValueError: The record is not a card (missing or unknown keys, values out of range,
            times without a zone).
    """
    try:
        checked = _CardRecord.model_validate(record)
    except ValidationError as exc:
        raise ValueError(f"not a review card: {exc.errors()[0]['msg']}") from None
    for moment in (checked.due, checked.last_review):
        if moment is not None and moment.tzinfo is None:
            raise ValueError("not a review card: its times have no time zone")
    return Card(
        card_id=checked.card_id,
        state=State(checked.state),
        step=checked.step,
        stability=checked.stability,
        difficulty=checked.difficulty,
        due=_utc(checked.due),
        last_review=None if checked.last_review is None else _utc(checked.last_review),
    )
