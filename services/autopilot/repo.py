"""The autopilot's SQL: runs, their append-only step log, and the leases that give each
active run one driver at a time.

Rules the statements keep:

- a run's row is changed only under ``SELECT ... FOR UPDATE`` of that row, so a student's
  command and the driver never interleave; each write bumps ``version``;
- steps are only ever inserted, numbered from 1 without gaps (the primary key refuses a
  number twice, so a step can never be stored again);
- a driver writes only while its lease holds: owner, fencing token and an unexpired
  ``expires_at`` are checked in the same transaction as the write (:func:`hold_lease`);
- every write of a run notifies ``autopilot_wake`` with the session id, so the replica that
  drives it looks again at once (a notification is sent only if the transaction commits).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from exammentor.contracts.autopilot import AutopilotStep
from exammentor.db import Connection
from services.autopilot.domain import AutopilotRun, status_view

WAKE_CHANNEL = "autopilot_wake"


@dataclass
class StoredRun:
    """A run as read from its row, with the version the next write must find."""

    run: AutopilotRun
    user_id: UUID
    version: int


def _state(run: AutopilotRun) -> dict[str, Any]:
    # The state without its log: the log is in autopilot_steps.
    return run.model_dump(mode="json", exclude={"steps"})


def _view(run: AutopilotRun, now: dt.datetime) -> dict[str, Any]:
    # What the status shows, as of this write; elapsed time is counted at read time.
    return status_view(run, now).model_dump(mode="json", exclude={"steps", "elapsed_seconds"})


def _deadlines(run: AutopilotRun) -> tuple[dt.datetime | None, dt.datetime | None]:
    due_ms = run.wait_due_ms  # a graded answer's wait ends later than the answer window
    answer = None if due_ms is None else run.wall_time_at(due_ms)
    return answer, run.wall_time_at(run.target_ms)


async def _steps(conn: Connection, session_id: UUID, run_number: int) -> list[AutopilotStep]:
    rows = await conn.fetch(
        "SELECT step FROM autopilot_steps WHERE session_id = $1 AND run_number = $2 "
        "ORDER BY number",
        session_id,
        run_number,
    )
    return [AutopilotStep.model_validate(row["step"]) for row in rows]


async def latest_run(
    conn: Connection,
    session_id: UUID,
    *,
    lock: bool = False,
    cached: StoredRun | None = None,
) -> StoredRun | None:
    """The session's newest run (of the transaction's user), optionally locked.

    Args:
        conn: A connection in the user's transaction.
        session_id: The study session.
        lock: Lock the run's row until the transaction ends.
        cached: A run read before: reused (no log read) when its version is still current.

    Returns:
        The run, or None when the session has none (or is another user's).
    """
    row = await conn.fetchrow(
        "SELECT run_number, user_id, version, state FROM autopilot_runs WHERE session_id = $1 "
        "ORDER BY run_number DESC LIMIT 1" + (" FOR UPDATE" if lock else ""),
        session_id,
    )
    if row is None:
        return None
    if (
        cached is not None
        and cached.version == row["version"]
        and cached.run.run_number == row["run_number"]
    ):
        return cached
    steps = await _steps(conn, session_id, row["run_number"])
    run = AutopilotRun.model_validate({**row["state"], "steps": steps})
    return StoredRun(run, row["user_id"], row["version"])


async def _insert_steps(
    conn: Connection, run: AutopilotRun, user_id: UUID, steps: tuple[AutopilotStep, ...]
) -> None:
    await conn.executemany(
        "INSERT INTO autopilot_steps (session_id, run_number, number, user_id, action, step, "
        "created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        [
            (
                run.session_id,
                run.run_number,
                step.number,
                user_id,
                step.action,
                step.model_dump(mode="json"),
                step.timestamp,
            )
            for step in steps
        ],
    )


async def insert_run(
    conn: Connection, run: AutopilotRun, user_id: UUID, now: dt.datetime
) -> StoredRun:
    """Stores a new run with its first steps and a free lease (any driver may take it).

    Args:
        conn: A connection in the user's transaction.
        run: The run :func:`~services.autopilot.domain.start_run` made.
        user_id: Its owner.
        now: The start time.

    Returns:
        The stored run (version 1).
    """
    answer, session = _deadlines(run)
    await conn.execute(
        "INSERT INTO autopilot_runs (session_id, run_number, user_id, status, phase, state, "
        "view, version, steps_count, elapsed_before_ms, running_since, answer_deadline, "
        "session_deadline, started_at, completed_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $9, $10, $11, $12, $13, $14)",
        run.session_id,
        run.run_number,
        user_id,
        run.status,
        run.phase,
        _state(run),
        _view(run, now),
        len(run.steps),
        run.elapsed_before_ms,
        run.running_since,
        answer,
        session,
        run.started_at,
        run.completed_at,
    )
    await _insert_steps(conn, run, user_id, tuple(run.steps))
    await conn.execute(
        "INSERT INTO autopilot_leases (session_id, run_number, user_id) VALUES ($1, $2, $3) "
        "ON CONFLICT (session_id) DO UPDATE SET run_number = EXCLUDED.run_number, "
        "user_id = EXCLUDED.user_id, owner = NULL, expires_at = NULL, wake_at = NULL, "
        "token = autopilot_leases.token + 1, updated_at = now()",
        run.session_id,
        run.run_number,
        user_id,
    )
    await wake(conn, run.session_id)
    return StoredRun(run, user_id, 1)


async def save_run(
    conn: Connection,
    stored: StoredRun,
    run: AutopilotRun,
    new_steps: tuple[AutopilotStep, ...],
    now: dt.datetime,
) -> StoredRun:
    """Stores a changed run and appends its new steps; a finished run leaves the leases.

    Args:
        conn: A connection in the user's transaction, the run's row locked.
        stored: The run as read (its version is checked).
        run: The run after :func:`~services.autopilot.domain.apply`.
        new_steps: The steps the change added.
        now: When it happened.

    Returns:
        The stored run at its new version.

    Raises:
        RunChanged: The row is not at ``stored``'s version (it was not locked).
    """
    answer, session = _deadlines(run)
    version = await conn.fetchval(
        "UPDATE autopilot_runs SET status = $4, phase = $5, state = $6, view = $7, "
        "version = version + 1, steps_count = $8, elapsed_before_ms = $9, running_since = $10, "
        "answer_deadline = $11, session_deadline = $12, completed_at = $13, updated_at = now() "
        "WHERE session_id = $1 AND run_number = $2 AND version = $3 RETURNING version",
        run.session_id,
        run.run_number,
        stored.version,
        run.status,
        run.phase,
        _state(run),
        _view(run, now),
        len(run.steps),
        run.elapsed_before_ms,
        run.running_since,
        answer,
        session,
        run.completed_at,
    )
    if version is None:
        raise RunChanged(f"run {run.run_number} of {run.session_id} changed meanwhile")
    await _insert_steps(conn, run, stored.user_id, new_steps)
    if run.is_finished:
        await conn.execute(
            "DELETE FROM autopilot_leases WHERE session_id = $1 AND run_number = $2",
            run.session_id,
            run.run_number,
        )
    else:
        await conn.execute(
            "UPDATE autopilot_leases SET wake_at = $3, updated_at = now() "
            "WHERE session_id = $1 AND run_number = $2",
            run.session_id,
            run.run_number,
            answer if run.status == "running" else None,
        )
    await wake(conn, run.session_id)
    return StoredRun(run, stored.user_id, version)


class RunChanged(Exception):
    """A run's row moved on between its read and a write (retried by the caller)."""


async def wake(conn: Connection, session_id: UUID) -> None:
    """Tells the replica driving the session to look again (at commit)."""
    await conn.execute("SELECT pg_notify($1, $2)", WAKE_CHANNEL, str(session_id))


# ---- leases ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lease:
    """A driver's hold on one active run; ``token`` fences its writes."""

    session_id: UUID
    run_number: int
    user_id: UUID
    token: int


async def claim_leases(conn: Connection, owner: str, ttl_s: float, limit: int) -> list[Lease]:
    """Takes up to ``limit`` active runs that no driver holds (free or expired leases).

    Each claim bumps the run's fencing token, so a driver whose lease expired cannot write
    any more even if it wakes up later. Rows another replica is claiming are skipped.

    Args:
        conn: A connection (no user needed: leases hold ids and times only).
        owner: This replica's name.
        ttl_s: Seconds the lease lasts unless renewed.
        limit: Most runs to take.

    Returns:
        The leases taken.
    """
    if limit <= 0:
        return []
    rows = await conn.fetch(
        "WITH free AS (SELECT session_id FROM autopilot_leases "
        "WHERE expires_at IS NULL OR expires_at < now() "
        "ORDER BY updated_at LIMIT $3 FOR UPDATE SKIP LOCKED) "
        "UPDATE autopilot_leases l SET owner = $1, token = l.token + 1, "
        "expires_at = now() + make_interval(secs => $2), updated_at = now() "
        "FROM free WHERE l.session_id = free.session_id "
        "RETURNING l.session_id, l.run_number, l.user_id, l.token",
        owner,
        ttl_s,
        limit,
    )
    return [Lease(r["session_id"], r["run_number"], r["user_id"], r["token"]) for r in rows]


async def renew_leases(
    conn: Connection, owner: str, ttl_s: float, leases: list[Lease]
) -> set[UUID]:
    """Extends the leases still held; returns their session ids (the others are lost)."""
    if not leases:
        return set()
    rows = await conn.fetch(
        "UPDATE autopilot_leases l SET expires_at = now() + make_interval(secs => $2) "
        "FROM unnest($3::uuid[], $4::bigint[]) AS held(session_id, token) "
        "WHERE l.session_id = held.session_id AND l.token = held.token AND l.owner = $1 "
        "AND l.expires_at > now() RETURNING l.session_id",
        owner,
        ttl_s,
        [lease.session_id for lease in leases],
        [lease.token for lease in leases],
    )
    return {r["session_id"] for r in rows}


async def hold_lease(conn: Connection, owner: str, lease: Lease) -> bool:
    """Whether ``lease`` still holds, locking it until the transaction ends (the fence)."""
    found = await conn.fetchval(
        "SELECT 1 FROM autopilot_leases WHERE session_id = $1 AND run_number = $2 "
        "AND owner = $3 AND token = $4 AND expires_at > now() FOR UPDATE",
        lease.session_id,
        lease.run_number,
        owner,
        lease.token,
    )
    return found is not None


async def release_leases(conn: Connection, owner: str, leases: list[Lease]) -> None:
    """Gives leases back (a replica that stops), so another replica takes them at once."""
    await conn.execute(
        "UPDATE autopilot_leases l SET owner = NULL, expires_at = NULL, updated_at = now() "
        "FROM unnest($2::uuid[], $3::bigint[]) AS held(session_id, token) "
        "WHERE l.session_id = held.session_id AND l.token = held.token AND l.owner = $1",
        owner,
        [lease.session_id for lease in leases],
        [lease.token for lease in leases],
    )
    for lease in leases:
        await conn.execute("SELECT pg_notify($1, $2)", WAKE_CHANNEL, str(lease.session_id))
