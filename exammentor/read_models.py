"""Read models: what the gateway reads of the tables the services write.

The gateway never imports a service; it reads stored plans (and, as they arrive, chats,
quizzes, runs) through these functions, which return the API's contract models. The SQL of
each read lives here, beside the shape it fills.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from uuid import UUID

from asyncpg import Record

from exammentor.contracts.api import MAX_PLAN_LIST_LIMIT, PlanSummary, StoredPlan
from exammentor.contracts.autopilot import (
    FINISHED_STATUSES,
    AutopilotStatusResponse,
    AutopilotStep,
    AutopilotWatchEvent,
    LearnerSnapshot,
    topic_key,
)
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
from exammentor.contracts.tutor import ChatHistory, ChatTurn, Material, MaterialList
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


# ---- autopilot --------------------------------------------------------------------------


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


def _elapsed_seconds(row: Record, now: dt.datetime) -> float:
    ms = int(row["elapsed_before_ms"])
    if row["running_since"] is not None:
        ms += max(0, (now - row["running_since"]) // dt.timedelta(milliseconds=1))
    return ms / 1000


async def autopilot_status(
    conn: Connection, session_id: UUID, now: dt.datetime
) -> AutopilotStatusResponse | None:
    """The status of a session's newest autopilot run at ``now`` (None: no run of the
    transaction's user). Study time is counted up to ``now`` while the run is running."""
    row = await conn.fetchrow(
        "SELECT run_number, view, elapsed_before_ms, running_since FROM autopilot_runs "
        "WHERE session_id = $1 ORDER BY run_number DESC LIMIT 1",
        session_id,
    )
    if row is None:
        return None
    steps = await conn.fetch(
        "SELECT step FROM autopilot_steps WHERE session_id = $1 AND run_number = $2 "
        "ORDER BY number",
        session_id,
        row["run_number"],
    )
    return AutopilotStatusResponse.model_validate(
        {
            **row["view"],
            "elapsed_seconds": _elapsed_seconds(row, now),
            "steps": [s["step"] for s in steps],
        }
    )


async def autopilot_watch(
    conn: Connection, session_id: UUID, run_number: int | None, after_seq: int
) -> tuple[int, list[AutopilotWatchEvent], bool] | None:
    """The watch stream's events of a run after ``after_seq``.

    Args:
        conn: A connection in the user's transaction.
        session_id: The study session.
        run_number: The run to follow; None for the newest.
        after_seq: The last ``seq`` the client saw.

    Returns:
        ``(run_number, events, finished)`` (the newest event carries the run's present
        lesson text and waiting question), or None when there is no such run.
    """
    row = await conn.fetchrow(
        "SELECT run_number, view, steps_count FROM autopilot_runs WHERE session_id = $1 "
        "AND ($2::int IS NULL OR run_number = $2) ORDER BY run_number DESC LIMIT 1",
        session_id,
        run_number,
    )
    if row is None:
        return None
    view = AutopilotStatusResponse.model_validate(
        {**row["view"], "elapsed_seconds": 0, "steps": []}
    )
    steps = await conn.fetch(
        "SELECT step FROM autopilot_steps WHERE session_id = $1 AND run_number = $2 "
        "AND number > $3 ORDER BY number",
        session_id,
        row["run_number"],
        after_seq,
    )
    events: list[AutopilotWatchEvent] = []
    for found in steps:
        step = AutopilotStep.model_validate(found["step"])
        present = step.number == row["steps_count"]
        events.append(
            AutopilotWatchEvent(
                seq=step.number,
                session_id=session_id,
                run_number=row["run_number"],
                step=step,
                status=step.status,
                current_phase=step.phase,
                current_topic=view.current_topic if present else None,
                awaiting_input=present and view.awaiting_input,
                current_content=view.current_content if present else None,
                current_question=view.current_question if present else None,
            )
        )
    finished = view.status in FINISHED_STATUSES and (
        not steps or events[-1].seq == row["steps_count"]
    )
    return row["run_number"], events, finished


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


async def tutor_chat(conn: Connection, topic_id: str) -> ChatHistory:
    """``GET /api/tutor/chat``: the user's chat of one topic; none is
    ``{messages: [], explanation: null}``, as in the original.

    Args:
        conn: A connection in the user's transaction.
        topic_id: The topic's slug.

    Returns:
        The chat (an ``explanation`` stored as JSON by the original comes back as JSON text).
    """
    row = await conn.fetchrow(
        "SELECT messages, explanation FROM tutor_chats WHERE topic_id = $1", topic_id
    )
    if row is None:
        return ChatHistory()
    turns = [
        ChatTurn(
            role="ai" if m.get("role") in ("ai", "assistant") else "user",
            content=str(m.get("content", "")),
        )
        for m in row["messages"] or []
    ]
    explanation = row["explanation"]
    if explanation is not None and not isinstance(explanation, str):
        explanation = json.dumps(explanation)
    return ChatHistory(messages=turns, explanation=explanation)


async def tutor_materials(conn: Connection) -> MaterialList:
    """``GET /api/materials``: the user's study material, newest first, without its text.

    Args:
        conn: A connection in the user's transaction.

    Returns:
        The list.
    """
    rows = await conn.fetch(
        "SELECT m.id, m.title, m.kind, m.page_count AS pages, m.chars, m.created_at, "
        "(SELECT count(*) FROM tutor_passages p WHERE p.material_id = m.id) AS passages "
        "FROM tutor_materials m ORDER BY m.created_at DESC, m.id"
    )
    return MaterialList(
        materials=[
            Material.model_validate({**dict(r), "created_at": r["created_at"].isoformat()})
            for r in rows
        ]
    )
