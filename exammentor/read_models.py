"""Read models: what the gateway reads of the tables the services write.

The gateway never imports a service; it reads stored plans (and, as they arrive, chats,
quizzes, runs) through these functions, which return the API's contract models. The SQL of
each read lives here, beside the shape it fills.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from exammentor.contracts.api import MAX_PLAN_LIST_LIMIT, PlanSummary, StoredPlan
from exammentor.contracts.quiz import (
    ConceptMasteryView,
    LearnerMastery,
    MisconceptionRecordView,
    MisconceptionState,
    Question,
    SavedQuestion,
    SavedQuizView,
    TopicMastery,
    TopicMasteryState,
)
from exammentor.db import Connection


async def stored_plan(conn: Connection, plan_id: UUID) -> StoredPlan | None:
    """One stored plan of the transaction's user (another user's is simply not found).

    Args:
        conn: A connection in the user's transaction.
        plan_id: The plan.

    Returns:
        The plan, or None.
    """
    row = await conn.fetchrow(
        "SELECT id AS plan_id, session_id, request_id, created_at, from_cache, plan, "
        "verification, history FROM study_plans WHERE id = $1",
        plan_id,
    )
    return StoredPlan.model_validate(dict(row)) if row is not None else None


async def plan_summaries(
    conn: Connection, *, session_id: UUID | None = None, limit: int = 20
) -> list[PlanSummary]:
    """The transaction's user's plans, newest first.

    Args:
        conn: A connection in the user's transaction.
        session_id: Only the plans of this study session.
        limit: Most plans returned (clamped to 1 .. :data:`MAX_PLAN_LIST_LIMIT`).

    Returns:
        The summaries.
    """
    rows = await conn.fetch(
        "SELECT id AS plan_id, session_id, request_id, created_at, from_cache, "
        "plan->>'exam_name' AS exam_name, (plan->>'total_days')::int AS total_days, "
        "(verification->>'coverage_percent')::float8 AS coverage_percent, "
        "(verification->>'is_valid')::boolean AS is_valid "
        "FROM study_plans WHERE ($1::uuid IS NULL OR session_id = $1) "
        "ORDER BY created_at DESC, id LIMIT $2",
        session_id,
        min(max(limit, 1), MAX_PLAN_LIST_LIMIT),
    )
    return [PlanSummary.model_validate(dict(row)) for row in rows]


# --- Quiz and learner model (written by the quiz service) --------------------------------


async def topic_mastery(conn: Connection, topics: Sequence[str]) -> list[TopicMasteryState]:
    """The learner model's mastery of the given topics for the transaction's user.

    A topic without answers is ``pending`` with score 0. The autopilot ranks topics by it.

    Args:
        conn: A connection in the user's transaction.
        topics: Topic names (matched without regard to case).

    Returns:
        One state per topic, in the order given.
    """
    rows = await conn.fetch(
        "SELECT lower(t.topic) AS key, t.topic, t.score, t.status, t.attempts, "
        "t.last_attempted, t.next_review, (SELECT count(*) FROM misconception_records m "
        "WHERE lower(m.topic) = lower(t.topic) AND m.state = 'open') AS open_misconceptions "
        "FROM learner_topics t WHERE lower(t.topic) = ANY($1::text[])",
        [t.lower() for t in topics],
    )
    found = {r["key"]: r for r in rows}
    states: list[TopicMasteryState] = []
    for topic in topics:
        row = found.get(topic.lower())
        if row is None:
            states.append(
                TopicMasteryState(
                    topic=topic, score=0, status="pending", attempts=0, open_misconceptions=0
                )
            )
            continue
        states.append(TopicMasteryState.model_validate({**dict(row), "topic": row["topic"]}))
    return states


async def learner_mastery(conn: Connection) -> LearnerMastery:
    """``GET /api/learner/mastery``: every concept and topic of the user, with evidence."""
    concepts = await conn.fetch(
        "SELECT concept, topic, p_mastery, status, evidence, next_review FROM learner_concepts "
        "ORDER BY lower(topic), concept_key"
    )
    topics = await conn.fetch(
        "SELECT topic, score, status, evidence FROM learner_topics ORDER BY topic_key"
    )
    return LearnerMastery(
        concepts=[ConceptMasteryView.model_validate(dict(r)) for r in concepts],
        topics=[TopicMastery.model_validate(dict(r)) for r in topics],
    )


async def misconception_views(
    conn: Connection, state: MisconceptionState | None = None
) -> list[MisconceptionRecordView]:
    """``GET /api/learner/misconceptions``: the user's records, newest opened first."""
    rows = await conn.fetch(
        "SELECT record FROM misconception_records WHERE ($1::text IS NULL OR state = $1) "
        "ORDER BY opened_at DESC, id",
        state,
    )
    return [
        MisconceptionRecordView.model_validate(
            {**r["record"], "description": r["record"].get("description", "")}
        )
        for r in rows
    ]


async def saved_quiz(conn: Connection, topic_id: str) -> SavedQuizView:
    """``GET /api/quiz/persistence``: the latest saved quiz of a topic; an answer is shown
    only for a question the user has answered."""
    row = await conn.fetchrow(
        "SELECT questions, created_at FROM quizzes WHERE topic_id = $1 "
        "ORDER BY created_at DESC LIMIT 1",
        topic_id,
    )
    user_id = await conn.fetchval("SELECT app_user_id()::text")
    if row is None:
        return SavedQuizView(user_id=user_id or "", topic_id=topic_id)
    questions = [Question.model_validate(q) for q in row["questions"]]
    answered = {
        r["question_id"]
        for r in await conn.fetch(
            "SELECT DISTINCT question_id FROM quiz_answers WHERE question_id = ANY($1::text[])",
            [q.id for q in questions],
        )
    }
    shown = [
        SavedQuestion(**q.model_dump(), answered=True)
        if q.id in answered
        else SavedQuestion(**q.student_view().model_dump())
        for q in questions
    ]
    return SavedQuizView(
        user_id=user_id or "", topic_id=topic_id, questions=shown, created_at=row["created_at"]
    )
