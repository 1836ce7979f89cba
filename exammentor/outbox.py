"""Transactional outbox: events are rows written in the same transaction as the change they
describe, and a relay publishes them to Kafka afterwards (at least once; consumers dedupe by
``event_id``).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from faststream.kafka import KafkaBroker

from exammentor import metrics
from exammentor.contracts.envelope import EventEnvelope
from exammentor.db import Connection, Pool
from exammentor.logs import get_logger
from exammentor.telemetry import inject_headers
from exammentor.topics import event_topic

log = get_logger(__name__)

_CHANNEL = "exammentor_outbox"


async def add_event(conn: Connection, topic_prefix: str, event: EventEnvelope) -> None:
    """Writes ``event`` to the outbox inside the caller's transaction."""
    headers: dict[str, Any] = {
        "event-type": event.type,
        "event-version": str(event.version),
        "content-type": "application/json",
        **inject_headers(),
    }
    await conn.execute(
        "INSERT INTO outbox (event_id, topic, key, envelope, headers) VALUES ($1, $2, $3, $4, $5)",
        event.event_id,
        event_topic(topic_prefix, event.domain),
        event.key,
        event.model_dump(mode="json"),
        headers,
    )
    # Delivered at commit only, so the relay wakes exactly when there is something to send.
    await conn.execute("SELECT pg_notify($1, '')", _CHANNEL)


class OutboxRelay:
    """Publishes unpublished outbox rows in id order, woken by NOTIFY or a poll interval."""

    def __init__(
        self,
        pool: Pool,
        broker: KafkaBroker,
        service: str,
        *,
        batch_size: int = 200,
        poll_interval_s: float = 1.0,
    ) -> None:
        self._pool = pool
        self._broker = broker
        self._service = service
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener: Connection | None = None

    async def start(self) -> None:
        """Starts listening and relaying in the background."""
        self._listener = await self._pool.acquire()
        await self._listener.add_listener(_CHANNEL, self._on_notify)
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        """Finishes the batch in hand and stops."""
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.remove_listener(_CHANNEL, self._on_notify)
            await self._pool.release(self._listener)  # type: ignore[arg-type]  # it came from acquire()
            self._listener = None

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                while await self.relay_once() == self._batch_size:
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay pass failed; will retry")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_interval_s)

    async def relay_once(self) -> int:
        """Publishes one batch; returns how many rows it published."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT id, topic, key, envelope, headers FROM outbox "
                "WHERE published_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                self._batch_size,
            )
            if not rows:
                metrics.OUTBOX_BACKLOG.labels(self._service).set(0)
                return 0
            metrics.OUTBOX_BACKLOG.labels(self._service).set(len(rows))
            # Sent one by one and awaited, so a failure leaves the rest for the next pass and
            # the order of one user's events is kept.
            for row in rows:
                await self._broker.publish(
                    row["envelope"],
                    row["topic"],
                    key=bytes(row["key"]),
                    headers=row["headers"],
                )
            await conn.execute(
                "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])",
                [r["id"] for r in rows],
            )
        metrics.OUTBOX_PUBLISHED.labels(self._service).inc(len(rows))
        return len(rows)
