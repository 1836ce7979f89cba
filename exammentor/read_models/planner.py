"""Read models of the planner's tables (``study_plans``): the stored plans as the API shows
them. The planner writes these tables (:mod:`services.planner.repo`); this module only reads
them, for the gateway.
"""

from __future__ import annotations

from uuid import UUID

from exammentor.contracts.api import MAX_PLAN_LIST_LIMIT, PlanSummary, StoredPlan
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
