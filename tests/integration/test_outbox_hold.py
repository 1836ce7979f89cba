"""An outbox row whose topic does not exist holds back only its own user's later events, not
the whole outbox; its events go out, in order, once the topic exists; and a relay stops in
bounded time with such a row waiting. On a database of its own, so the one relay that leads
is this test's."""

from __future__ import annotations

import asyncio
import functools
import json
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer

from exammentor.db import Pool
from exammentor.messaging.kafka import create_broker
from exammentor.messaging.outbox import OutboxRelay
from exammentor.messaging.topic_admin import ensure_topics, event_topic, missing_topics
from exammentor.settings import KafkaSettings
from tests.conftest import SessionEnv
from tests.infra import unique_name
from tests.integration.outbox_support import outbox_pool, published, write

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool(test_env: SessionEnv) -> AsyncIterator[Pool]:
    async with outbox_pool(test_env, "exammentor_hold_") as made:
        yield made


async def test_a_missing_topic_holds_only_its_users_later_events_until_it_exists(
    test_env: SessionEnv, pool: Pool
) -> None:
    present = unique_name("hold")
    absent = unique_name("gone")  # no topic is made under this prefix until the end
    kafka = test_env.kafka().model_copy(update={"topic_prefix": present})
    await ensure_topics(kafka)
    alice, bob = uuid.uuid4(), uuid.uuid4()
    # In id order: Alice's event to the missing topic, Alice's next one, then Bob's.
    await write(pool, absent, alice, "alice-1")
    await write(pool, present, alice, "alice-2")
    await write(pool, present, bob, "bob-1")

    broker = create_broker(kafka, "hold-relay", 5)
    await broker.start()
    relay = OutboxRelay(
        pool,
        broker,
        "hold",
        poll_interval_s=0.1,
        missing_topics=functools.partial(missing_topics, kafka.bootstrap_servers),
        publish_timeout_s=2.0,
        hold_max_s=0.5,
    )
    await relay.start()
    try:
        async with asyncio.timeout(30):
            while "bob-1" not in await published(pool):
                await asyncio.sleep(0.1)
        # Bob's event went out past Alice's held one; Alice's next did not overtake it.
        assert await published(pool) == {"bob-1"}
        assert relay.held_topics == [event_topic(absent, "system")]

        await ensure_topics(KafkaSettings(**{**kafka.model_dump(), "topic_prefix": absent}))
        async with asyncio.timeout(30):
            while await published(pool) != {"alice-1", "alice-2", "bob-1"}:
                await asyncio.sleep(0.1)
        assert relay.held_topics == []
    finally:
        await relay.stop()
        await broker.stop()

    # Alice's two events arrived, each on its topic, the first before the second was sent.
    for prefix, text in ((absent, "alice-1"), (present, "alice-2")):
        consumer = AIOKafkaConsumer(
            event_topic(prefix, "system"),
            bootstrap_servers=kafka.bootstrap_servers,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            async with asyncio.timeout(30):
                texts = []
                while text not in texts:
                    record = await consumer.getone()
                    texts.append(json.loads(record.value)["payload"]["text"])
        finally:
            await consumer.stop()
    async with pool.acquire() as conn:
        order = await conn.fetch(
            "SELECT envelope->'payload'->>'text' AS text, published_at FROM outbox "
            "WHERE key = $1 ORDER BY id",
            str(alice).encode(),
        )
    assert [r["text"] for r in order] == ["alice-1", "alice-2"]
    assert order[0]["published_at"] <= order[1]["published_at"]


async def test_a_relay_stops_in_bounded_time_with_an_event_it_cannot_send(
    test_env: SessionEnv, pool: Pool
) -> None:
    """Without knowing the topic is missing (no broker check), every publish of the row
    times out; stopping must not wait for it forever (a worker outlived its grace period and
    was killed for it)."""
    kafka = test_env.kafka().model_copy(update={"topic_prefix": unique_name("stop")})
    await write(pool, unique_name("nowhere"), uuid.uuid4(), "stuck")
    broker = create_broker(kafka, "stop-relay", 5)
    await broker.start()
    relay = OutboxRelay(
        pool, broker, "stop", poll_interval_s=0.1, publish_timeout_s=1.0, stop_timeout_s=3.0
    )
    await relay.start()
    try:
        async with asyncio.timeout(10):
            while not relay.leading:
                await asyncio.sleep(0.05)
    finally:
        async with asyncio.timeout(15):  # the stop bound (3 s) and a margin, not a benchmark
            await relay.stop()
        await broker.stop()
    assert await published(pool) == set()
