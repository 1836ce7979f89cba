"""``record_answer``: one graded answer moves knowledge tracing, both Elo ratings, the
concept's review card and the misconception records together, from its arguments alone."""

from __future__ import annotations

import dataclasses
import datetime as dt

from exammentor.contracts.quiz import Question
from services.quiz.domain import (
    AnswerRecord,
    BKTParams,
    Grade,
    LearnerState,
    LearnerUpdate,
    MisconceptionRecord,
    SkillRating,
    answer_redemption,
    card_from_record,
    card_to_record,
    concept_mastery,
    grade_answer,
    new_review_card,
    open_misconception,
    params_for,
    quiz_targets,
    record_answer,
    review_key,
)
from tests.unit.quiz.factories import choice_question

T0 = dt.datetime(2025, 3, 1, 9, 0, tzinfo=dt.UTC)
QUESTION = choice_question("q1", correct=1, concept="Vectors")
REDEMPTION = choice_question("r1", correct=2, concept="Vectors", text="Which has a direction?")
RIGHT = grade_answer(QUESTION, 1)
WRONG = grade_answer(QUESTION, 0)
SKIPPED = grade_answer(QUESTION, None)


def earlier(n: int, outcome: str = "correct") -> list[AnswerRecord]:
    return [
        AnswerRecord(
            answer_id=f"old-{i}",
            question_id=f"old-q{i}",
            concept="Vectors",
            topic="Mechanics",
            outcome=outcome,  # type: ignore[arg-type]
            answered_at=T0 - dt.timedelta(days=n - i),
        )
        for i in range(n)
    ]


def state(**changes: object) -> LearnerState:
    fresh = LearnerState(
        log=[],
        p_mastery=None,
        skill=SkillRating(),
        review_card=None,
        item=SkillRating(),
        params={},
        misconceptions=[],
    )
    return dataclasses.replace(fresh, **changes)  # type: ignore[arg-type]


def answered(
    grade_: Grade = RIGHT, question: Question = QUESTION, **changes: object
) -> LearnerUpdate:
    return record_answer(
        student_id="s1",
        question=question,
        topic="Mechanics",
        grade=grade_,
        state=state(**changes),
        answer_id="a1",
        at=T0,
    )


def detected(redemption_id: str = REDEMPTION.id) -> MisconceptionRecord:
    return open_misconception(
        student_id="s1",
        concept="Vectors",
        topic="Mechanics",
        description="Takes speed for a vector.",
        wrong_option_chosen="speed",
        question_id="q0",
        redemption_question_id=redemption_id,
        at=T0 - dt.timedelta(days=90),
    )


def test_a_right_answer_logs_raises_mastery_and_schedules_a_review() -> None:
    update = answered(RIGHT)
    assert update.answer.answer_id == "a1"
    assert update.answer.outcome == "correct"
    assert update.answer.answered_at == T0
    assert update.is_evidence
    assert update.p_mastery_before is None
    assert update.concept.concept == "Vectors"
    assert update.concept.answered == 1
    assert update.concept.correct == 1
    assert update.topic.topic == "Mechanics"
    assert update.topic.score == round(update.concept.p_mastery * 100, 1)
    assert update.skill.rating > 0 > update.item.rating
    assert update.skill.answers == update.item.answers == 1
    assert update.next_review is not None
    assert update.next_review > T0
    assert update.review_card is not None
    assert card_from_record(update.review_card).due == update.next_review
    assert update.misconceptions == ()


def test_a_wrong_answer_lowers_mastery_below_a_right_one() -> None:
    right, wrong = answered(RIGHT), answered(WRONG)
    assert wrong.concept.p_mastery < right.concept.p_mastery
    assert wrong.skill.rating < 0 < wrong.item.rating
    assert wrong.next_review is not None
    assert right.next_review is not None
    assert wrong.next_review < right.next_review


def test_mastery_is_the_whole_log_recomputed_with_the_fitted_parameters() -> None:
    log = earlier(4, "wrong")
    fitted = {"*": BKTParams(prior=0.6, learn=0.2, slip=0.05, guess=0.2, forget=0.0)}
    update = answered(RIGHT, log=log, params=fitted, p_mastery=0.3)
    expected = concept_mastery([*log, update.answer], params_for(fitted, ["Vectors"]))
    assert update.concept == expected[0]
    assert update.concept.answered == 5
    assert update.p_mastery_before == 0.3
    assert update.concept != answered(RIGHT, log=log).concept  # the fit counts


def test_the_state_given_is_not_changed() -> None:
    log = earlier(2)
    given = state(log=log)
    record_answer(
        student_id="s1",
        question=QUESTION,
        topic="Mechanics",
        grade=RIGHT,
        state=given,
        answer_id="a1",
        at=T0,
    )
    assert len(given.log) == 2


def test_a_skip_is_logged_but_moves_no_card() -> None:
    update = answered(SKIPPED)
    assert update.answer.outcome == "skipped"
    assert not update.is_evidence
    assert update.review_card is None
    assert update.next_review is None


def test_a_skip_keeps_a_stored_card_as_it_was() -> None:
    card = new_review_card(review_key("s1", "Vectors"), T0 - dt.timedelta(days=2))
    stored = card_to_record(card)
    update = answered(SKIPPED, review_card=stored)
    assert update.review_card == stored
    assert update.next_review == card.due


def test_the_redemption_answered_right_redeems_its_record_once() -> None:
    record = detected()
    grade_ = grade_answer(REDEMPTION, 2)
    update = answered(grade_, REDEMPTION, misconceptions=[record, record])
    assert [r.state for r in update.misconceptions] == ["redeemed"]
    assert update.misconceptions[0].recheck_due is not None
    assert update.resolved == ()


def test_a_due_recheck_answered_right_resolves_the_record() -> None:
    redeemed = answer_redemption(
        detected(), grade_answer(REDEMPTION, 2), T0 - dt.timedelta(days=60), answer_id="a0"
    )
    update = answered(RIGHT, misconceptions=[redeemed])
    assert [r.state for r in update.misconceptions] == ["resolved"]
    assert update.resolved == update.misconceptions


def test_a_wrong_answer_before_the_recheck_reopens_the_record() -> None:
    redeemed = answer_redemption(detected(), grade_answer(REDEMPTION, 2), T0, answer_id="a0")
    assert redeemed.recheck_due is not None
    assert redeemed.recheck_due > T0
    update = answered(WRONG, misconceptions=[redeemed])
    assert [r.state for r in update.misconceptions] == ["open"]
    assert update.misconceptions[0].reopened_times == 1


def test_a_right_answer_before_the_recheck_moves_nothing() -> None:
    redeemed = answer_redemption(detected(), grade_answer(REDEMPTION, 2), T0, answer_id="a0")
    assert answered(RIGHT, misconceptions=[redeemed]).misconceptions == ()


def test_a_skip_moves_no_record() -> None:
    update = answered(grade_answer(REDEMPTION, None), REDEMPTION, misconceptions=[detected()])
    assert update.misconceptions == ()


def test_params_for_falls_back_to_the_fit_for_every_concept() -> None:
    own = BKTParams(prior=0.5, learn=0.1, slip=0.1, guess=0.2, forget=0.0)
    every = BKTParams(prior=0.2, learn=0.1, slip=0.1, guess=0.2, forget=0.0)
    assert params_for({"vectors": own, "*": every}, ["Vectors", "Units"]) == {
        "Vectors": own,
        "Units": every,
    }
    assert params_for({"vectors": own}, ["Units"]) == {}


def test_quiz_targets_put_due_rechecks_first_and_keep_them_all() -> None:
    redeemed = answer_redemption(detected(), grade_answer(REDEMPTION, 2), T0, answer_id="a0")
    assert redeemed.recheck_due is not None
    fresh = detected("r2")
    due_at = redeemed.recheck_due
    assert quiz_targets([fresh], [redeemed], due_at, 1) == ["Vectors"]
    assert quiz_targets([fresh], [redeemed], due_at, 2) == ["Vectors", fresh.description]
    assert quiz_targets([fresh], [redeemed], T0, 2) == [fresh.description]
    assert quiz_targets([fresh], [redeemed, redeemed], due_at, 1) == ["Vectors", "Vectors"]
