"""Misconceptions as records, followed until resolved.

The lifecycle::

    open --redemption right--> redeemed --re-check right, when due--> resolved
     ^  \\--redemption wrong--> open     \\--re-check wrong--> open (reopened)
     \\------------------ wrong again on the concept (redeemed or resolved) -/

- A wrong answer opens a record (:func:`open_misconception`) with the diagnosis and the id
  of its redemption question.
- The redemption question answered right makes it ``redeemed``; an FSRS card for the
  re-check is reviewed ``Good`` and its due date is when the re-check comes
  (:func:`answer_redemption`). Answered wrong, it stays ``open``.
- The re-check, answered on or after its due date: right resolves the record, wrong reopens
  it (:func:`answer_recheck`). Before the due date it is refused.
- A wrong answer on the same concept elsewhere reopens a redeemed or resolved record
  (:func:`reopen_misconception`).
- A skipped answer is no evidence either way and moves nothing: it is refused.

Every step that is not allowed raises :class:`TransitionRefusedError` with the state and the
reason; every step allowed is appended to the record's history. Records are immutable:
each step returns a new one. The quiz aims at the newest open records first
(:func:`misconception_targets`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from exammentor.contracts.quiz import MisconceptionRecordView, MisconceptionState
from services.quiz.domain.errors import TransitionRefusedError
from services.quiz.domain.grading import Grade
from services.quiz.domain.review import (
    DEFAULT_REVIEW_POLICY,
    ReviewPolicy,
    card_from_record,
    card_to_record,
    new_review_card,
    record_review,
    review_key,
)

MisconceptionAction = Literal[
    "detected", "redemption_right", "redemption_wrong", "recheck_right", "recheck_wrong", "relapse"
]


class MisconceptionStep(BaseModel):
    """One step of a record's history."""

    model_config = ConfigDict(frozen=True)

    at: dt.datetime
    action: MisconceptionAction
    from_state: MisconceptionState | None
    to_state: MisconceptionState
    answer_id: str | None = None


class MisconceptionRecord(BaseModel):
    """A student's misconception and where it stands."""

    model_config = ConfigDict(frozen=True)

    id: str
    student_id: str
    concept: str
    topic: str
    description: str
    """The inferred confusion."""
    wrong_option_chosen: str
    question_id: str
    redemption_question_id: str | None = None
    state: MisconceptionState = "open"
    detected_at: dt.datetime
    opened_at: dt.datetime
    """When it was last opened or reopened: the newest open ones are targeted first."""
    updated_at: dt.datetime
    recheck_due: dt.datetime | None = None
    reopened_times: int = Field(default=0, ge=0)
    review_card: dict[str, Any] | None = None
    """The re-check's FSRS card (see ``review.card_to_record``)."""
    history: tuple[MisconceptionStep, ...] = ()

    def view(self) -> MisconceptionRecordView:
        """The record as the learner API shows it.

        Returns:
            The view.
        """
        return MisconceptionRecordView(
            id=self.id,
            concept=self.concept,
            topic=self.topic,
            description=self.description,
            state=self.state,
            detected_at=self.detected_at,
            updated_at=self.updated_at,
            recheck_due=self.recheck_due,
            reopened_times=self.reopened_times,
        )


def misconception_id(student_id: str, question_id: str, detected_at: dt.datetime) -> str:
    """A stable id: the same student, question and moment give the same id.

    Args:
        student_id: The student.
        question_id: The question answered wrong.
        detected_at: When.

    Returns:
        ``m_`` and 16 hex digits.
    """
    digest = hashlib.sha256(f"{student_id}\n{question_id}\n{detected_at.isoformat()}".encode())
    return f"m_{digest.hexdigest()[:16]}"


def open_misconception(
    *,
    student_id: str,
    concept: str,
    topic: str,
    description: str,
    wrong_option_chosen: str,
    question_id: str,
    redemption_question_id: str | None,
    at: dt.datetime,
    answer_id: str | None = None,
) -> MisconceptionRecord:
    """A new open record for a diagnosed wrong answer.

    Args:
        student_id: The student.
        concept: The concept the question tested.
        topic: Its topic.
        description: The inferred confusion.
        wrong_option_chosen: The option the student chose.
        question_id: The question answered wrong.
        redemption_question_id: The redemption question, when one was validated.
        at: When it was detected.
        answer_id: The wrong answer.

    Returns:
        The record, ``open``.
    """
    return MisconceptionRecord(
        id=misconception_id(student_id, question_id, at),
        student_id=student_id,
        concept=concept,
        topic=topic,
        description=description,
        wrong_option_chosen=wrong_option_chosen,
        question_id=question_id,
        redemption_question_id=redemption_question_id,
        detected_at=at,
        opened_at=at,
        updated_at=at,
        history=(
            MisconceptionStep(
                at=at, action="detected", from_state=None, to_state="open", answer_id=answer_id
            ),
        ),
    )


def _refuse(record: MisconceptionRecord, action: str, reason: str) -> TransitionRefusedError:
    return TransitionRefusedError(record.id, record.state, action, reason)


def _step(
    record: MisconceptionRecord,
    action: MisconceptionAction,
    to_state: MisconceptionState,
    at: dt.datetime,
    answer_id: str | None,
    **changes: Any,
) -> MisconceptionRecord:
    if at < record.updated_at:
        raise _refuse(
            record,
            action.replace("_", " "),
            f"{at.isoformat()} is before its last change at {record.updated_at.isoformat()}",
        )
    step = MisconceptionStep(
        at=at, action=action, from_state=record.state, to_state=to_state, answer_id=answer_id
    )
    return record.model_copy(
        update={
            "state": to_state,
            "updated_at": at,
            "history": (*record.history, step),
            **changes,
        }
    )


def _evidence(record: MisconceptionRecord, grade: Grade, action: str) -> bool:
    if grade.observation is None:
        raise _refuse(record, action, "a skipped answer is no evidence either way")
    return grade.observation


def answer_redemption(
    record: MisconceptionRecord,
    grade: Grade,
    at: dt.datetime,
    *,
    answer_id: str | None = None,
    policy: ReviewPolicy = DEFAULT_REVIEW_POLICY,
) -> MisconceptionRecord:
    """The record after its redemption question was answered.

    Args:
        record: An ``open`` record.
        grade: The verdict on the redemption answer.
        at: When it was answered.
        answer_id: The answer, for the history.
        policy: The re-check schedule.

    Returns:
        ``redeemed`` with a re-check due date when right; still ``open`` when wrong.

    Raises:
        TransitionRefusedError: The record is not open, the answer was skipped, or ``at`` is
            before the record's last change.
    """
    action = "answer the redemption question"
    if record.state != "open":
        raise _refuse(record, action, "only an open misconception has a redemption question")
    if not _evidence(record, grade, action):
        return _step(record, "redemption_wrong", "open", at, answer_id)
    key = review_key(record.student_id, record.concept, record.id)
    card = record_review(new_review_card(key, at), grade, at, policy)
    return _step(
        record,
        "redemption_right",
        "redeemed",
        at,
        answer_id,
        review_card=card_to_record(card),
        recheck_due=card.due,
    )


def answer_recheck(
    record: MisconceptionRecord,
    grade: Grade,
    at: dt.datetime,
    *,
    answer_id: str | None = None,
    policy: ReviewPolicy = DEFAULT_REVIEW_POLICY,
) -> MisconceptionRecord:
    """The record after its due re-check was answered.

    Args:
        record: A ``redeemed`` record whose re-check is due.
        grade: The verdict on the re-check answer.
        at: When it was answered.
        answer_id: The answer, for the history.
        policy: The re-check schedule.

    Returns:
        ``resolved`` when right; ``open`` again (reopened) when wrong.

    Raises:
        TransitionRefusedError: The record is not redeemed, the re-check is not due yet, or
            the answer was skipped.
    """
    action = "answer the re-check"
    if record.state != "redeemed" or record.recheck_due is None or record.review_card is None:
        raise _refuse(record, action, "a re-check follows a right redemption answer")
    if at < record.recheck_due:
        raise _refuse(
            record, action, f"the re-check is not due until {record.recheck_due.isoformat()}"
        )
    right = _evidence(record, grade, action)
    card = record_review(card_from_record(record.review_card), grade, at, policy)
    if right:
        return _step(
            record,
            "recheck_right",
            "resolved",
            at,
            answer_id,
            review_card=card_to_record(card),
            recheck_due=None,
        )
    return _step(
        record,
        "recheck_wrong",
        "open",
        at,
        answer_id,
        review_card=card_to_record(card),
        recheck_due=None,
        opened_at=at,
        reopened_times=record.reopened_times + 1,
    )


def reopen_misconception(
    record: MisconceptionRecord, at: dt.datetime, *, answer_id: str | None = None
) -> MisconceptionRecord:
    """The record after the student answered its concept wrong again elsewhere.

    Args:
        record: A ``redeemed`` or ``resolved`` record.
        at: When.
        answer_id: The wrong answer.

    Returns:
        The record ``open`` again, its re-check cancelled.

    Raises:
        TransitionRefusedError: The record is already open.
    """
    if record.state == "open":
        raise _refuse(record, "reopen", "it is open already")
    return _step(
        record,
        "relapse",
        "open",
        at,
        answer_id,
        recheck_due=None,
        opened_at=at,
        reopened_times=record.reopened_times + 1,
    )


def misconception_targets(
    records: Sequence[MisconceptionRecord], count: int
) -> list[MisconceptionRecord]:
    """The open misconceptions a quiz should aim at: the newest first.

    Args:
        records: A student's records.
        count: How many at most.

    Returns:
        Open records, most recently opened first (ties by id).
    """
    open_ones = [r for r in records if r.state == "open"]
    open_ones.sort(key=lambda r: r.id)
    open_ones.sort(key=lambda r: r.opened_at, reverse=True)
    return open_ones[: max(0, count)]


def quiz_targets(
    open_records: Sequence[MisconceptionRecord],
    redeemed: Sequence[MisconceptionRecord],
    at: dt.datetime,
    count: int,
) -> list[str]:
    """What a new quiz aims at: the concepts whose re-check is due, then the newest open
    misconceptions.

    Args:
        open_records: The student's open records.
        redeemed: The student's redeemed records, in the order they are to be asked.
        at: The moment.
        count: How many targets a quiz aims at; every due re-check is kept even beyond it.

    Returns:
        Concepts of due re-checks, then descriptions of the newest open records.
    """
    rechecks = [r.concept for r in redeemed if r.recheck_due is not None and r.recheck_due <= at]
    newest = [r.description for r in misconception_targets(open_records, count)]
    return [*rechecks, *newest][: max(count, len(rechecks))]


def due_rechecks(
    records: Sequence[MisconceptionRecord], at: dt.datetime
) -> list[MisconceptionRecord]:
    """The redeemed records whose re-check is due at ``at``, the longest overdue first.

    Args:
        records: A student's records.
        at: The moment.

    Returns:
        The due records.
    """
    due = [
        r
        for r in records
        if r.state == "redeemed" and r.recheck_due is not None and r.recheck_due <= at
    ]
    return sorted(due, key=lambda r: (r.recheck_due or at, r.id))
