"""Read models of the quiz's tables (the learner model, misconception records, saved quizzes
and the answer log). The quiz writes these tables (:mod:`services.quiz.repo`); this module
only reads them, for the gateway (mastery, misconceptions, the saved quiz) and for the
autopilot (:func:`learner_snapshot`, a read declared in
:mod:`exammentor.contracts.tables`).
"""

from __future__ import annotations

from collections.abc import Sequence

from exammentor.contracts.autopilot import LearnerSnapshot, topic_key
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


async def learner_snapshot(conn: Connection, topics: list[str]) -> LearnerSnapshot:
    """The learner model's view of ``topics`` for the transaction's user (the quiz writes it).

    Args:
        conn: A connection in the user's transaction.
        topics: Topic names as a plan spells them; matched case and spacing aside.

    Returns:
        Mastery (0..1), review due dates and open misconceptions (newest first) of the
        topics the learner model knows; the others are left out.
    """
    wanted = {topic_key(name): name for name in topics}
    snapshot = LearnerSnapshot()
    for row in await conn.fetch("SELECT topic, score, next_review FROM learner_topics"):
        name = wanted.get(topic_key(row["topic"]))
        if name is None:
            continue
        snapshot.mastery[name] = min(1.0, max(0.0, float(row["score"]) / 100))
        if row["next_review"] is not None:
            snapshot.reviews_due[name] = row["next_review"]
    rows = await conn.fetch(
        "SELECT topic, concept FROM misconception_records WHERE state = 'open' "
        "ORDER BY opened_at DESC, id"
    )
    for row in rows:
        name = wanted.get(topic_key(row["topic"]))
        if name is not None:
            snapshot.misconceptions.setdefault(name, []).append(row["concept"])
    return snapshot


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
