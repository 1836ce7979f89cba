"""The gateway's own SQL: users. The pipeline tables' SQL is the kit's
(:mod:`exammentor.messaging.pipeline`).
"""

from __future__ import annotations

from uuid import UUID, uuid4

import asyncpg

from exammentor.db import Pool, user_transaction


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
