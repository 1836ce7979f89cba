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

A topic that does not exist (an event domain added without ``exammentor topics create``, or a
row of an old release naming a topic no longer made) would stop every event behind it. Its
rows are **held** instead: the relay checks with the broker that the topic is missing, sets
its rows aside, and publishes the rest, except the later events of a user with a held event
(each user's order stands). It looks for the topic again with a growing pause (up to a
minute), and the held rows go out, in order, once it exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass

from faststream.kafka import KafkaBroker

from exammentor import metrics
from exammentor.contracts.envelope import EventEnvelope
from exammentor.db import Connection, Pool, connection
from exammentor.logs import get_logger
from exammentor.messaging.pipeline import OutboxRow
from exammentor.messaging.topic_admin import event_topic
from exammentor.telemetry import inject_headers

log = get_logger(__name__)

CHANNEL = "exammentor_outbox"
"""NOTIFY channel: the outbox gained rows (at commit); wakes the relay."""
LEADER_LOCK = 0x0E7B_0C5A
"""Session advisory lock held by the one relay that publishes (an arbitrary constant)."""

MissingTopics = Callable[[Collection[str]], Awaitable[set[str]]]
"""Of the topics given, those the broker lacks
(:func:`exammentor.messaging.topic_admin.missing_topics`)."""

_UNPUBLISHED = (
    "SELECT id, topic, key, envelope, headers FROM outbox o WHERE published_at IS NULL "
    # Rows of a held topic wait, and so does every later row of their key.
    "AND NOT (topic = ANY($2::text[])) "
    "AND (cardinality($2::text[]) = 0 OR NOT EXISTS (SELECT 1 FROM outbox h "
    "WHERE h.published_at IS NULL AND h.topic = ANY($2::text[]) AND h.key = o.key "
    "AND h.id < o.id)) "
    "ORDER BY id LIMIT $1"
)


@dataclass
class _Hold:
    """A missing topic's rows set aside until ``until`` (monotonic), then looked at again."""

    until: float
    pause_s: float


def outbox_row(topic_prefix: str, event: EventEnvelope) -> OutboxRow:
    """``event`` as the outbox stores it: its topic, key, body and Kafka headers."""
    return OutboxRow(
        event_id=event.event_id,
        topic=event_topic(topic_prefix, event.domain),
        key=event.key,
        envelope=event.model_dump(mode="json"),
        headers={
            "event-type": event.type,
            "event-version": str(event.version),
            "content-type": "application/json",
            **inject_headers(),
        },
    )


async def add_event(conn: Connection, topic_prefix: str, event: EventEnvelope) -> None:
    """Writes ``event`` to the outbox inside the caller's transaction (a command's events
    go with its result, in :func:`exammentor.messaging.pipeline.finish_attempt`)."""
    row = outbox_row(topic_prefix, event)
    # One statement: the lock (held until commit: another transaction with events for this
    # key waits for it, so its rows get higher ids and commit later, and the relay's id order
    # is each user's commit order), the row, and the wake-up (delivered at commit only).
    await conn.execute(
        "WITH locked AS (SELECT pg_advisory_xact_lock("
        "hashtextextended('outbox:' || encode($3::bytea, 'hex'), 0))) "
        "INSERT INTO outbox (event_id, topic, key, envelope, headers) "
        "SELECT $1, $2, $3, $4, $5 FROM locked RETURNING pg_notify($6, '')",
        row.event_id,
        row.topic,
        row.key,
        row.envelope,
        row.headers,
        CHANNEL,
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
        missing_topics: MissingTopics | None = None,
        publish_timeout_s: float = 10.0,
        stop_timeout_s: float = 15.0,
        hold_max_s: float = 60.0,
    ) -> None:
        self._pool = pool
        self._broker = broker
        self._service = service
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._missing_topics = missing_topics
        self._publish_timeout_s = publish_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._hold_max_s = hold_max_s
        self._held: dict[str, _Hold] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener: Connection | None = None
        self.leading = False

    async def start(self) -> None:
        """Starts listening and relaying in the background."""
        self._listener = await self._pool.acquire()
        await self._listener.add_listener(CHANNEL, self._on_notify)
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
                async with asyncio.timeout(self._stop_timeout_s):
                    while await self.relay_once() == self._batch_size:
                        pass
            except Exception:
                log.exception("last outbox pass failed; the next leader sends the rest")
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.remove_listener(CHANNEL, self._on_notify)
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
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation
            # that arrives as the event is set, and this loop would then never stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_interval_s):
                    await self._wake.wait()

    @property
    def held_topics(self) -> list[str]:
        """The topics whose rows are set aside because the broker lacks them."""
        return sorted(self._held)

    async def relay_once(self) -> int:
        """Publishes one batch in id order; returns how many rows it published.

        Rows are marked as they are acknowledged, so a publish that fails mid-batch leaves
        only the rest for the next pass (nothing already sent is sent again). A failure
        stops the batch, unless the broker says the row's topic does not exist: then the
        topic is held and the batch goes on without its rows and their keys' later rows.
        """
        await self._look_at_held_topics()
        held = list(self._held)
        async with connection(self._pool) as conn:
            rows = await conn.fetch(_UNPUBLISHED, self._batch_size, held)
            backlog = len(rows)
            if held:
                backlog = await conn.fetchval(
                    "SELECT count(*) FROM outbox WHERE published_at IS NULL"
                )
            metrics.OUTBOX_BACKLOG.labels(self._service).set(backlog)
            sent: list[int] = []
            waiting: set[bytes] = set()  # keys with an earlier row not sent in this pass
            try:
                # One by one and awaited: a failure stops the batch where it is, so no later
                # event of a user overtakes an earlier one.
                for row in rows:
                    key = bytes(row["key"])
                    if key in waiting or row["topic"] in self._held:
                        waiting.add(key)
                        continue
                    try:
                        await asyncio.wait_for(
                            self._broker.publish(
                                row["envelope"], row["topic"], key=key, headers=row["headers"]
                            ),
                            self._publish_timeout_s,
                        )
                    except Exception:
                        if not await self._hold_if_missing(row["topic"]):
                            raise
                        waiting.add(key)
                        continue
                    sent.append(row["id"])
            finally:
                if sent:
                    await conn.execute(
                        "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])",
                        sent,
                    )
                    metrics.OUTBOX_PUBLISHED.labels(self._service).inc(len(sent))
        return len(sent)

    async def _hold_if_missing(self, topic: str) -> bool:
        """Holds ``topic`` when the broker says it does not exist; False when it exists or
        the broker cannot say (then the failure is the broker's, and the batch stops)."""
        if self._missing_topics is None:
            return False
        try:
            missing = topic in await self._missing_topics([topic])
        except Exception:  # noqa: BLE001 - the broker is in trouble: not a missing topic
            return False
        if missing:
            self._held[topic] = _Hold(time.monotonic() + 1.0, 1.0)
            log.warning(
                "outbox: the topic does not exist; its events wait (exammentor topics create)",
                topic=topic,
                service=self._service,
            )
        return missing

    async def _look_at_held_topics(self) -> None:
        """Releases the held topics that exist now; pauses longer on those still missing."""
        now = time.monotonic()
        due = [topic for topic, hold in self._held.items() if hold.until <= now]
        if not due or self._missing_topics is None:
            return
        try:
            missing = await self._missing_topics(due)
        except Exception:  # noqa: BLE001 - ask again on the next pass
            return
        for topic in due:
            hold = self._held[topic]
            if topic in missing:
                hold.pause_s = min(hold.pause_s * 2, self._hold_max_s)
                hold.until = now + hold.pause_s
            else:
                del self._held[topic]
                log.info("outbox: the topic exists now; its events go out", topic=topic)
