"""The gateway's SQL: users and requests."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import asyncpg

from exammentor.db import Connection, Pool, user_transaction


class NameTaken(Exception):
    """Another user has this name."""


async def create_user(pool: Pool, name: str, password_hash: str) -> UUID:
    """Inserts a user (as that user, so row-level security admits the row)."""
    user_id = uuid4()
    try:
        async with user_transaction(pool, user_id) as conn:
            await conn.execute(
                "INSERT INTO users (id, name, password_hash) VALUES ($1, $2, $3)",
                user_id,
                name,
                password_hash,
            )
    except asyncpg.UniqueViolationError as exc:
        raise NameTaken(name) from exc
    return user_id


async def credentials(pool: Pool, name: str) -> tuple[UUID, str] | None:
    """The id and password hash of ``name``, or None."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT id, password_hash FROM auth_credentials($1)", name)
    return (row["id"], row["password_hash"]) if row else None


async def create_request(
    conn: Connection, request_id: UUID, user_id: UUID, kind: str, payload: dict[str, Any]
) -> None:
    """A pending request row (inside the caller's user transaction)."""
    await conn.execute(
        "INSERT INTO requests (id, user_id, kind, payload) VALUES ($1, $2, $3, $4)",
        request_id,
        user_id,
        kind,
        payload,
    )


async def fail_request(pool: Pool, user_id: UUID, request_id: UUID, error: dict[str, Any]) -> None:
    """Marks a request failed (it could not be sent)."""
    async with user_transaction(pool, user_id) as conn:
        await conn.execute(
            "UPDATE requests SET status = 'failed', error = $2, updated_at = now(), "
            "completed_at = now() WHERE id = $1",
            request_id,
            error,
        )


async def get_request(pool: Pool, user_id: UUID, request_id: UUID) -> dict[str, Any] | None:
    """One of the user's requests (another user's is simply not found)."""
    async with user_transaction(pool, user_id) as conn:
        row = await conn.fetchrow(
            "SELECT id, kind, status, result, error, created_at, completed_at "
            "FROM requests WHERE id = $1",
            request_id,
        )
    return dict(row) if row else None


async def request_events(
    pool: Pool, user_id: UUID, request_id: UUID, after_seq: int
) -> list[dict[str, Any]]:
    """Stored progress of a request after ``after_seq``, for a client resuming its stream."""
    async with user_transaction(pool, user_id) as conn:
        rows = await conn.fetch(
            "SELECT seq, body FROM request_events WHERE request_id = $1 AND seq > $2 ORDER BY seq",
            request_id,
            after_seq,
        )
    return [{"seq": r["seq"], **r["body"]} for r in rows]
