"""What the outbox tests share: a migrated database of their own (so the one relay that
leads is the test's), an echo event written as a command writes it, and the texts of the
rows marked published."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from exammentor.contracts.envelope import EventEnvelope
from exammentor.contracts.events import SystemEchoedV1
from exammentor.db import Pool, create_pool, user_transaction
from exammentor.messaging.outbox import add_event
from exammentor.ops import migrate
from tests.conftest import SessionEnv
from tests.upgrade.database import app_dsn, scratch_database


@asynccontextmanager
async def outbox_pool(test_env: SessionEnv, prefix: str) -> AsyncIterator[Pool]:
    """A service pool on a fresh, migrated database named from ``prefix``."""
    async with scratch_database(test_env.servers.admin_dsn, prefix) as dsn:
        await migrate.upgrade(dsn)
        made = await create_pool(app_dsn(dsn), max_size=5)
        try:
            yield made
        finally:
            await made.close()


async def write(pool: Pool, prefix: str, user: uuid.UUID, text: str) -> None:
    """A ``system.echoed`` event of ``user`` with ``text``, in the outbox."""
    event = EventEnvelope(
        type=SystemEchoedV1.TYPE,
        version=SystemEchoedV1.VERSION,
        user_id=user,
        payload=SystemEchoedV1(text=text, service="planner").model_dump(),
    )
    async with user_transaction(pool, user) as conn:
        await add_event(conn, prefix, event)


async def published(pool: Pool) -> set[str]:
    """The texts of the rows marked published."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT envelope->'payload'->>'text' AS text FROM outbox WHERE published_at IS NOT NULL"
        )
    return {r["text"] for r in rows}
