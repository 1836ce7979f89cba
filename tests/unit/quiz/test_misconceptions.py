"""Misconception records: the lifecycle end to end, refusals with reasons, targeting."""

from __future__ import annotations

import datetime as dt

import pytest

from services.quiz.domain import (
    MisconceptionRecord,
    TransitionRefusedError,
    answer_recheck,
    answer_redemption,
    due_rechecks,
    grade_answer,
    misconception_targets,
    open_misconception,
    reopen_misconception,
)
from tests.unit.quiz.factories import choice_question

T0 = dt.datetime(2025, 3, 1, 9, 0, tzinfo=dt.UTC)
QUESTION = choice_question("q1", correct=1)
REDEMPTION = choice_question("r1", correct=2, text="Which of these has a direction?")


def detected(at: dt.datetime = T0, question_id: str = "q1") -> MisconceptionRecord:
    wrong = grade_answer(QUESTION, 0)
    return open_misconception(
        student_id="s1",
        concept=QUESTION.concept_tested,
        topic="Mechanics",
        description="Takes speed for a vector.",
        wrong_option_chosen=wrong.chosen_text,
        question_id=question_id,
        redemption_question_id=REDEMPTION.id,
        at=at,
        answer_id="a1",
    )


RIGHT = grade_answer(REDEMPTION, 2)
WRONG = grade_answer(REDEMPTION, 0)
SKIPPED = grade_answer(REDEMPTION, None)


def test_wrong_answer_to_resolved_end_to_end() -> None:
    record = detected()
    assert record.state == "open"
    assert record.wrong_option_chosen == "speed"
    redeemed = answer_redemption(record, RIGHT, T0 + dt.timedelta(minutes=5), answer_id="a2")
    assert redeemed.state == "redeemed"
    assert redeemed.recheck_due is not None
    assert redeemed.recheck_due >= T0 + dt.timedelta(days=1)
    assert due_rechecks([redeemed], T0 + dt.timedelta(hours=1)) == []
    assert due_rechecks([redeemed], redeemed.recheck_due) == [redeemed]
    resolved = answer_recheck(redeemed, RIGHT, redeemed.recheck_due, answer_id="a3")
    assert resolved.state == "resolved"
    assert resolved.recheck_due is None
    assert [s.action for s in resolved.history] == ["detected", "redemption_right", "recheck_right"]
    assert [s.answer_id for s in resolved.history] == ["a1", "a2", "a3"]
    assert resolved.view().state == "resolved"
    # Wrong again on the concept: reopened.
    later = resolved.updated_at + dt.timedelta(days=10)
    reopened = reopen_misconception(resolved, later, answer_id="a9")
    assert reopened.state == "open"
    assert reopened.reopened_times == 1
    assert reopened.opened_at == later


def test_a_wrong_recheck_reopens() -> None:
    redeemed = answer_redemption(detected(), RIGHT, T0)
    assert redeemed.recheck_due is not None
    reopened = answer_recheck(redeemed, WRONG, redeemed.recheck_due)
    assert reopened.state == "open"
    assert reopened.reopened_times == 1
    assert reopened.recheck_due is None
    assert reopened.review_card is not None  # the card keeps its history for the next round


def test_a_wrong_redemption_stays_open() -> None:
    record = answer_redemption(detected(), WRONG, T0 + dt.timedelta(minutes=1))
    assert record.state == "open"
    assert record.history[-1].action == "redemption_wrong"


@pytest.mark.parametrize(
    ("prepare", "step", "reason"),
    [
        (
            lambda r: r,
            lambda r: answer_recheck(r, RIGHT, T0 + dt.timedelta(days=30)),
            "a re-check follows a right redemption answer",
        ),
        (
            lambda r: answer_redemption(r, RIGHT, T0),
            lambda r: answer_redemption(r, RIGHT, T0 + dt.timedelta(days=1)),
            "only an open misconception has a redemption question",
        ),
        (
            lambda r: answer_redemption(r, RIGHT, T0),
            lambda r: answer_recheck(r, RIGHT, T0 + dt.timedelta(hours=1)),
            "the re-check is not due until",
        ),
        (
            lambda r: r,
            lambda r: answer_redemption(r, SKIPPED, T0),
            "a skipped answer is no evidence",
        ),
        (lambda r: r, lambda r: reopen_misconception(r, T0), "it is open already"),
        (
            lambda r: r,
            lambda r: answer_redemption(r, RIGHT, T0 - dt.timedelta(days=1)),
            "is before its last change",
        ),
    ],
)
def test_steps_the_state_does_not_allow_are_refused_with_a_reason(
    prepare: object, step: object, reason: str
) -> None:
    record = prepare(detected())  # type: ignore[operator]
    with pytest.raises(TransitionRefusedError, match=reason) as caught:
        step(record)  # type: ignore[operator]
    assert caught.value.state == record.state
    assert caught.value.record_id == record.id


def test_the_newest_open_ones_are_targeted() -> None:
    old = detected(T0, "q1")
    newer = detected(T0 + dt.timedelta(days=1), "q2")
    newest = detected(T0 + dt.timedelta(days=2), "q3")
    redeemed = answer_redemption(
        detected(T0 + dt.timedelta(days=3), "q4"), RIGHT, T0 + dt.timedelta(days=3)
    )
    # A reopened old record counts from when it was reopened.
    reopened = reopen_misconception(
        answer_redemption(detected(T0, "q5"), RIGHT, T0), T0 + dt.timedelta(days=5)
    )
    records = [old, newest, redeemed, newer, reopened]
    assert [r.question_id for r in misconception_targets(records, 3)] == ["q5", "q3", "q2"]
    assert misconception_targets(records, 0) == []
