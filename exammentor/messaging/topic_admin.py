"""Creating the project's Kafka topics (brokers do not auto-create them); the names are part
of the contract (:mod:`exammentor.contracts.kafka_topics`) and re-exported here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from exammentor.contracts.kafka_topics import (
    EVENT_DOMAINS,
    SERVICES,
    all_topics,
    command_topic,
    dead_letter_topic,
    event_topic,
)
from exammentor.settings import KafkaSettings

__all__ = [
    "EVENT_DOMAINS",
    "SERVICES",
    "MissingTopicError",
    "all_topics",
    "command_topic",
    "consumer_lag",
    "dead_letter_topic",
    "ensure_topics",
    "event_topic",
    "missing_topics",
]


async def ensure_topics(settings: KafkaSettings) -> list[str]:
    """Creates the missing topics; returns the names it created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [t for t in all_topics(settings.topic_prefix) if t not in existing]
        if wanted:
            # Another runner may create them between list and create: that is fine.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [
                        NewTopic(
                            name=t,
                            num_partitions=settings.partitions,
                            replication_factor=settings.replication_factor,
                            # Dead letters are kept for a month for operators to inspect.
                            topic_configs={"retention.ms": str(30 * 24 * 3600 * 1000)}
                            if t.endswith(".dlq")
                            else {},
                        )
                        for t in wanted
                    ]
                )
        return wanted
    finally:
        await admin.close()


class MissingTopicError(LookupError):
    """A topic the project needs is not on the broker (``exammentor topics create``)."""


async def consumer_lag(kafka: KafkaSettings, service: str) -> int:
    """Messages of ``service``'s command topic its consumer group has not committed yet."""
    topic = command_topic(kafka.topic_prefix, service)
    group = f"{kafka.topic_prefix}.{service}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers, enable_auto_commit=False)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
        partitions = sorted(p["partition"] for p in described.get("partitions", []))
        if described.get("error_code", 0) or not partitions:
            raise MissingTopicError(f"topic {topic} does not exist")
        tps = [TopicPartition(topic, p) for p in partitions]
        await consumer.start()
        try:
            ends = await consumer.end_offsets(tps)
        finally:
            await consumer.stop()
        committed = await admin.list_consumer_group_offsets(group, partitions=tps)
    finally:
        await admin.close()
    lag = 0
    for tp in tps:
        meta = committed.get(tp)
        done = meta.offset if meta is not None and meta.offset >= 0 else 0
        lag += max(0, ends[tp] - done)
    return lag


async def missing_topics(bootstrap_servers: str, topics: Collection[str]) -> set[str]:
    """Of ``topics``, those the cluster does not have (raises when it cannot be asked)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=5000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
    finally:
        await admin.close()
    return set(topics) - existing
