"""What the model cost: tokens and calls per service and purpose, from ``llm_usage``
(one row per HTTP call, failed and repaired ones included), priced when prices are given.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from exammentor.messaging import pipeline


@dataclass(frozen=True)
class UsageLine:
    """Model use of one service and purpose over the period."""

    service: str
    purpose: str
    calls: int
    failed_calls: int
    prompt_tokens: int
    completion_tokens: int
    mean_latency_ms: float

    def cost(self, prompt_per_1k: float, completion_per_1k: float) -> float:
        """Cost at the given prices per thousand tokens."""
        return (
            self.prompt_tokens * prompt_per_1k + self.completion_tokens * completion_per_1k
        ) / 1000


async def usage_report(dsn: str, since: timedelta) -> list[UsageLine]:
    """Usage per service and purpose over the last ``since``, most tokens first."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await pipeline.usage_by_purpose(conn, since)
    finally:
        await conn.close()
    return [UsageLine(**{**dict(r), "mean_latency_ms": float(r["mean_latency_ms"])}) for r in rows]
