"""The pipeline tables' SQL, in one place: requests, request events, inbox, dead letters and
model usage. Gateway, workers and the operator command call these; nobody else writes these
tables' SQL.

Rules the statements keep:

- a request moves ``pending`` -> ``running`` -> ``done`` or ``failed``; only a replayed
  dead letter turns ``failed`` into ``done``;
- a command's inbox row, effects, result and events commit together (see
  :mod:`exammentor.messaging.consumer`);
- the hot paths (a new request, the start and the end of an attempt) are one round trip
  each: server functions (``migrations/009_one_round_trip.sql``) that set the user for
  row-level security themselves; the other statements run in the caller's transaction;
- rows that belong to a user are written inside that user's transaction (row-level
  security); dead letters and usage rows are written by the system.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from exammentor.db import Connection

REQUESTS_CHANNEL = "exammentor_requests"
"""NOTIFY channel: a request's id each time it gains progress or ends (at commit)."""


@dataclass(frozen=True)
class StoredRequest:
    """A request row as clients read it back."""

    request_id: UUID
    kind: str
    status: str
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    created_at: datetime
    completed_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        """The request as the HTTP API returns it."""
        return {
            "request_id": str(self.request_id),
            "kind": self.kind,
            "status": self.status,
            "result": self.result,
            "error": self.error,
            "created_at": self.created_at.isoformat(),
            "completed_at": self.completed_at.isoformat() if self.completed_at else None,
        }


@dataclass(frozen=True)
class CreatedRequest:
    """The request a dispatch stands for: new, or one stored before under the same id or
    idempotency key (then ``kind`` and ``payload`` are what that one was sent with)."""

    request_id: UUID
    new: bool
    kind: str
    payload: dict[str, Any]


async def create_request(
    conn: Connection,
    request_id: UUID,
    user_id: UUID,
    kind: str,
    payload: dict[str, Any],
    *,
    command: dict[str, Any] | None = None,
    topic: str | None = None,
    idempotency_key: str | None = None,
) -> CreatedRequest:
    """A pending request row with the command that carries it (committed together), or the
    one already stored under the same id or the same idempotency key of this user.

    One round trip, as a transaction of its own (``conn`` is in none): the server function
    sets the user for row-level security itself.

    Raises:
        LookupError: The id is another user's (never theirs to reuse).
    """
    row = await conn.fetchrow(
        "SELECT * FROM request_create($1, $2, $3, $4, $5, $6, $7)",
        request_id,
        user_id,
        kind,
        payload,
        command,
        topic,
        idempotency_key,
    )
    if row is None:
        raise LookupError(f"request {request_id} belongs to no one this user can see")
    return CreatedRequest(
        row["request_id"], row["created"], row["request_kind"], row["request_payload"]
    )


async def start_attempt(
    conn: Connection, consumer: str, command_id: UUID, request_id: UUID, user_id: UUID
) -> tuple[bool, int]:
    """At the start of an attempt, in one round trip and a transaction of its own (``conn``
    is in none): whether ``consumer`` applied the command before, and if not, marks its
    request running and returns the highest progress number stored for it (so this attempt
    numbers its progress after it). The mark commits without waiting for the disk (see
    ``migrations/009_one_round_trip.sql``: losing it in a crash is harmless).

    Raises:
        RuntimeError: ``conn`` is inside a transaction, whose commit would then not wait
            for the disk either.
    """
    if conn.is_in_transaction():
        raise RuntimeError("start_attempt runs as a transaction of its own")
    row = await conn.fetchrow(
        "SELECT applied, last_seq FROM command_start($1, $2, $3, $4)",
        consumer,
        command_id,
        request_id,
        user_id,
    )
    assert row is not None
    return bool(row["applied"]), int(row["last_seq"])


@dataclass(frozen=True)
class OutboxEvent:
    """An event as the outbox stores it (:func:`exammentor.messaging.outbox.outbox_event`)."""

    event_id: UUID
    topic: str
    key: bytes
    envelope: dict[str, Any]
    headers: dict[str, Any]


async def finish_attempt(
    conn: Connection,
    consumer: str,
    command_id: UUID,
    user_id: UUID,
    request_id: UUID,
    *,
    result: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
    events: Sequence[OutboxEvent] = (),
) -> bool:
    """At the end of an attempt, in one round trip: puts the command in ``consumer``'s inbox,
    stores its request's result (``done``) or error (``failed``) once, as
    :func:`finish_request` does, and writes ``events`` to the outbox, each under its key's
    lock until commit (the outbox's order rule). False, with nothing written, when the inbox
    had the command already (applied elsewhere).

    Runs in the caller's transaction when there is one (the command's own writes commit with
    it), as a transaction of its own otherwise.
    """
    applied = await conn.fetchval(
        "SELECT command_finish($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        consumer,
        command_id,
        user_id,
        request_id,
        result,
        error,
        [e.event_id for e in events],
        [e.topic for e in events],
        [e.key for e in events],
        [e.envelope for e in events],
        [e.headers for e in events],
    )
    return bool(applied)


async def finish_request(
    conn: Connection,
    request_id: UUID,
    *,
    result: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
) -> None:
    """Stores a request's final result (``done``) or error (``failed``), once: a finished
    request stays as it is, except a dead-lettered one whose letter was replayed."""
    await conn.execute(
        "UPDATE requests SET status = $2, result = $3, error = $4, updated_at = now(), "
        "completed_at = now() WHERE id = $1 AND (status IN ('pending', 'running') "
        "OR (status = 'failed' AND error->>'code' = 'dead_lettered')) "
        "RETURNING pg_notify($5, $1::text)",
        request_id,
        "failed" if error is not None else "done",
        result,
        error,
        REQUESTS_CHANNEL,
    )


async def get_request(conn: Connection, request_id: UUID) -> StoredRequest | None:
    """One request of the transaction's user (another user's is simply not found)."""
    row = await conn.fetchrow(
        "SELECT id, kind, status, result, error, created_at, completed_at "
        "FROM requests WHERE id = $1",
        request_id,
    )
    if row is None:
        return None
    return StoredRequest(
        request_id=row["id"],
        kind=row["kind"],
        status=row["status"],
        result=row["result"],
        error=row["error"],
        created_at=row["created_at"],
        completed_at=row["completed_at"],
    )


async def add_request_event(
    conn: Connection, request_id: UUID, user_id: UUID, seq: int, body: dict[str, Any]
) -> None:
    """Stores one progress event of a request, for a client that resumes its stream."""
    await conn.execute(
        "INSERT INTO request_events (request_id, seq, user_id, body) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (request_id, seq) DO UPDATE SET body = EXCLUDED.body "
        "RETURNING pg_notify($5, $1::text)",
        request_id,
        seq,
        user_id,
        body,
        REQUESTS_CHANNEL,
    )


async def recent_requests(conn: Connection, limit: int) -> list[StoredRequest]:
    """The transaction's user's newest requests, with their results."""
    rows = await conn.fetch(
        "SELECT id, kind, status, result, error, created_at, completed_at FROM requests "
        "ORDER BY created_at DESC, id LIMIT $1",
        limit,
    )
    return [
        StoredRequest(
            request_id=r["id"],
            kind=r["kind"],
            status=r["status"],
            result=r["result"],
            error=r["error"],
            created_at=r["created_at"],
            completed_at=r["completed_at"],
        )
        for r in rows
    ]


async def request_load(
    conn: Connection, topics: Sequence[str], since: datetime, until: datetime
) -> list[Any]:
    """Every user's requests on ``topics`` per topic and kind over ``[since, until)``, read
    by the capacity report outside any user (the role must bypass row-level security).

    One row per topic and kind, and one per topic with ``kind`` None (all its kinds).
    ``commands`` and ``failed`` count the requests created in the window; ``p50_s`` and
    ``p95_s`` are percentiles of their created-to-completed seconds (queue wait included;
    None when none completed); ``busy_s`` sums the seconds each request was in flight within
    the window, requests created before it or unfinished at its end included, clipped to it.
    """
    return list(
        await conn.fetch(
            "WITH load AS (SELECT topic, kind, status, created_at >= $2 AS created_within, "
            "extract(epoch FROM completed_at - created_at)::float8 AS seconds, "
            "extract(epoch FROM least(coalesce(completed_at, $3), $3) "
            "- greatest(created_at, $2))::float8 AS busy_s "
            "FROM requests WHERE topic = ANY($1::text[]) AND created_at < $3 "
            "AND (completed_at IS NULL OR completed_at > $2)) "
            "SELECT topic, kind, count(*) FILTER (WHERE created_within) AS commands, "
            "count(*) FILTER (WHERE created_within AND status = 'failed') AS failed, "
            "percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) "
            "FILTER (WHERE created_within) AS p50_s, "
            "percentile_cont(0.95) WITHIN GROUP (ORDER BY seconds) "
            "FILTER (WHERE created_within) AS p95_s, "
            "coalesce(sum(busy_s), 0) AS busy_s FROM load "
            "GROUP BY GROUPING SETS ((topic, kind), (topic)) ORDER BY topic, kind NULLS FIRST",
            list(topics),
            since,
            until,
        )
    )


async def request_events(
    conn: Connection, request_id: UUID, after_seq: int
) -> list[dict[str, Any]]:
    """Stored progress of a request after ``after_seq``, in order."""
    rows = await conn.fetch(
        "SELECT seq, body FROM request_events WHERE request_id = $1 AND seq > $2 ORDER BY seq",
        request_id,
        after_seq,
    )
    return [{"seq": r["seq"], **r["body"]} for r in rows]


@dataclass(frozen=True)
class DeadLetterRecord:
    """Where a dead-lettered record came from, and why it was set aside."""

    consumer: str
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    reason: str
    attempts: int
    user_id: UUID | None = None
    """The command's user, when its envelope could be read (row-level security shows the
    letter to that user's transactions)."""


async def record_dead_letter(conn: Connection, letter: DeadLetterRecord) -> None:
    """Stores a dead letter for operators (once per source record)."""
    await conn.execute(
        'INSERT INTO dead_letters (consumer, topic, partition, "offset", key, value, reason, '
        "attempts, user_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
        letter.consumer,
        letter.topic,
        letter.partition,
        letter.offset,
        letter.key,
        letter.value,
        letter.reason,
        letter.attempts,
        letter.user_id,
    )


async def record_model_usage(
    conn: Connection,
    *,
    service: str,
    purpose: str,
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    latency_ms: float,
    outcome: str,
    user_id: str | None,
    request_id: str | None,
) -> None:
    """Stores one model call's usage, for cost reports (``exammentor usage``)."""
    await conn.execute(
        "INSERT INTO llm_usage (service, purpose, model, prompt_tokens, completion_tokens, "
        "latency_ms, outcome, user_id, request_id) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8::text::uuid, $9::text::uuid)",
        service,
        purpose,
        model,
        prompt_tokens,
        completion_tokens,
        latency_ms,
        outcome,
        user_id,
        request_id,
    )


async def dead_letter_rows(conn: Connection, *, limit: int, pending_only: bool) -> list[Any]:
    """The newest dead letters (without their bytes), for operators."""
    return list(
        await conn.fetch(
            'SELECT id, consumer, topic, partition, "offset", reason, attempts, created_at, '
            "replayed_at FROM dead_letters WHERE NOT $1 OR replayed_at IS NULL "
            "ORDER BY created_at DESC, id DESC LIMIT $2",
            pending_only,
            limit,
        )
    )


@dataclass(frozen=True)
class ParkedLetter:
    """A command parked for a newer version of its service."""

    letter_id: int
    topic: str
    key: bytes | None
    value: bytes


async def parked_letters(conn: Connection, consumer: str, prefix: str) -> list[ParkedLetter]:
    """The parked (not yet replayed) letters of one consumer, oldest first."""
    rows = await conn.fetch(
        "SELECT id, topic, key, value FROM dead_letters WHERE consumer = $1 "
        "AND replayed_at IS NULL AND starts_with(reason, $2) ORDER BY id",
        consumer,
        prefix,
    )
    return [
        ParkedLetter(
            r["id"], r["topic"], bytes(r["key"]) if r["key"] is not None else None, r["value"]
        )
        for r in rows
    ]


async def lock_dead_letter(conn: Connection, letter_id: int) -> Any:
    """One dead letter with its bytes, locked until the transaction ends (None if absent)."""
    return await conn.fetchrow(
        'SELECT id, consumer, topic, partition, "offset", reason, attempts, created_at, '
        "replayed_at, key, value FROM dead_letters WHERE id = $1 FOR UPDATE",
        letter_id,
    )


async def mark_replayed(conn: Connection, letter_id: int) -> datetime:
    """Records that a dead letter was put back on its topic; returns when."""
    replayed_at: datetime = await conn.fetchval(
        "UPDATE dead_letters SET replayed_at = now() WHERE id = $1 RETURNING replayed_at",
        letter_id,
    )
    return replayed_at


async def usage_by_purpose(conn: Connection, since: timedelta) -> list[Any]:
    """Model calls, failures, tokens and mean latency per service and purpose since ``since``."""
    return list(
        await conn.fetch(
            "SELECT service, purpose, count(*) AS calls, "
            "count(*) FILTER (WHERE outcome <> 'ok') AS failed_calls, "
            "sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens, "
            "avg(latency_ms) AS mean_latency_ms FROM llm_usage "
            "WHERE created_at > now() - $1::interval GROUP BY service, purpose "
            "ORDER BY sum(prompt_tokens + completion_tokens) DESC, service, purpose",
            since,
        )
    )
