"""Read models of the autopilot's tables (``autopilot_runs``, ``autopilot_steps``): a run's
status and its watch stream as the API shows them. The autopilot writes these tables
(:mod:`services.autopilot.repo`); this module only reads them, for the gateway, so the
status and the watch work whichever replica drives the run.
"""

from __future__ import annotations

import datetime as dt
from uuid import UUID

from asyncpg import Record

from exammentor.contracts.autopilot import (
    FINISHED_STATUSES,
    AutopilotStatusResponse,
    AutopilotStep,
    AutopilotWatchEvent,
)
from exammentor.db import Connection


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
