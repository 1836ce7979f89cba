"""The learner model's update for one graded answer: knowledge tracing, item calibration,
review scheduling and the misconception lifecycle moved together.

:func:`record_answer` is what ``quiz.grade`` does to the learner model once the answer is
graded: it appends the answer to the topic's log and recomputes the concept's and the
topic's mastery from the whole log (BKT with the fitted parameters), moves the student's and
the item's Elo ratings, reviews the concept's FSRS card, and moves the concept's
misconception records. It returns everything the handler stores and announces, and reads
nothing but its arguments (no I/O, no clock: ``at`` is given).

Rules kept here:

- a skipped answer (``observation`` None) is logged but is no evidence: the review card is
  not reviewed, and a concept without a card gets no review date;
- every record that a transition refuses (a re-check before it is due, say) is left as it is;
- the records are those of the answered concept, plus the record whose redemption question
  this is (counted once).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from exammentor.contracts.quiz import Question
from services.quiz.domain.calibration import SkillRating, update_ratings
from services.quiz.domain.errors import TransitionRefusedError
from services.quiz.domain.grading import Grade
from services.quiz.domain.knowledge_tracing import BKTParams
from services.quiz.domain.mastery import (
    AnswerRecord,
    ConceptEstimate,
    TopicEstimate,
    concept_mastery,
    topic_mastery,
)
from services.quiz.domain.misconceptions import (
    MisconceptionRecord,
    answer_recheck,
    answer_redemption,
    reopen_misconception,
)
from services.quiz.domain.review import (
    card_from_record,
    card_to_record,
    new_review_card,
    record_review,
    review_key,
)
from services.quiz.domain.text import normalised

ALL_CONCEPTS = "*"
"""The key of fitted parameters that hold for every concept without a fit of its own."""


def params_for(params: Mapping[str, BKTParams], concepts: Iterable[str]) -> dict[str, BKTParams]:
    """The fitted knowledge-tracing parameters of each concept that has some.

    Args:
        params: Fitted parameters by normalised concept name (:data:`ALL_CONCEPTS`: every
            concept).
        concepts: Concept names as answers spell them.

    Returns:
        Parameters by concept name as given; a concept with no fit (and no fit for all) is
        left out, so it uses the defaults.
    """
    chosen: dict[str, BKTParams] = {}
    for concept in concepts:
        found = params.get(normalised(concept), params.get(ALL_CONCEPTS))
        if found is not None:
            chosen[concept] = found
    return chosen


@dataclass(frozen=True)
class LearnerState:
    """What the learner model holds before an answer, as the handler read it.

    Attributes:
        log: The student's answer log of the question's topic.
        p_mastery: The concept's stored mastery (None before any answer).
        skill: The student's Elo rating on the concept.
        review_card: The concept's stored FSRS card (None: none yet).
        item: The question's Elo rating.
        params: Fitted parameters by normalised concept name.
        misconceptions: The concept's records and the record whose redemption question
            this is (duplicates are counted once).
    """

    log: Sequence[AnswerRecord]
    p_mastery: float | None
    skill: SkillRating
    review_card: dict[str, Any] | None
    item: SkillRating
    params: Mapping[str, BKTParams]
    misconceptions: Sequence[MisconceptionRecord]


@dataclass(frozen=True)
class LearnerUpdate:
    """What one graded answer changes in the learner model.

    Attributes:
        answer: The answer as logged.
        concept: The answered concept's new estimate.
        topic: The question's topic's new estimate.
        p_mastery_before: The concept's mastery before the answer.
        skill: The student's new rating on the concept.
        item: The question's new rating.
        review_card: The concept's card to store (None: none to store).
        next_review: When the concept is due for review (None: not scheduled).
        misconceptions: The records that moved (changed ones only).
    """

    answer: AnswerRecord
    concept: ConceptEstimate
    topic: TopicEstimate
    p_mastery_before: float | None
    skill: SkillRating
    item: SkillRating
    review_card: dict[str, Any] | None
    next_review: dt.datetime | None
    misconceptions: tuple[MisconceptionRecord, ...]

    @property
    def is_evidence(self) -> bool:
        """Whether the answer moved mastery (a skip does not)."""
        return self.answer.outcome != "skipped"

    @property
    def resolved(self) -> tuple[MisconceptionRecord, ...]:
        """The records this answer resolved."""
        return tuple(r for r in self.misconceptions if r.state == "resolved")


def moved_misconceptions(
    records: Sequence[MisconceptionRecord],
    question_id: str,
    grade: Grade,
    at: dt.datetime,
    answer_id: str,
) -> tuple[MisconceptionRecord, ...]:
    """The records that move with an answer, each after its move (changed ones only).

    Args:
        records: The concept's records (and the one this question redeems).
        question_id: The answered question.
        grade: Its grade.
        at: When it was answered.
        answer_id: The logged answer's id, kept in each record's history.

    Returns:
        The redemption answered, a due re-check answered, and every redeemed or resolved
        record a wrong answer reopens; a skip moves nothing.
    """
    if grade.observation is None:
        return ()
    changed: list[MisconceptionRecord] = []
    seen: set[str] = set()
    for record in records:
        if record.id in seen:
            continue
        seen.add(record.id)
        try:
            if record.state == "open" and record.redemption_question_id == question_id:
                changed.append(answer_redemption(record, grade, at, answer_id=answer_id))
            elif record.state == "redeemed" and record.recheck_due is not None:
                if at >= record.recheck_due:
                    changed.append(answer_recheck(record, grade, at, answer_id=answer_id))
                elif not grade.observation:
                    changed.append(reopen_misconception(record, at, answer_id=answer_id))
            elif record.state == "resolved" and not grade.observation:
                changed.append(reopen_misconception(record, at, answer_id=answer_id))
        except TransitionRefusedError:
            continue
    return tuple(changed)


def record_answer(
    *,
    student_id: str,
    question: Question,
    topic: str,
    grade: Grade,
    state: LearnerState,
    answer_id: str,
    at: dt.datetime,
) -> LearnerUpdate:
    """The learner model after one graded answer to a stored question.

    Args:
        student_id: The student (it keys a new review card).
        question: The answered question.
        topic: The question's topic.
        grade: The answer's grade.
        state: The learner model before the answer.
        answer_id: The id the answer is logged under.
        at: When it was answered.

    Returns:
        The logged answer, the concept's and the topic's estimates, both ratings, the review
        card with its due date, and the misconception records that moved.
    """
    concept = question.concept_tested
    answer = AnswerRecord(
        answer_id=answer_id,
        question_id=question.id,
        concept=concept,
        topic=topic,
        outcome=grade.outcome,
        answered_at=at,
    )
    log = [*state.log, answer]
    concepts = concept_mastery(log, params_for(state.params, {r.concept for r in log}))
    estimate = next(c for c in concepts if normalised(c.concept) == normalised(concept))
    topic_estimate = next(
        t for t in topic_mastery(concepts) if normalised(t.topic) == normalised(topic)
    )
    skill, item = update_ratings(state.skill, state.item, grade)
    card = (
        card_from_record(state.review_card)
        if state.review_card is not None
        else new_review_card(review_key(student_id, concept), at)
    )
    if grade.observation is not None:
        card = record_review(card, grade, at)
    scheduled = grade.observation is not None or bool(state.review_card)
    return LearnerUpdate(
        answer=answer,
        concept=estimate,
        topic=topic_estimate,
        p_mastery_before=state.p_mastery,
        skill=skill,
        item=item,
        review_card=card_to_record(card) if scheduled else None,
        next_review=card.due if scheduled else None,
        misconceptions=moved_misconceptions(
            state.misconceptions, question.id, grade, at, answer_id
        ),
    )
