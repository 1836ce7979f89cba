"""The Kafka broker every process uses, set up with the project's delivery rules.

Producers are idempotent with ``acks=all``. Subscribers never auto-commit: an offset is
committed only after the handler returned, which :mod:`exammentor.commands` arranges to be
after the database transaction committed (or after the command was dead-lettered).
"""

from __future__ import annotations

import logging

from faststream.kafka import KafkaBroker

from exammentor.settings import KafkaSettings


def create_broker(settings: KafkaSettings, client_id: str, graceful_timeout: float) -> KafkaBroker:
    """A FastStream Kafka broker with an idempotent, acks=all producer.

    Args:
        settings: Where the cluster is.
        client_id: Names this process in broker logs and quotas.
        graceful_timeout: Seconds that stopping waits for in-flight handlers.
    """
    return KafkaBroker(
        settings.bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        allow_auto_create_topics=False,
        graceful_timeout=graceful_timeout,
        logger=logging.getLogger("exammentor.broker"),
        log_level=logging.INFO,
    )


async def broker_ready(broker: KafkaBroker) -> bool:
    """True when the broker answers a metadata request."""
    try:
        return bool(await broker.ping(timeout=2.0))
    except Exception:  # noqa: BLE001 - readiness reports, it does not raise
        return False
