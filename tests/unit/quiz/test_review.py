"""Review scheduling through fsrs: ratings from grades, stable cards, stored and restored."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from fsrs import Rating, State

from services.quiz.domain import (
    card_from_record,
    card_to_record,
    grade_answer,
    is_due,
    new_review_card,
    rating_for,
    recall_probability,
    record_review,
    review_key,
)
from tests.unit.quiz.factories import choice_question

NOW = dt.datetime(2025, 3, 1, 9, 0, tzinfo=dt.UTC)
RIGHT = grade_answer(choice_question(correct=1), 1)
WRONG = grade_answer(choice_question(correct=1), 0)
SKIPPED = grade_answer(choice_question(correct=1), None)


def test_grades_become_ratings() -> None:
    assert rating_for(RIGHT) == Rating.Good
    assert rating_for(WRONG) == Rating.Again
    assert rating_for(SKIPPED) == Rating.Again


def test_cards_are_keyed_per_student_concept_and_misconception() -> None:
    concept = review_key("s1", "Kinematics ")
    recheck = review_key("s1", "kinematics", "m_1")
    assert concept == review_key("s1", "kinematics")
    assert recheck != concept
    assert new_review_card(concept, NOW).card_id == new_review_card(concept, NOW).card_id
    assert new_review_card(concept, NOW).card_id != new_review_card(recheck, NOW).card_id


def test_a_right_answer_schedules_days_ahead_and_a_wrong_one_sooner() -> None:
    card = new_review_card(review_key("s1", "optics"), NOW)
    assert is_due(card, NOW)
    good = record_review(card, RIGHT, NOW)
    assert good.state == State.Review
    assert good.due - NOW >= dt.timedelta(days=1)
    assert not is_due(good, NOW)
    again = record_review(good, WRONG, good.due)
    good_again = record_review(good, RIGHT, good.due)
    assert again.due < good_again.due
    assert recall_probability(good, NOW + dt.timedelta(days=1)) > recall_probability(
        good, NOW + dt.timedelta(days=30)
    )


def test_the_same_answers_give_the_same_schedule() -> None:
    def run() -> dt.datetime:
        card = new_review_card(review_key("s1", "optics"), NOW)
        for grade in (RIGHT, WRONG, RIGHT, RIGHT):
            card = record_review(card, grade, card.due)
        return card.due

    assert run() == run()


def test_a_card_round_trips_through_json() -> None:
    card = record_review(new_review_card(review_key("s1", "optics"), NOW), RIGHT, NOW)
    stored = json.loads(json.dumps(card_to_record(card)))
    back = card_from_record(stored)
    assert card_to_record(back) == card_to_record(card)
    assert record_review(back, RIGHT, card.due).due == record_review(card, RIGHT, card.due).due


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"state": 9}, "not a review card"),
        ({"due": "2025-03-01T09:00:00"}, "no time zone"),
        ({"stability": -1.0}, "not a review card"),
        ({"extra": 1}, "not a review card"),
    ],
)
def test_a_record_that_is_not_a_card_is_refused(change: dict[str, object], message: str) -> None:
    record = card_to_record(new_review_card(review_key("s1", "optics"), NOW)) | change
    with pytest.raises(ValueError, match=message):
        card_from_record(record)


def test_review_times_need_a_zone() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        new_review_card("k", dt.datetime(2025, 3, 1))
