"""The planner's SQL: writing stored plans (per user, under row-level security) and the plan
cache. Reads for clients are the kit's read models (:mod:`exammentor.read_models.planner`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from uuid import UUID, uuid4

from exammentor.db import Connection

MAX_LIST_LIMIT = 100


async def cached_result(conn: Connection, cache_key: str) -> dict[str, Any] | None:
    """The cached result of identical inputs, if it has not expired.

    Args:
        conn: Any connection (the cache is shared; a hit needs the same inputs).
        cache_key: The key from ``plan_cache_key``.

    Returns:
        The stored result, or None.
    """
    value: dict[str, Any] | None = await conn.fetchval(
        "SELECT plan FROM plan_cache WHERE cache_key = $1 AND expires_at > now()", cache_key
    )
    return value


async def store_cached_result(
    conn: Connection, cache_key: str, result: dict[str, Any], ttl_s: int
) -> None:
    """Stores (or refreshes) a result in the cache. Expired entries are removed by the
    operators' retention run (``exammentor retention run``), not here: a delete in every
    command's transaction contended on the same rows across replicas.

    Args:
        conn: A connection in the command's transaction.
        cache_key: The key.
        result: The result to answer identical requests with.
        ttl_s: Seconds until it expires.
    """
    await conn.execute(
        "INSERT INTO plan_cache (id, cache_key, plan, expires_at) "
        "VALUES ($1, $2, $3, now() + $4::interval) "
        "ON CONFLICT (cache_key) DO UPDATE SET plan = EXCLUDED.plan, "
        "created_at = now(), expires_at = EXCLUDED.expires_at",
        uuid4(),
        cache_key,
        result,
        dt.timedelta(seconds=ttl_s),
    )


async def insert_study_plan(
    conn: Connection,
    *,
    plan_id: UUID,
    user_id: UUID,
    session_id: UUID | None,
    request_id: UUID,
    plan: dict[str, Any],
    verification: dict[str, Any],
    history: dict[str, Any],
    from_cache: bool,
) -> None:
    """Stores a verified plan for its user (and study session).

    Args:
        conn: A connection in the user's transaction.
        plan_id: The plan's id.
        user_id: Its owner.
        session_id: The study session it belongs to, if any.
        request_id: The request that produced it.
        plan: The final plan.
        verification: Its verification.
        history: Versions, routing and the other reports.
        from_cache: Whether it was answered from the cache.
    """
    await conn.execute(
        "INSERT INTO study_plans (id, user_id, session_id, request_id, plan, verification, "
        "history, from_cache) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        plan_id,
        user_id,
        session_id,
        request_id,
        plan,
        verification,
        history,
        from_cache,
    )
