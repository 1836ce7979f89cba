"""Study sessions in Postgres: start, read, save with a checked phase move, and the audit log.

The audit log is the session row's ``agent_history`` array (the original's column), appended
by a single ``UPDATE`` that computes the entry's number from the array itself: concurrent
appends queue on the row lock and each lands, none overwrites another (no read-modify-write
in the application). A phase move reads the phase ``FOR UPDATE`` in the same transaction, so
two saves cannot both move from the same phase.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from exammentor.contracts.commands import SESSION_NOT_FOUND
from exammentor.contracts.sessions import (
    MAX_LIST_LIMIT,
    Phase,
    Session,
    SessionHistoryEntry,
    SessionState,
    transition_action,
)
from exammentor.db import Connection
from exammentor.messaging.handling import CommandRejected


async def start_session(conn: Connection, user_id: UUID, exam_type: str) -> UUID:
    """A new session in ``INTAKE`` for the transaction's user."""
    session_id = uuid4()
    await conn.execute(
        "INSERT INTO study_sessions (id, user_id, exam_type) VALUES ($1, $2, $3)",
        session_id,
        user_id,
        exam_type,
    )
    await append_history(
        conn,
        session_id,
        "start",
        from_phase="INTAKE",
        to_phase="INTAKE",
        data={"exam_type": exam_type},
    )
    return session_id


async def session_exists(conn: Connection, session_id: UUID) -> bool:
    """Whether the transaction's user has this session (row-level security hides others')."""
    return await conn.fetchval("SELECT 1 FROM study_sessions WHERE id = $1", session_id) is not None


async def require_session(
    conn: Connection, session_id: UUID | None, details: dict[str, Any] | None = None
) -> None:
    """A worker's check of a command's study session: once per command, in its first
    transaction (a command without a session passes).

    Raises:
        CommandRejected: ``session_not_found``, the user has no such session.
    """
    if session_id is not None and not await session_exists(conn, session_id):
        raise CommandRejected(
            SESSION_NOT_FOUND.code, f"session_id: no study session {session_id}", details
        )


async def session_state(conn: Connection, session_id: UUID) -> SessionState | None:
    """A session's phase and context, or None when the user has no such session."""
    row = await conn.fetchrow(
        "SELECT current_state, current_context FROM study_sessions WHERE id = $1", session_id
    )
    if row is None:
        return None
    return SessionState(phase=row["current_state"], context=row["current_context"])


async def save_session(
    conn: Connection, session_id: UUID, context: dict[str, Any], phase: Phase | None
) -> Phase | None:
    """Stores the context and moves to ``phase`` when the state machine allows it.

    Returns:
        The session's phase after the save; None when the user has no such session.

    Raises:
        InvalidTransition: The move is not allowed (nothing is stored).
    """
    current = await conn.fetchval(
        "SELECT current_state FROM study_sessions WHERE id = $1 FOR UPDATE", session_id
    )
    if current is None:
        return None
    wanted: Phase = phase or current
    action = transition_action(current, wanted)
    await conn.execute(
        "UPDATE study_sessions SET current_state = $2, current_context = $3, updated_at = now() "
        "WHERE id = $1",
        session_id,
        wanted,
        context,
    )
    await append_history(conn, session_id, action, from_phase=current, to_phase=wanted)
    return wanted


async def append_history(
    conn: Connection,
    session_id: UUID,
    action: str,
    *,
    from_phase: Phase,
    to_phase: Phase,
    data: dict[str, Any] | None = None,
) -> int | None:
    """Appends one entry to the session's audit log in one statement.

    Returns:
        The entry's number, or None when the user has no such session.
    """
    entry = {
        "action": action,
        "from_phase": from_phase,
        "to_phase": to_phase,
        "data": data or {},
    }
    seq: int | None = await conn.fetchval(
        "UPDATE study_sessions SET agent_history = agent_history || jsonb_build_array("
        "$2::jsonb || jsonb_build_object('seq', jsonb_array_length(agent_history) + 1, "
        "'at', to_jsonb(clock_timestamp()))) "
        "WHERE id = $1 RETURNING jsonb_array_length(agent_history)",
        session_id,
        entry,
    )
    return seq


async def append_note(
    conn: Connection, session_id: UUID, action: str, data: dict[str, Any] | None = None
) -> int | None:
    """Appends one entry that moves no phase, in one statement: its ``from_phase`` and
    ``to_phase`` are the session's phase as the statement finds it (no read before it).

    Returns:
        The entry's number, or None when the user has no such session.
    """
    seq: int | None = await conn.fetchval(
        "UPDATE study_sessions SET agent_history = agent_history || jsonb_build_array("
        "$2::jsonb || jsonb_build_object('from_phase', current_state, 'to_phase', "
        "current_state, 'seq', jsonb_array_length(agent_history) + 1, "
        "'at', to_jsonb(clock_timestamp()))) "
        "WHERE id = $1 RETURNING jsonb_array_length(agent_history)",
        session_id,
        {"action": action, "data": data or {}},
    )
    return seq


async def session_history(conn: Connection, session_id: UUID) -> list[SessionHistoryEntry] | None:
    """A session's audit log, oldest first; None when the user has no such session."""
    history = await conn.fetchval(
        "SELECT agent_history FROM study_sessions WHERE id = $1", session_id
    )
    if history is None:
        return None
    return [SessionHistoryEntry.model_validate(entry) for entry in history]


async def list_sessions(conn: Connection, limit: int = 20) -> list[Session]:
    """The transaction's user's sessions, newest first."""
    rows = await conn.fetch(
        "SELECT id AS session_id, exam_type, current_state AS phase, created_at, updated_at "
        "FROM study_sessions ORDER BY created_at DESC, id LIMIT $1",
        min(max(limit, 1), MAX_LIST_LIMIT),
    )
    return [Session.model_validate(dict(row)) for row in rows]
