"""Mastery per concept and per topic, and the performance analysis, from the answer log.

- A concept's mastery is its knowledge-tracing estimate after the student's answers on it,
  in time order (:func:`concept_mastery`); every estimate lists the answers behind it.
- A topic's score is the mean mastery of its concepts that have answers, x 100; its status
  follows from that mean (:func:`topic_mastery`). A topic or concept without answers is
  ``pending``.
- The performance analysis grades every answer again from the stored question (a client's
  ``is_correct`` plays no part), then computes the score, the statuses, the misconceptions
  and the recommendations (:func:`analyse_answers`); a model may only write the prose
  around those figures (:func:`performance_analysis`).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from exammentor.contracts.quiz import (
    AnswerOutcome,
    MasteryStatus,
    MisconceptionNote,
    PerformanceAnalysis,
    Question,
    Recommendation,
    TopicMastery,
)
from services.quiz.domain.grading import Grade, StudentAnswer, grade_answer
from services.quiz.domain.knowledge_tracing import DEFAULT_BKT_PARAMS, BKTParams, update_mastery
from services.quiz.domain.text import normalised


@dataclass(frozen=True)
class MasteryPolicy:
    """Status thresholds and the study time recommended per status.

    Attributes:
        mastered_from: Mastery from which a concept or topic counts as mastered.
        learning_from: Mastery from which it counts as learning (below: weak).
        review_minutes: Minutes recommended for a weak and for a learning topic.
    """

    mastered_from: float = 0.85
    learning_from: float = 0.5
    review_minutes: tuple[tuple[MasteryStatus, int], ...] = (("weak", 30), ("learning", 15))


DEFAULT_MASTERY_POLICY = MasteryPolicy()


class AnswerRecord(BaseModel):
    """One graded answer in the log: what the learner model reads."""

    model_config = ConfigDict(frozen=True)

    answer_id: str
    question_id: str
    concept: str
    topic: str
    outcome: AnswerOutcome
    answered_at: dt.datetime

    @property
    def observation(self) -> bool | None:
        """Right, wrong, or no evidence (skipped)."""
        return None if self.outcome == "skipped" else self.outcome == "correct"


class ConceptEstimate(BaseModel):
    """A concept's mastery and the answers behind it."""

    model_config = ConfigDict(frozen=True)

    concept: str
    topic: str
    p_mastery: float = Field(ge=0, le=1)
    status: MasteryStatus
    answered: int
    correct: int
    evidence: tuple[str, ...]
    """Ids of the answers that moved the estimate, oldest first (skips are not evidence)."""


class TopicEstimate(BaseModel):
    """A topic's mastery derived from its concepts."""

    model_config = ConfigDict(frozen=True)

    topic: str
    score: float = Field(ge=0, le=100)
    status: MasteryStatus
    concepts: tuple[ConceptEstimate, ...]
    evidence: tuple[str, ...]

    @property
    def weakest(self) -> ConceptEstimate | None:
        """The concept with the lowest mastery among those with answers."""
        tried = [c for c in self.concepts if c.answered]
        return min(tried, key=lambda c: (c.p_mastery, c.concept)) if tried else None

    @property
    def strongest(self) -> ConceptEstimate | None:
        """The concept with the highest mastery among those with answers."""
        tried = [c for c in self.concepts if c.answered]
        return max(tried, key=lambda c: (c.p_mastery, c.concept)) if tried else None


def mastery_status(
    p_mastery: float, answered: int, policy: MasteryPolicy = DEFAULT_MASTERY_POLICY
) -> MasteryStatus:
    """The status a mastery estimate earns.

    Args:
        p_mastery: P(knows it).
        answered: Answers behind the estimate (skips not counted).
        policy: The thresholds.

    Returns:
        ``pending`` without answers, else mastered, learning or weak.
    """
    if answered == 0:
        return "pending"
    if p_mastery >= policy.mastered_from:
        return "mastered"
    if p_mastery >= policy.learning_from:
        return "learning"
    return "weak"


def _key(concept: str) -> str:
    return normalised(concept)


def concept_mastery(
    log: Sequence[AnswerRecord],
    params: Mapping[str, BKTParams] | None = None,
    policy: MasteryPolicy = DEFAULT_MASTERY_POLICY,
) -> list[ConceptEstimate]:
    """Mastery of every concept in a student's answer log.

    Args:
        log: The student's answers, any order (sorted here by time, then id).
        params: Fitted parameters by concept (looked up by normalised name); concepts
            without a fit use the defaults.
        policy: The status thresholds.

    Returns:
        One estimate per concept, sorted by topic then concept.
    """
    fitted = {_key(name): value for name, value in (params or {}).items()}
    by_concept: dict[str, list[AnswerRecord]] = defaultdict(list)
    for record in sorted(log, key=lambda r: (r.answered_at, r.answer_id)):
        by_concept[_key(record.concept)].append(record)
    estimates: list[ConceptEstimate] = []
    for key, records in by_concept.items():
        chosen = fitted.get(key, DEFAULT_BKT_PARAMS)
        p = chosen.prior
        evidence: list[str] = []
        for record in records:
            if record.observation is not None:
                p = update_mastery(p, record.observation, chosen)
                evidence.append(record.answer_id)
        correct = sum(1 for r in records if r.outcome == "correct")
        estimates.append(
            ConceptEstimate(
                concept=records[0].concept,
                topic=records[-1].topic,
                p_mastery=p,
                status=mastery_status(p, len(evidence), policy),
                answered=len(evidence),
                correct=correct,
                evidence=tuple(evidence),
            )
        )
    return sorted(estimates, key=lambda e: (normalised(e.topic), _key(e.concept)))


def topic_mastery(
    concepts: Sequence[ConceptEstimate], policy: MasteryPolicy = DEFAULT_MASTERY_POLICY
) -> list[TopicEstimate]:
    """Mastery of every topic from its concepts' estimates.

    Args:
        concepts: Concept estimates (from :func:`concept_mastery`).
        policy: The status thresholds.

    Returns:
        One estimate per topic, sorted by name; the score is the mean mastery of the
        concepts with answers x 100 (one decimal), 0 for a pending topic.
    """
    by_topic: dict[str, list[ConceptEstimate]] = defaultdict(list)
    for estimate in concepts:
        by_topic[normalised(estimate.topic)].append(estimate)
    topics: list[TopicEstimate] = []
    for members in by_topic.values():
        tried = [c for c in members if c.answered]
        mean = sum(c.p_mastery for c in tried) / len(tried) if tried else 0.0
        answered = sum(c.answered for c in members)
        topics.append(
            TopicEstimate(
                topic=members[0].topic,
                score=round(mean * 100, 1),
                status=mastery_status(mean, answered, policy),
                concepts=tuple(members),
                evidence=tuple(a for c in members for a in c.evidence),
            )
        )
    return sorted(topics, key=lambda t: normalised(t.topic))


# --- Performance analysis ----------------------------------------------------------------


class AnsweredQuestion(BaseModel):
    """An answer as logged: the stored question and what the student gave."""

    model_config = ConfigDict(frozen=True)

    answer_id: str
    question: Question
    answer: StudentAnswer
    answered_at: dt.datetime
    topic: str


class WrongAnswer(BaseModel):
    """A wrong answer the analysis reports as a misconception."""

    model_config = ConfigDict(frozen=True)

    answer_id: str
    concept: str
    question_text: str
    chosen: str
    correct: str
    explanation: str


class PerformanceFigures(BaseModel):
    """Everything computed about a set of answers; the prose is written around it."""

    model_config = ConfigDict(frozen=True)

    answered: int
    correct: int
    skipped: int
    overall_score: float = Field(ge=0, le=100)
    """Right answers / questions x 100, one decimal; a skip counts as not right."""
    grades: tuple[Grade, ...]
    concepts: tuple[ConceptEstimate, ...]
    topics: tuple[TopicEstimate, ...]
    wrong_answers: tuple[WrongAnswer, ...]


def analyse_answers(
    answers: Sequence[AnsweredQuestion],
    *,
    params: Mapping[str, BKTParams] | None = None,
    policy: MasteryPolicy = DEFAULT_MASTERY_POLICY,
) -> PerformanceFigures:
    """Grade every answer again and compute the analysis's figures.

    Args:
        answers: The answers with their stored questions.
        params: Fitted knowledge-tracing parameters by concept.
        policy: The status thresholds.

    Returns:
        The figures.

    Raises:
        AnswerOutOfRangeError: A logged answer the question cannot have had.
        AnswerKindError: Likewise.
    """
    grades = [grade_answer(a.question, a.answer) for a in answers]
    log = [
        AnswerRecord(
            answer_id=a.answer_id,
            question_id=a.question.id,
            concept=a.question.concept_tested,
            topic=a.topic,
            outcome=g.outcome,
            answered_at=a.answered_at,
        )
        for a, g in zip(answers, grades, strict=True)
    ]
    concepts = concept_mastery(log, params, policy)
    correct = sum(1 for g in grades if g.is_correct)
    wrong = [
        WrongAnswer(
            answer_id=a.answer_id,
            concept=a.question.concept_tested,
            question_text=a.question.text,
            chosen=g.chosen_text,
            correct=g.correct_answer,
            explanation=a.question.explanation,
        )
        for a, g in zip(answers, grades, strict=True)
        if g.outcome == "wrong"
    ]
    return PerformanceFigures(
        answered=len(grades),
        correct=correct,
        skipped=sum(1 for g in grades if g.outcome == "skipped"),
        overall_score=round(100 * correct / len(grades), 1) if grades else 0.0,
        grades=tuple(grades),
        concepts=tuple(concepts),
        topics=tuple(topic_mastery(concepts, policy)),
        wrong_answers=tuple(wrong),
    )


def _recommendations(
    topics: Sequence[TopicEstimate], policy: MasteryPolicy
) -> list[Recommendation]:
    minutes = dict(policy.review_minutes)
    pending = [t for t in topics if t.status in minutes]
    ranked = sorted(pending, key=lambda t: (t.score, normalised(t.topic)))
    result: list[Recommendation] = []
    for priority, topic in enumerate(ranked, start=1):
        weakest = topic.weakest
        focus = weakest.concept if weakest is not None else topic.topic
        result.append(
            Recommendation(
                priority=priority,
                topic=topic.topic,
                action=f"Review {focus} and answer a few more questions on it",
                time_estimate=f"{minutes[topic.status]} minutes",
            )
        )
    return result


def performance_analysis(
    figures: PerformanceFigures,
    *,
    summary: str | None = None,
    encouragement: str | None = None,
    policy: MasteryPolicy = DEFAULT_MASTERY_POLICY,
) -> PerformanceAnalysis:
    """The original's ``PerformanceAnalysis`` from computed figures and optional prose.

    Args:
        figures: From :func:`analyse_answers`.
        summary: A model's summary, already screened; plain text of our own otherwise.
        encouragement: Likewise.
        policy: Study times per status.

    Returns:
        The analysis; every number in it comes from ``figures``.
    """
    own_summary = (
        f"{figures.correct} of {figures.answered} answers right "
        f"({figures.overall_score:g}%)"
        + (f", {figures.skipped} skipped" if figures.skipped else "")
        + "."
    )
    topic_rows: list[TopicMastery] = []
    for topic in figures.topics:
        strongest, weakest = topic.strongest, topic.weakest
        topic_rows.append(
            TopicMastery(
                topic=topic.topic,
                score=topic.score,
                status=topic.status,
                strength=strongest.concept
                if strongest is not None and strongest.p_mastery >= policy.learning_from
                else "",
                weakness=weakest.concept
                if weakest is not None and weakest.p_mastery < policy.mastered_from
                else "",
                evidence=list(topic.evidence),
            )
        )
    notes = [
        MisconceptionNote(
            concept=wrong.concept,
            description=f"Chose {wrong.chosen!r} for: {wrong.question_text}",
            correction=f"The answer is {wrong.correct!r}. {wrong.explanation}",
            suggested_review=wrong.concept,
        )
        for wrong in figures.wrong_answers
    ]
    return PerformanceAnalysis(
        overall_score=figures.overall_score,
        summary=summary or own_summary,
        topic_mastery=topic_rows,
        misconceptions=notes,
        recommendations=_recommendations(figures.topics, policy),
        encouragement=encouragement or "Every answer tells us what to practise next.",
        answered=figures.answered,
        correct=figures.correct,
        skipped=figures.skipped,
    )
