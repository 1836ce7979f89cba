"""Transactional outbox: events are rows written in the same transaction as the change they
describe, and a relay publishes them to Kafka afterwards.

The guarantees, as the AsyncAPI document states them:

- **at least once**: a row is marked published only after Kafka acknowledged it (acks=all,
  idempotent producer); a relay that dies between the two sends it again, with the same
  ``event_id``, so consumers deduplicate by ``event_id``;
- **each user's events in commit order**: a transaction that writes events takes a lock on
  their key (the user) until it commits, so of two transactions with events for one user the
  later to commit also has the higher row ids; and one relay at a time publishes the whole
  table in id order (the leader holds a session advisory lock; the relays of the other
  replicas stand by and take over when its connection goes away).
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
LEADER_LOCK = 0x0E7B_0C5A
"""Session advisory lock held by the one relay that publishes (an arbitrary constant)."""


async def add_event(conn: Connection, topic_prefix: str, event: EventEnvelope) -> None:
    """Writes ``event`` to the outbox inside the caller's transaction."""
    headers: dict[str, Any] = {
        "event-type": event.type,
        "event-version": str(event.version),
        "content-type": "application/json",
        **inject_headers(),
    }
    # One statement: the lock (held until commit: another transaction with events for this
    # key waits for it, so its rows get higher ids and commit later, and the relay's id order
    # is each user's commit order), the row, and the wake-up (delivered at commit only).
    await conn.execute(
        "WITH locked AS (SELECT pg_advisory_xact_lock("
        "hashtextextended('outbox:' || encode($3::bytea, 'hex'), 0))) "
        "INSERT INTO outbox (event_id, topic, key, envelope, headers) "
        "SELECT $1, $2, $3, $4, $5 FROM locked RETURNING pg_notify($6, '')",
        event.event_id,
        event_topic(topic_prefix, event.domain),
        event.key,
        event.model_dump(mode="json"),
        headers,
        _CHANNEL,
    )


class OutboxRelay:
    """Publishes unpublished outbox rows in id order, woken by NOTIFY or a poll interval,
    while it leads; stands by otherwise (one leader across every replica of every service).
    """

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
        self.leading = False

    async def start(self) -> None:
        """Starts listening and relaying in the background."""
        self._listener = await self._pool.acquire()
        await self._listener.add_listener(_CHANNEL, self._on_notify)
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        """Stops; a leader first publishes what is left (events of the commands it drained),
        then gives up the lead for another replica's relay."""
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.leading:
            try:
                while await self.relay_once() == self._batch_size:
                    pass
            except Exception:
                log.exception("last outbox pass failed; the next leader sends the rest")
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.remove_listener(_CHANNEL, self._on_notify)
            if self.leading:
                with contextlib.suppress(Exception):
                    await self._listener.execute("SELECT pg_advisory_unlock($1)", LEADER_LOCK)
            self.leading = False
            await self._pool.release(self._listener)  # type: ignore[arg-type]  # it came from acquire()
            self._listener = None

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def _lead(self) -> bool:
        """Takes the lead if no relay has it; held by the listener connection's session, so
        it goes when this process (or its connection) does."""
        if not self.leading and self._listener is not None:
            self.leading = bool(
                await self._listener.fetchval("SELECT pg_try_advisory_lock($1)", LEADER_LOCK)
            )
            if self.leading:
                log.info("outbox relay leads", service=self._service)
        return self.leading

    async def _run(self) -> None:
        while True:
            try:
                if await self._lead():
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
        """Publishes one batch in id order; returns how many rows it published.

        Rows are marked as they are acknowledged, so a publish that fails mid-batch leaves
        only the rest for the next pass (nothing already sent is sent again).
        """
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT id, topic, key, envelope, headers FROM outbox "
                "WHERE published_at IS NULL ORDER BY id LIMIT $1",
                self._batch_size,
            )
            metrics.OUTBOX_BACKLOG.labels(self._service).set(len(rows))
            sent: list[int] = []
            try:
                # One by one and awaited: a failure stops the batch where it is, so no later
                # event of a user overtakes an earlier one.
                for row in rows:
                    await self._broker.publish(
                        row["envelope"],
                        row["topic"],
                        key=bytes(row["key"]),
                        headers=row["headers"],
                    )
                    sent.append(row["id"])
            finally:
                if sent:
                    await conn.execute(
                        "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])",
                        sent,
                    )
                    metrics.OUTBOX_PUBLISHED.labels(self._service).inc(len(sent))
        return len(sent)
