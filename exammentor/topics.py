"""Kafka topic names, and their creation by the project (brokers do not auto-create them).

- ``{prefix}.cmd.{service}``: commands for one service, keyed by study session.
- ``{prefix}.cmd.{service}.dlq``: commands that failed validation or every retry.
- ``{prefix}.evt.{domain}``: versioned domain events for integrators, keyed by user.
"""

from __future__ import annotations

import contextlib

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from exammentor.settings import KafkaSettings

SERVICES = ("planner", "tutor", "quiz", "autopilot")
EVENT_DOMAINS = ("plan", "tutor", "quiz", "learner", "misconception", "autopilot", "system")


def command_topic(prefix: str, service: str) -> str:
    """The command topic of ``service``."""
    return f"{prefix}.cmd.{service}"


def dead_letter_topic(prefix: str, service: str) -> str:
    """The dead-letter topic of ``service``'s commands."""
    return f"{command_topic(prefix, service)}.dlq"


def event_topic(prefix: str, domain: str) -> str:
    """The event topic of one domain (``plan``, ``quiz`` ...)."""
    return f"{prefix}.evt.{domain}"


def all_topics(prefix: str) -> list[str]:
    """Every topic the project uses."""
    names = [command_topic(prefix, s) for s in SERVICES]
    names += [dead_letter_topic(prefix, s) for s in SERVICES]
    names += [event_topic(prefix, d) for d in EVENT_DOMAINS]
    return names


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
