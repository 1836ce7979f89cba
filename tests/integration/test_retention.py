"""Retention: old inbox rows, sent outbox rows, request events, model usage and expired plan
cache entries go, in batches, and nothing younger (or undelivered) goes with them; the plan
cache is no longer cleaned inside command transactions.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import timedelta

import asyncpg
import pytest

from exammentor.db import create_pool, system_transaction
from exammentor.ops.retention import run_retention
from exammentor.settings import RetentionSettings
from services.planner import repo as planner_repo
from tests.conftest import SessionEnv
from tests.infra import ROOT, python, unique_name

pytestmark = pytest.mark.integration

AGES = RetentionSettings(
    inbox_days=1, outbox_sent_days=1, request_events_days=1, model_usage_days=1, batch_size=2
)
OLD = timedelta(days=2)


async def _scene(db: asyncpg.Connection) -> dict[str, list[object]]:
    """Rows of this test's own, old and young, in every table retention touches; returns
    the keys of the rows that must stay and of those that must go, per table."""
    user = uuid.uuid4()
    await db.execute(
        "INSERT INTO users (id, name, password_hash) VALUES ($1, $2, 'x')", user, unique_name("r")
    )
    request = uuid.uuid4()
    await db.execute(
        "INSERT INTO requests (id, user_id, kind) VALUES ($1, $2, 'plan.generate')", request, user
    )
    consumer = unique_name("c")
    old_commands = [uuid.uuid4() for _ in range(7)]
    young_command = uuid.uuid4()
    for command in old_commands:
        await db.execute(
            "INSERT INTO inbox (consumer, command_id, user_id, applied_at) "
            "VALUES ($1, $2, $3, now() - $4::interval)",
            consumer,
            command,
            user,
            OLD,
        )
    await db.execute(
        "INSERT INTO inbox (consumer, command_id, user_id) VALUES ($1, $2, $3)",
        consumer,
        young_command,
        user,
    )

    async def event(published: str | None) -> uuid.UUID:
        event_id = uuid.uuid4()
        await db.execute(
            "INSERT INTO outbox (event_id, topic, key, envelope, created_at, published_at) "
            f"VALUES ($1, 't', '\\x00', '{{}}', now() - $2::interval, {published or 'NULL'})",
            event_id,
            OLD,
        )
        return event_id

    sent_old = [await event("now() - '2 days'::interval") for _ in range(3)]
    unsent_old = await event(None)
    sent_young = await event("now()")

    for seq in range(1, 4):
        await db.execute(
            "INSERT INTO request_events (request_id, seq, user_id, body, created_at) "
            "VALUES ($1, $2, $3, '{}', now() - $4::interval)",
            request,
            seq,
            user,
            OLD,
        )
    await db.execute(
        "INSERT INTO request_events (request_id, seq, user_id, body) VALUES ($1, 4, $2, '{}')",
        request,
        user,
    )
    purpose = unique_name("p")
    for age in (OLD, OLD, timedelta(0)):
        await db.execute(
            "INSERT INTO llm_usage (service, purpose, model, prompt_tokens, completion_tokens, "
            "latency_ms, outcome, created_at) VALUES ('planner', $1, 'm', 1, 1, 1, 'ok', "
            "now() - $2::interval)",
            purpose,
            age,
        )
    keys = [unique_name("k") for _ in range(3)]
    for key, expiry in zip(keys, ("- '1 hour'", "- '1 second'", "+ '1 hour'"), strict=True):
        await db.execute(
            "INSERT INTO plan_cache (id, cache_key, plan, expires_at) "
            f"VALUES ($1, $2, '{{}}', now() {expiry}::interval)",
            uuid.uuid4(),
            key,
        )
    return {
        "inbox": [consumer, young_command],
        "outbox": [*sent_old, unsent_old, sent_young],
        "request_events": [request],
        "llm_usage": [purpose],
        "plan_cache": keys,
    }


async def _left(db: asyncpg.Connection, scene: dict[str, list[object]]) -> dict[str, object]:
    consumer, _ = scene["inbox"]
    outbox = scene["outbox"]
    return {
        "inbox": await db.fetchval(
            "SELECT array_agg(command_id) FROM inbox WHERE consumer = $1", consumer
        ),
        "outbox": set(
            await db.fetchval(
                "SELECT array_agg(event_id) FROM outbox WHERE event_id = ANY($1::uuid[])", outbox
            )
        ),
        "request_events": await db.fetchval(
            "SELECT array_agg(seq ORDER BY seq) FROM request_events WHERE request_id = $1",
            scene["request_events"][0],
        ),
        "llm_usage": await db.fetchval(
            "SELECT count(*) FROM llm_usage WHERE purpose = $1", scene["llm_usage"][0]
        ),
        "plan_cache": await db.fetchval(
            "SELECT array_agg(cache_key) FROM plan_cache WHERE cache_key = ANY($1::text[])",
            scene["plan_cache"],
        ),
    }


async def test_retention_deletes_old_rows_in_batches_and_keeps_young_and_undelivered_ones(
    test_env: SessionEnv, admin_db: asyncpg.Connection
) -> None:
    scene = await _scene(admin_db)
    before = await _left(admin_db, scene)

    dry = {t.table: t.rows for t in await run_retention(test_env.admin_dsn, AGES, dry_run=True)}
    assert await _left(admin_db, scene) == before, "a dry run deleted something"
    assert dry["inbox"] >= 7
    assert dry["outbox"] >= 3
    assert dry["request_events"] >= 3
    assert dry["llm_usage"] >= 2
    assert dry["plan_cache"] >= 2

    done = {t.table: t for t in await run_retention(test_env.admin_dsn, AGES)}
    assert done["inbox"].rows >= 7
    assert done["inbox"].batches >= 4, "7 rows in batches of 2"
    left = await _left(admin_db, scene)
    assert left["inbox"] == [scene["inbox"][1]]
    unsent_old, sent_young = scene["outbox"][-2:]
    assert left["outbox"] == {unsent_old, sent_young}
    assert left["request_events"] == [4]
    assert left["llm_usage"] == 1
    assert left["plan_cache"] == [scene["plan_cache"][2]]
    # The request and its result stay: only its stored progress went.
    assert await admin_db.fetchval(
        "SELECT count(*) FROM requests WHERE id = $1", scene["request_events"][0]
    )

    again = {t.table: t.rows for t in await run_retention(test_env.admin_dsn, AGES)}
    assert again["inbox"] == 0 or again["inbox"] < done["inbox"].rows


async def test_storing_a_plan_in_the_cache_no_longer_deletes_expired_entries(
    test_env: SessionEnv, admin_db: asyncpg.Connection
) -> None:
    expired = unique_name("expired")
    await admin_db.execute(
        "INSERT INTO plan_cache (id, cache_key, plan, expires_at) "
        "VALUES ($1, $2, '{}', now() - '1 hour'::interval)",
        uuid.uuid4(),
        expired,
    )
    pool = await create_pool(test_env.app_dsn, max_size=1)
    try:
        async with system_transaction(pool) as conn:
            await planner_repo.store_cached_result(conn, unique_name("fresh"), {"plan": 1}, 60)
    finally:
        await pool.close()
    still = await admin_db.fetchval("SELECT count(*) FROM plan_cache WHERE cache_key = $1", expired)
    assert still == 1, "the command transaction deleted expired cache rows"


async def test_the_operator_command_reports_what_retention_would_delete(
    test_env: SessionEnv,
) -> None:
    env = {**os.environ, "DATABASE_URL": test_env.admin_dsn, "EXAMMENTOR_RETENTION_BATCH_SIZE": "3"}
    proc = await asyncio.create_subprocess_exec(
        python(),
        "-m",
        "exammentor.ops.cli",
        "retention",
        "run",
        "--dry-run",
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    tables = [line.split()[0] for line in lines[:-1]]
    assert tables == ["inbox", "outbox", "request_events", "llm_usage", "plan_cache"]
    assert "would delete" in lines[0]
    assert "(older than 30 days)" in lines[0]
    assert lines[-1].startswith("would delete ")
