"""The planner's SQL: stored plans (per user, under row-level security) and the plan cache.

The gateway reads stored plans through :func:`get_study_plan` and :func:`list_study_plans`
too, in its own user transaction: the table has one owner of its SQL.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from uuid import UUID, uuid4

from exammentor.db import Connection

MAX_LIST_LIMIT = 100


async def session_exists(conn: Connection, session_id: UUID) -> bool:
    """Whether the transaction's user has this study session.

    Args:
        conn: A connection in the user's transaction.
        session_id: The session.

    Returns:
        True when the session exists and is the user's (row-level security hides others').
    """
    found = await conn.fetchval("SELECT 1 FROM study_sessions WHERE id = $1", session_id)
    return found is not None


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
    """Stores (or refreshes) a result in the cache, and drops expired entries.

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
    # Cheap with the expiry index; keeps the table from growing without bound.
    await conn.execute("DELETE FROM plan_cache WHERE expires_at <= now()")


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


async def get_study_plan(conn: Connection, plan_id: UUID) -> dict[str, Any] | None:
    """One stored plan of the transaction's user.

    Args:
        conn: A connection in the user's transaction.
        plan_id: The plan.

    Returns:
        ``plan_id``, ``session_id``, ``request_id``, ``created_at``, ``from_cache``,
        ``plan``, ``verification`` and ``history``; None when the user has no such plan.
    """
    row = await conn.fetchrow(
        "SELECT id AS plan_id, session_id, request_id, created_at, from_cache, plan, "
        "verification, history FROM study_plans WHERE id = $1",
        plan_id,
    )
    return dict(row) if row is not None else None


async def list_study_plans(
    conn: Connection, *, session_id: UUID | None = None, limit: int = 20
) -> list[dict[str, Any]]:
    """The transaction's user's plans, newest first, as summaries.

    Args:
        conn: A connection in the user's transaction.
        session_id: Only the plans of this study session.
        limit: Most plans returned (at most :data:`MAX_LIST_LIMIT`).

    Returns:
        ``plan_id``, ``session_id``, ``request_id``, ``created_at``, ``from_cache``,
        ``exam_name``, ``total_days``, ``coverage_percent`` and ``is_valid`` of each.
    """
    rows = await conn.fetch(
        "SELECT id AS plan_id, session_id, request_id, created_at, from_cache, "
        "plan->>'exam_name' AS exam_name, (plan->>'total_days')::int AS total_days, "
        "(verification->>'coverage_percent')::float8 AS coverage_percent, "
        "(verification->>'is_valid')::boolean AS is_valid "
        "FROM study_plans WHERE ($1::uuid IS NULL OR session_id = $1) "
        "ORDER BY created_at DESC, id LIMIT $2",
        session_id,
        min(max(limit, 1), MAX_LIST_LIMIT),
    )
    return [dict(row) for row in rows]
