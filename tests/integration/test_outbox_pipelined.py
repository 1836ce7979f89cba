"""The relay hands a pass's rows to the producer without awaiting each acknowledgement, and
still keeps the outbox's promise: each user's events in id order, each row marked once; and
when a row's delivery fails after it was handed over, the other users' rows of the pass are
marked and its user's later rows are not. On a database of its own, so the only relay
reading its outbox is the test's."""

from __future__ import annotations

import asyncio
import functools
import json
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from faststream.kafka import KafkaBroker

from exammentor.db import Pool
from exammentor.messaging.kafka import create_broker
from exammentor.messaging.outbox import OutboxRelay
from exammentor.messaging.topic_admin import ensure_topics, event_topic, missing_topics
from tests.conftest import SessionEnv
from tests.infra import unique_name
from tests.integration.outbox_support import outbox_pool, published, write

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool(test_env: SessionEnv) -> AsyncIterator[Pool]:
    async with outbox_pool(test_env, "exammentor_pipe_") as made:
        yield made


async def test_a_backlog_on_two_topics_goes_out_in_each_users_id_order_each_row_marked_once(
    test_env: SessionEnv, pool: Pool
) -> None:
    users = [uuid.uuid4() for _ in range(6)]
    # Two topics (the same domain under two prefixes): a user's events alternate between
    # them in runs, so a pass takes several waves.
    prefixes = [unique_name("pipa"), unique_name("pipb")]
    kafka = test_env.kafka()
    for prefix in prefixes:
        await ensure_topics(kafka.model_copy(update={"topic_prefix": prefix}))
    total = 0
    for n in range(60):
        for i, user in enumerate(users):
            await write(pool, prefixes[(n // (2 + i)) % 2], user, f"{user}-{n}")
            total += 1

    broker = create_broker(kafka, "pipelined-relay", 5)
    await broker.start()
    relay = OutboxRelay(pool, broker, "pipelined", batch_size=100)
    passes: list[int] = []
    try:
        while marked := await relay.relay_once():
            passes.append(marked)
    finally:
        await broker.stop()
    # Each row marked once: the passes' counts add up to the rows, and every row is marked.
    assert sum(passes) == total
    assert len(await published(pool)) == total

    async with pool.acquire() as conn:
        stored = await conn.fetch("SELECT event_id, topic, key FROM outbox ORDER BY id")
    expected: dict[tuple[str, bytes], list[str]] = defaultdict(list)
    for r in stored:
        expected[(r["topic"], bytes(r["key"]))].append(str(r["event_id"]))

    consumer = AIOKafkaConsumer(
        *(event_topic(prefix, "system") for prefix in prefixes),
        bootstrap_servers=kafka.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen: dict[tuple[str, bytes], list[str]] = defaultdict(list)
    try:
        async with asyncio.timeout(60):
            while sum(map(len, seen.values())) < total:
                record = await consumer.getone()
                assert record.key is not None
                seen[(record.topic, record.key)].append(json.loads(record.value)["event_id"])
    finally:
        await consumer.stop()
    # Every user's events, on each topic, once each and in id order (one key is one partition).
    assert seen == expected


@pytest.mark.parametrize("checks_topics", [False, True], ids=["no-check", "topic-check"])
async def test_a_delivery_failing_after_handover_leaves_its_users_later_rows_unmarked(
    test_env: SessionEnv, pool: Pool, checks_topics: bool
) -> None:
    """A topic deleted after the producer learnt of it: the row is handed over at once (the
    producer knows its partitions) and its delivery fails afterwards. Bob's rows, later in
    the pass, are acknowledged and marked; none of Alice's is, neither her second row on the
    same topic nor her third on another. Without a topic check the pass raises the failure;
    with one, the topic is held and the pass ends normally."""
    bootstrap = test_env.servers.kafka_bootstrap
    doomed_prefix, kept_prefix = unique_name("doom"), unique_name("kept")
    doomed, kept = event_topic(doomed_prefix, "system"), event_topic(kept_prefix, "system")
    kafka = test_env.kafka()
    for prefix in (doomed_prefix, kept_prefix):
        await ensure_topics(kafka.model_copy(update={"topic_prefix": prefix}))
    # A short request timeout: the failed batch (no leader once the topic is gone) expires
    # after 2 s instead of aiokafka's 40.
    broker = KafkaBroker(bootstrap, acks="all", enable_idempotence=True, request_timeout_ms=2000)
    await broker.start()
    try:
        for topic in (doomed, kept):  # the producer learns both topics' partitions
            await broker.publish(b"warm-up", topic, key=b"warm-up")
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.delete_topics([doomed])
        finally:
            await admin.close()
        async with asyncio.timeout(30):
            while not await missing_topics(bootstrap, [doomed]):
                await asyncio.sleep(0.1)

        alice, bob = uuid.uuid4(), uuid.uuid4()
        await write(pool, doomed_prefix, alice, "alice-1")
        await write(pool, doomed_prefix, alice, "alice-2")
        await write(pool, kept_prefix, alice, "alice-3")
        await write(pool, kept_prefix, bob, "bob-1")
        await write(pool, kept_prefix, bob, "bob-2")

        relay = OutboxRelay(
            pool,
            broker,
            "failing",
            missing_topics=functools.partial(missing_topics, bootstrap) if checks_topics else None,
            publish_timeout_s=20.0,  # the delivery fails on its own before this
        )
        if checks_topics:
            assert await relay.relay_once() == 2
            assert relay.held_topics == [doomed]
        else:
            with pytest.raises(KafkaError):
                await relay.relay_once()
            assert relay.held_topics == []
        assert await published(pool) == {"bob-1", "bob-2"}
    finally:
        await broker.stop()
