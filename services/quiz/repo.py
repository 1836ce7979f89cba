"""The quiz service's SQL: stored questions, the answer log, the learner model's rows and
misconception records, all per user under row-level security. Reads for clients and for
the other services are the kit's read models (:mod:`exammentor.read_models.quiz`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from exammentor.contracts.quiz import LearnerFitResult, Question
from exammentor.db import Connection
from services.quiz.domain import (
    AnswerRecord,
    BKTParams,
    ConceptEstimate,
    LearnerState,
    LearnerUpdate,
    MisconceptionRecord,
    SkillRating,
    TopicEstimate,
    normalised,
)

RECENT_QUESTIONS = 50
"""Question texts of a topic the student saw last that a new quiz does not repeat."""


def concept_key(concept: str) -> str:
    """The key a concept is stored under: its normalised name."""
    return normalised(concept)


async def recent_question_texts(conn: Connection, topic: str) -> list[str]:
    """Texts of the questions of ``topic`` the user saw last, newest first."""
    rows = await conn.fetch(
        "SELECT question->>'text' AS text FROM quiz_questions WHERE lower(topic) = lower($1) "
        "ORDER BY created_at DESC LIMIT $2",
        topic,
        RECENT_QUESTIONS,
    )
    return [str(r["text"]) for r in rows]


async def insert_questions(
    conn: Connection,
    quiz_id: UUID,
    topic: str,
    questions: Sequence[Question],
    ratings: Sequence[SkillRating],
) -> None:
    """Stores questions with their answers (a question asked again keeps its rating).

    Args:
        conn: A connection in the user's transaction.
        quiz_id: The quiz they belong to.
        topic: Their topic.
        questions: The checked questions.
        ratings: Each question's starting item rating.
    """
    await conn.executemany(
        "INSERT INTO quiz_questions (user_id, id, quiz_id, topic, concept, question, "
        "item_rating) VALUES (app_user_id(), $1, $2, $3, $4, $5, $6) "
        "ON CONFLICT (user_id, id) DO UPDATE SET quiz_id = EXCLUDED.quiz_id, "
        "question = EXCLUDED.question, created_at = now()",
        [
            (q.id, quiz_id, topic, q.concept_tested, q.model_dump(mode="json"), r.rating)
            for q, r in zip(questions, ratings, strict=True)
        ],
    )


class StoredQuestion:
    """A stored question with its topic and item rating."""

    def __init__(self, row: Any) -> None:
        self.question = Question.model_validate(row["question"])
        self.topic: str = row["topic"]
        self.rating = SkillRating(rating=row["item_rating"], answers=row["item_answers"])


async def stored_question(conn: Connection, question_id: str) -> StoredQuestion | None:
    """One of the user's stored questions, or None (another user's is none)."""
    row = await conn.fetchrow(
        "SELECT question, topic, item_rating, item_answers FROM quiz_questions WHERE id = $1",
        question_id,
    )
    return StoredQuestion(row) if row is not None else None


async def last_answer(conn: Connection, question_id: str) -> tuple[Any, dt.datetime, str] | None:
    """The logged answer to a question (the latest): ``(answer, answered_at, answer_id)``."""
    row = await conn.fetchrow(
        "SELECT answer, answered_at, id FROM quiz_answers WHERE question_id = $1 "
        "ORDER BY answered_at DESC, id DESC LIMIT 1",
        question_id,
    )
    if row is None:
        return None
    logged = row["answer"]
    answer = logged.get("answer") if isinstance(logged, dict) else logged
    return answer, row["answered_at"], str(row["id"])


async def topic_log(conn: Connection, topic: str) -> list[AnswerRecord]:
    """The user's answer log of one topic, oldest first."""
    rows = await conn.fetch(
        "SELECT id, question_id, concept, topic, outcome, answered_at FROM quiz_answers "
        "WHERE lower(topic) = lower($1) ORDER BY answered_at, id",
        topic,
    )
    return [
        AnswerRecord(
            answer_id=str(r["id"]),
            question_id=r["question_id"],
            concept=r["concept"],
            topic=r["topic"],
            outcome=r["outcome"],
            answered_at=r["answered_at"],
        )
        for r in rows
    ]


class ConceptRow:
    """The stored state of one concept besides its mastery: Elo rating and review card."""

    def __init__(self, row: Any | None) -> None:
        self.p_mastery: float | None = row["p_mastery"] if row is not None else None
        self.skill = SkillRating(
            rating=row["skill_rating"] if row is not None else 0.0,
            answers=row["skill_answers"] if row is not None else 0,
        )
        self.review_card: dict[str, Any] | None = row["review_card"] if row is not None else None


async def concept_row(conn: Connection, concept: str) -> ConceptRow:
    """The stored state of one of the user's concepts (a fresh one when none)."""
    row = await conn.fetchrow(
        "SELECT p_mastery, skill_rating, skill_answers, review_card FROM learner_concepts "
        "WHERE concept_key = $1",
        concept_key(concept),
    )
    return ConceptRow(row)


async def topic_p_mastery(conn: Connection, topic: str) -> float | None:
    """The topic's mastery as a probability, or None before any answer."""
    value = await conn.fetchval(
        "SELECT score FROM learner_topics WHERE topic_key = $1 AND attempts > 0",
        normalised(topic),
    )
    return float(value) / 100 if value is not None else None


async def fitted_params(conn: Connection) -> dict[str, BKTParams]:
    """Fitted knowledge-tracing parameters by concept key (``*``: every concept)."""
    rows = await conn.fetch(
        "SELECT concept_key, prior, learn, slip, guess, forget FROM learner_params"
    )
    return {
        r["concept_key"]: BKTParams(
            prior=r["prior"], learn=r["learn"], slip=r["slip"], guess=r["guess"], forget=r["forget"]
        )
        for r in rows
    }


async def every_answer_outcome(conn: Connection) -> list[tuple[UUID, str, str]]:
    """Every student's answers as ``(user_id, concept, outcome)``, each student's in order.

    For the operator's refit (:mod:`services.quiz.fit`) on the owner's connection, in a
    transaction: row security is turned off, not bypassed, so a role that it binds fails
    (``asyncpg.InsufficientPrivilegeError``) instead of reading the rows of no user.
    """
    await conn.execute("SET LOCAL row_security = off")
    rows = await conn.fetch(
        "SELECT user_id, concept, outcome FROM quiz_answers ORDER BY user_id, answered_at, id"
    )
    return [(r["user_id"], r["concept"], r["outcome"]) for r in rows]


async def save_fitted_params(conn: Connection, fits: Mapping[str, LearnerFitResult]) -> None:
    """Stores refitted knowledge-tracing parameters by concept key (``*``: every concept)."""
    await conn.executemany(
        "INSERT INTO learner_params (concept_key, prior, learn, slip, guess, forget, answers, "
        "sequences, log_likelihood, fitted_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, "
        "now()) ON CONFLICT (concept_key) DO UPDATE SET prior = EXCLUDED.prior, "
        "learn = EXCLUDED.learn, slip = EXCLUDED.slip, guess = EXCLUDED.guess, "
        "forget = EXCLUDED.forget, answers = EXCLUDED.answers, "
        "sequences = EXCLUDED.sequences, log_likelihood = EXCLUDED.log_likelihood, "
        "fitted_at = EXCLUDED.fitted_at",
        [
            (
                key,
                f.prior,
                f.learn,
                f.slip,
                f.guess,
                f.forget,
                f.answers,
                f.sequences,
                f.log_likelihood,
            )
            for key, f in fits.items()
        ],
    )


async def insert_answer(
    conn: Connection,
    *,
    answer_id: UUID,
    question_id: str,
    request_id: UUID,
    topic: str,
    concept: str,
    answer: Any,
    outcome: str,
    at: dt.datetime,
) -> None:
    """Logs one graded answer."""
    await conn.execute(
        "INSERT INTO quiz_answers (id, user_id, question_id, request_id, topic, concept, "
        "answer, outcome, answered_at) VALUES ($1, app_user_id(), $2, $3, $4, $5, $6, $7, $8)",
        answer_id,
        question_id,
        request_id,
        topic,
        concept,
        {"answer": answer},
        outcome,
        at,
    )


async def rate_item(conn: Connection, question_id: str, rating: SkillRating) -> None:
    """Stores a question's calibrated rating."""
    await conn.execute(
        "UPDATE quiz_questions SET item_rating = $2, item_answers = $3 WHERE id = $1",
        question_id,
        rating.rating,
        rating.answers,
    )


async def upsert_concept(
    conn: Connection,
    estimate: ConceptEstimate,
    *,
    skill: SkillRating,
    review_card: dict[str, Any] | None,
    next_review: dt.datetime | None,
    at: dt.datetime,
) -> None:
    """Writes one concept's mastery with its evidence, rating and review card."""
    await conn.execute(
        "INSERT INTO learner_concepts (user_id, concept_key, concept, topic, p_mastery, status, "
        "attempts, correct, evidence, skill_rating, skill_answers, review_card, next_review, "
        "last_attempted, updated_at) VALUES (app_user_id(), $1, $2, $3, $4, $5, $6, $7, $8, "
        "$9, $10, $11, $12, $13, $13) ON CONFLICT (user_id, concept_key) DO UPDATE SET "
        "concept = EXCLUDED.concept, topic = EXCLUDED.topic, p_mastery = EXCLUDED.p_mastery, "
        "status = EXCLUDED.status, attempts = EXCLUDED.attempts, correct = EXCLUDED.correct, "
        "evidence = EXCLUDED.evidence, skill_rating = EXCLUDED.skill_rating, "
        "skill_answers = EXCLUDED.skill_answers, review_card = EXCLUDED.review_card, "
        "next_review = EXCLUDED.next_review, last_attempted = EXCLUDED.last_attempted, "
        "updated_at = EXCLUDED.updated_at",
        concept_key(estimate.concept),
        estimate.concept,
        estimate.topic,
        estimate.p_mastery,
        estimate.status,
        estimate.answered,
        estimate.correct,
        list(estimate.evidence),
        skill.rating,
        skill.answers,
        review_card,
        next_review,
        at,
    )


async def upsert_topic(conn: Connection, estimate: TopicEstimate, at: dt.datetime) -> None:
    """Writes one topic's mastery where sessions and the autopilot read it, and keeps the
    original's ``topics.mastery_score`` of the user's sessions in step."""
    attempts = sum(c.answered for c in estimate.concepts)
    await conn.execute(
        "INSERT INTO learner_topics (user_id, topic_key, topic, score, status, attempts, "
        "evidence, last_attempted, next_review, updated_at) VALUES (app_user_id(), $1, $2, "
        "$3, $4, $5, $6, $7, (SELECT min(next_review) FROM learner_concepts "
        "WHERE lower(topic) = lower($2)), $7) ON CONFLICT (user_id, topic_key) DO UPDATE SET "
        "topic = EXCLUDED.topic, score = EXCLUDED.score, status = EXCLUDED.status, "
        "attempts = EXCLUDED.attempts, evidence = EXCLUDED.evidence, "
        "last_attempted = EXCLUDED.last_attempted, next_review = EXCLUDED.next_review, "
        "updated_at = EXCLUDED.updated_at",
        normalised(estimate.topic),
        estimate.topic,
        estimate.score,
        estimate.status,
        attempts,
        list(estimate.evidence),
        at,
    )
    await conn.execute(
        "UPDATE topics SET mastery_score = $2, status = $3 WHERE lower(name) = lower($1)",
        estimate.topic,
        round(estimate.score),
        estimate.status,
    )


async def learner_state(conn: Connection, stored: StoredQuestion) -> LearnerState:
    """What the learner model holds before an answer to a stored question.

    Args:
        conn: A connection in the user's transaction.
        stored: The answered question.

    Returns:
        The topic's answer log, the concept's stored state, the question's rating, the
        fitted parameters and the concept's misconception records (with the record whose
        redemption question this is).
    """
    question = stored.question
    concept = await concept_row(conn, question.concept_tested)
    records = await misconception_records(conn, concept=question.concept_tested)
    redeemed_by = await misconception_of_redemption(conn, question.id)
    return LearnerState(
        log=await topic_log(conn, stored.topic),
        p_mastery=concept.p_mastery,
        skill=concept.skill,
        review_card=concept.review_card,
        item=stored.rating,
        params=await fitted_params(conn),
        misconceptions=[*records, *([redeemed_by] if redeemed_by is not None else [])],
    )


async def save_learner_update(
    conn: Connection, update: LearnerUpdate, *, request_id: UUID, answer: Any
) -> None:
    """Stores what one graded answer changed: the logged answer, the item's rating, the
    concept's and the topic's mastery, and the misconception records that moved.

    Args:
        conn: A connection in the user's transaction.
        update: The learner model's update (:func:`~services.quiz.domain.record_answer`).
        request_id: The request that answered.
        answer: The answer as the student gave it.
    """
    logged = update.answer
    await insert_answer(
        conn,
        answer_id=UUID(logged.answer_id),
        question_id=logged.question_id,
        request_id=request_id,
        topic=logged.topic,
        concept=logged.concept,
        answer=answer,
        outcome=logged.outcome,
        at=logged.answered_at,
    )
    await rate_item(conn, logged.question_id, update.item)
    await upsert_concept(
        conn,
        update.concept,
        skill=update.skill,
        review_card=update.review_card,
        next_review=update.next_review,
        at=logged.answered_at,
    )
    await upsert_topic(conn, update.topic, logged.answered_at)
    for record in update.misconceptions:
        await save_misconception(conn, record)


def _record(row: Any) -> MisconceptionRecord:
    return MisconceptionRecord.model_validate(row["record"])


async def misconception_records(
    conn: Connection, *, concept: str | None = None, state: str | None = None
) -> list[MisconceptionRecord]:
    """The user's misconception records, optionally of one concept or state."""
    rows = await conn.fetch(
        "SELECT record FROM misconception_records WHERE ($1::text IS NULL OR "
        "lower(concept) = lower($1)) AND ($2::text IS NULL OR state = $2) "
        "ORDER BY opened_at DESC, id",
        concept,
        state,
    )
    return [_record(r) for r in rows]


async def misconception_of_redemption(
    conn: Connection, question_id: str
) -> MisconceptionRecord | None:
    """The record whose redemption question this is, if any."""
    row = await conn.fetchrow(
        "SELECT record FROM misconception_records WHERE redemption_question_id = $1",
        question_id,
    )
    return _record(row) if row is not None else None


async def save_misconception(
    conn: Connection, record: MisconceptionRecord, diagnosis: dict[str, Any] | None = None
) -> None:
    """Inserts or updates a misconception record (the diagnosis is kept from its insert)."""
    await conn.execute(
        "INSERT INTO misconception_records (user_id, id, concept, topic, state, question_id, "
        "redemption_question_id, record, diagnosis, opened_at, recheck_due, updated_at) "
        "VALUES (app_user_id(), $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) "
        "ON CONFLICT (user_id, id) DO UPDATE SET state = EXCLUDED.state, "
        "record = EXCLUDED.record, opened_at = EXCLUDED.opened_at, "
        "recheck_due = EXCLUDED.recheck_due, updated_at = EXCLUDED.updated_at",
        record.id,
        record.concept,
        record.topic,
        record.state,
        record.question_id,
        record.redemption_question_id,
        record.model_dump(mode="json"),
        diagnosis or {},
        record.opened_at,
        record.recheck_due,
        record.updated_at,
    )


async def insert_original_misconception(
    conn: Connection, row_id: UUID, description: str, at: dt.datetime
) -> None:
    """The original's ``misconceptions`` row, kept for its clients and reports."""
    await conn.execute(
        "INSERT INTO misconceptions (id, user_id, description, detected_at) "
        "VALUES ($1, app_user_id(), $2, $3)",
        row_id,
        description,
        at,
    )


async def save_quiz(
    conn: Connection, quiz_id: UUID, topic_id: str, questions: Sequence[Question]
) -> dt.datetime:
    """Stores a saved quiz as the latest of its topic; returns when."""
    created: dt.datetime = await conn.fetchval(
        "INSERT INTO quizzes (id, user_id, topic_id, questions) "
        "VALUES ($1, app_user_id(), $2, $3) RETURNING created_at",
        quiz_id,
        topic_id,
        [q.model_dump(mode="json") for q in questions],
    )
    return created


ITEM_BANK_LIMIT = 500
"""Stored questions of a topic considered for reuse, newest first."""


async def item_bank(
    conn: Connection, topic: str, exclude_texts: Sequence[str]
) -> list[StoredQuestion]:
    """The user's stored text questions of ``topic`` that may be asked again: not among
    ``exclude_texts`` (seen recently) and not about an image (the image is not kept).

    Args:
        conn: A connection in the user's transaction.
        topic: The topic (case-insensitive).
        exclude_texts: Question texts not to reuse.

    Returns:
        The candidates with their item ratings.
    """
    rows = await conn.fetch(
        "SELECT question, topic, item_rating, item_answers FROM quiz_questions "
        "WHERE lower(topic) = lower($1) AND question->>'visual_reference' IS NULL "
        "AND NOT (question->>'text' = ANY($2::text[])) ORDER BY created_at DESC LIMIT $3",
        topic,
        list(exclude_texts),
        ITEM_BANK_LIMIT,
    )
    return [StoredQuestion(row) for row in rows]


async def topic_ability(conn: Connection, topic: str) -> SkillRating:
    """The user's Elo ability on a topic: its concepts' ratings weighted by their answers
    (a fresh rating before any answer)."""
    row = await conn.fetchrow(
        "SELECT sum(skill_rating * skill_answers) AS weighted, sum(skill_answers) AS answers "
        "FROM learner_concepts WHERE lower(topic) = lower($1)",
        topic,
    )
    answers = int(row["answers"] or 0) if row is not None else 0
    if row is None or not answers:
        return SkillRating()
    return SkillRating(rating=float(row["weighted"]) / answers, answers=answers)


class MaterialPage:
    """The text of one page of a student's stored material."""

    def __init__(self, material_id: UUID, page: int, text: str) -> None:
        self.material_id = material_id
        self.page = page
        self.text = text


async def material_pages(conn: Connection, material_ids: Sequence[UUID]) -> list[MaterialPage]:
    """The pages of the user's materials, in the order asked and page order.

    Read from the tutor's passages (the tutor writes them; the quiz only reads, under the
    user's row-level security, so another user's material is none).

    Args:
        conn: A connection in the user's transaction.
        material_ids: The materials.

    Returns:
        One entry per page of each material found (its passages joined).
    """
    rows = await conn.fetch(
        "SELECT material_id, page, string_agg(text, E'\\n' ORDER BY position) AS text "
        "FROM tutor_passages WHERE material_id = ANY($1::uuid[]) "
        "GROUP BY material_id, page ORDER BY array_position($1::uuid[], material_id), page",
        list(material_ids),
    )
    return [MaterialPage(r["material_id"], r["page"], r["text"]) for r in rows]
