"""Creating the project's Kafka topics (brokers do not auto-create them); the names are part
of the contract (:mod:`exammentor.contracts.topics`) and re-exported here.
"""

from __future__ import annotations

import contextlib

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from exammentor.contracts.topics import (
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
    "all_topics",
    "command_topic",
    "dead_letter_topic",
    "ensure_topics",
    "event_topic",
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
