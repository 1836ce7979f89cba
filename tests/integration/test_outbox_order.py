"""The outbox's promise, as the AsyncAPI document states it: every event arrives (at least
once), each user's in commit order, duplicates only as the same ``event_id`` - with several
relays running, as with several replicas of every service."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer

from exammentor.contracts.envelope import EventEnvelope
from exammentor.contracts.events import SystemEchoedV1
from exammentor.db import Pool, create_pool, user_transaction
from exammentor.messaging.kafka import create_broker
from exammentor.messaging.outbox import LEADER_LOCK, OutboxRelay, add_event
from exammentor.messaging.topic_admin import ensure_topics, event_topic
from tests.conftest import SessionEnv
from tests.infra import unique_name

pytestmark = pytest.mark.integration

USERS = 5
EVENTS_PER_USER = 100


@pytest.fixture
async def pool(test_env: SessionEnv) -> AsyncIterator[Pool]:
    made = await create_pool(test_env.app_dsn, max_size=20)
    yield made
    await made.close()


async def test_two_relays_deliver_every_event_in_each_users_commit_order(
    test_env: SessionEnv, pool: Pool
) -> None:
    prefix = unique_name("order")
    kafka = test_env.kafka().model_copy(update={"topic_prefix": prefix})
    await ensure_topics(kafka)
    topic = event_topic(prefix, "system")
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka.bootstrap_servers,
        group_id=f"{prefix}.reader",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    brokers = [create_broker(kafka, f"relay-{i}", 5) for i in range(2)]
    relays = [OutboxRelay(pool, b, f"relay-{i}", batch_size=50) for i, b in enumerate(brokers)]
    for broker in brokers:
        await broker.start()
    for relay in relays:
        await relay.start()

    users = [uuid.uuid4() for _ in range(USERS)]
    # (event_id, monotonic time its write began, monotonic time its commit returned)
    written: dict[uuid.UUID, list[tuple[str, float, float]]] = defaultdict(list)

    async def write(user: uuid.UUID, n: int) -> None:
        event = EventEnvelope(
            type=SystemEchoedV1.TYPE,
            version=SystemEchoedV1.VERSION,
            user_id=user,
            payload=SystemEchoedV1(text=f"{user}-{n}", service="planner").model_dump(),
        )
        began = asyncio.get_running_loop().time()
        async with user_transaction(pool, user) as conn:
            await add_event(conn, prefix, event)
            # Work after the event, so transactions of one user overlap in time.
            await conn.execute("SELECT pg_sleep($1)", random.uniform(0, 0.01))
        written[user].append((str(event.event_id), began, asyncio.get_running_loop().time()))

    async def writer(jobs: list[tuple[uuid.UUID, int]]) -> None:
        for user, n in jobs:
            await write(user, n)

    jobs = [(user, n) for user in users for n in range(EVENTS_PER_USER)]
    random.Random(7).shuffle(jobs)
    lanes = 25
    try:
        await asyncio.gather(*(writer(jobs[i::lanes]) for i in range(lanes)))

        seen: dict[uuid.UUID, list[str]] = defaultdict(list)
        bodies: dict[str, bytes] = {}
        distinct = 0
        async with asyncio.timeout(120):
            while distinct < USERS * EVENTS_PER_USER:
                record = await consumer.getone()
                envelope = json.loads(record.value)
                event_id = envelope["event_id"]
                # A duplicate is only ever the same event again.
                assert bodies.setdefault(event_id, record.value) == record.value
                if event_id not in seen[uuid.UUID(envelope["user_id"])]:
                    seen[uuid.UUID(envelope["user_id"])].append(event_id)
                    distinct += 1
        # One relay publishes at a time, across every process on this database (the
        # session's workers run relays too, so the leader may be one of theirs).
        async with pool.acquire() as conn:
            leaders = await conn.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND classid = 0 AND objid = $1 AND objsubid = 1 "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                LEADER_LOCK,
            )
        assert leaders == 1
        assert sum(relay.leading for relay in relays) <= 1
    finally:
        for relay in relays:
            await relay.stop()
        for broker in brokers:
            await broker.stop()
        await consumer.stop()

        async with pool.acquire() as conn:
            stored = {
                user: [
                    str(r["event_id"])
                    for r in await conn.fetch(
                        "SELECT event_id FROM outbox WHERE key = $1 ORDER BY id", str(user).encode()
                    )
                ]
                for user in users
            }

    for user in users:
        # Each user's events arrive in outbox order, which is their commit order (the next
        # test shows why), and nothing is lost.
        assert seen[user] == stored[user]
        assert sorted(seen[user]) == sorted(e for e, _, _ in written[user])
        # And what the client saw commit before another write began comes before it.
        position = {event_id: i for i, event_id in enumerate(seen[user])}
        for first, _, committed_at in written[user]:
            for second, began, _ in written[user]:
                if committed_at < began:
                    assert position[first] < position[second]


async def test_a_second_transaction_with_events_for_a_user_waits_for_the_first(
    test_env: SessionEnv, pool: Pool
) -> None:
    """Why id order is commit order: of two overlapping transactions with events for one
    user, the second cannot write its event until the first has committed."""
    user = uuid.uuid4()

    def event(text: str) -> EventEnvelope:
        return EventEnvelope(
            type=SystemEchoedV1.TYPE,
            version=SystemEchoedV1.VERSION,
            user_id=user,
            payload=SystemEchoedV1(text=text, service="planner").model_dump(),
        )

    first, second = event("first"), event("second")
    prefix = unique_name("lock")
    # The rows go to the relay of the session's workers too: their topic must exist.
    await ensure_topics(test_env.kafka().model_copy(update={"topic_prefix": prefix}))
    async with pool.acquire() as one, pool.acquire() as other:
        t1 = one.transaction()
        await t1.start()
        await add_event(one, prefix, first)
        t2 = other.transaction()
        await t2.start()
        blocked = asyncio.create_task(add_event(other, prefix, second))
        # Wait until the second transaction is seen waiting on the lock, then commit the first.
        async with asyncio.timeout(30):
            while not await one.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'",
                other.get_server_pid(),
            ):
                await asyncio.sleep(0.05)
        assert not blocked.done()
        await t1.commit()
        await blocked
        await t2.commit()
        ids = await one.fetch(
            "SELECT event_id FROM outbox WHERE event_id = ANY($1::uuid[]) ORDER BY id",
            [first.event_id, second.event_id],
        )
    assert [r["event_id"] for r in ids] == [first.event_id, second.event_id]
