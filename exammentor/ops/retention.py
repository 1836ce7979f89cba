"""Retention: the tables that grow with every request lose their old rows, in batches.

``exammentor retention run [--dry-run]`` (an operator's command, on the owner's connection,
``DATABASE_URL``) removes, by the ages in :class:`~exammentor.settings.RetentionSettings`:

- inbox rows (the dedupe of commands) older than ``inbox_days``;
- outbox rows published more than ``outbox_sent_days`` ago (unpublished rows stay, whatever
  their age: they are events not yet delivered);
- request events (stored stream progress) older than ``request_events_days``; the request
  and its final result stay;
- model usage records older than ``model_usage_days``;
- plan cache entries past their expiry (which command transactions used to delete).

Each table is cut against one cutoff taken at the start, ``batch_size`` rows per
transaction, so a backlog never holds a long lock and a run can be stopped at any point
(what was deleted stays deleted; the next run goes on). Run it from cron or a scheduled job;
it is safe to run twice at once (the second finds fewer rows).

The owner role must bypass row-level security (superuser or ``BYPASSRLS``): request events
are user rows, which a forced policy hides from a role without a user.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from exammentor.settings import RetentionSettings


@dataclass(frozen=True)
class RetentionRule:
    """Rows of ``table`` whose ``condition`` holds (``$1`` is the cutoff) are removed."""

    table: str
    condition: str
    age_days: float | None
    """None: the rows carry their own expiry (``$1`` is now)."""

    def describe(self) -> str:
        """What the rule keeps, for the report."""
        if self.age_days is None:
            return "expired entries"
        return f"older than {self.age_days:g} days"


def rules(settings: RetentionSettings) -> list[RetentionRule]:
    """The rules the settings give, in the order a run applies them."""
    return [
        RetentionRule("inbox", "applied_at < $1", settings.inbox_days),
        RetentionRule(
            "outbox",
            "published_at IS NOT NULL AND published_at < $1",
            settings.outbox_sent_days,
        ),
        RetentionRule("request_events", "created_at < $1", settings.request_events_days),
        RetentionRule("llm_usage", "created_at < $1", settings.model_usage_days),
        RetentionRule("plan_cache", "expires_at <= $1", None),
    ]


@dataclass(frozen=True)
class TableRetention:
    """What a run did (or, dry, would do) to one table."""

    table: str
    rows: int
    batches: int
    rule: str


async def run_retention(
    dsn: str, settings: RetentionSettings, *, dry_run: bool = False
) -> list[TableRetention]:
    """Applies every rule; returns the rows removed per table (counted only when dry).

    Args:
        dsn: The owner's connection string (see the module docstring for its role).
        settings: The ages and the batch size.
        dry_run: Count what would be removed; remove nothing.
    """
    conn = await asyncpg.connect(dsn)
    try:
        now = await conn.fetchval("SELECT now()")
        report = []
        for rule in rules(settings):
            cutoff = now if rule.age_days is None else now - timedelta(days=rule.age_days)
            if dry_run:
                count = await conn.fetchval(
                    f"SELECT count(*) FROM {rule.table} WHERE {rule.condition}",
                    cutoff,
                )
                report.append(TableRetention(rule.table, int(count), 0, rule.describe()))
                continue
            removed, batches = 0, 0
            while True:
                # ctid batches: no index on the condition is needed, and each batch commits.
                done = await conn.fetchval(
                    f"WITH gone AS (DELETE FROM {rule.table} WHERE ctid = ANY(ARRAY("
                    f"SELECT ctid FROM {rule.table} WHERE {rule.condition} LIMIT $2)) "
                    "RETURNING 1) SELECT count(*) FROM gone",
                    cutoff,
                    settings.batch_size,
                )
                removed += int(done)
                batches += 1
                if done < settings.batch_size:
                    break
            report.append(TableRetention(rule.table, removed, batches, rule.describe()))
        return report
    finally:
        await conn.close()
