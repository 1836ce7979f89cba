"""Transactional outbox: events are rows written in the same transaction as the change they
describe, and a relay publishes them to Kafka afterwards.

The guarantees, as the AsyncAPI document states them:

- **at least once**: a row is marked published only after Kafka acknowledged it (acks=all,
  idempotent producer), and only once every earlier row of its key in the same pass was
  acknowledged too; a relay that dies between the two sends it again, with the same
  ``event_id``, so consumers deduplicate by ``event_id``;
- **each user's events in commit order**: a transaction that writes events takes a lock on
  their key (the user) until it commits, so of two transactions with events for one user the
  later to commit also has the higher row ids; and one relay at a time publishes the whole
  table in id order (the leader holds a session advisory lock; the relays of the other
  replicas stand by and take over when its connection goes away).

A pass hands its rows to the producer in id order without awaiting each acknowledgement, so
one produce request carries many rows (pipelined). Order survives that because:

- a key's rows of one topic share a partition, and on a partition they are written in the
  order handed over. What this relies on, in aiokafka 0.14's sender and accumulator: records
  join their partition's batches in the order given; one produce request per broker is in
  flight at a time, and the partitions in it are muted until it is answered, so a partition
  has one batch in flight; a batch retried goes back *ahead* of the later ones; with the
  idempotent producer a retriable error is retried, not expired (a batch whose partition has
  had no leader for ``request_timeout_ms`` still fails). And in the broker: it appends a
  producer's batches to a partition only in sequence-number order, so a batch after a failed
  one is refused as out of order, never written ahead of it;
- a key's row for another topic (another partition, no order between the two) is handed over
  only after the key's earlier rows in the pass were acknowledged: the pass goes in *waves*,
  each taking every key's rows up to its next change of topic;
- a row not acknowledged (failed, or no answer within ``publish_timeout_s``) leaves its key's
  later rows of the pass unmarked, even those Kafka acknowledged; the pass stops (unless the
  row's topic is missing: held, below), and the next one sends them again after it
  (duplicates with the same ``event_id``, never a later event of a user alone ahead of an
  earlier one). Other keys' acknowledged rows are marked.

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
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka.structs import RecordMetadata
from faststream.kafka import KafkaBroker

from exammentor import metrics
from exammentor.contracts.envelope import EventEnvelope
from exammentor.db import Connection, Pool, connection
from exammentor.logs import get_logger
from exammentor.messaging.pipeline import OutboxEvent
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


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """An unpublished outbox row, as a relay pass orders and marks it."""

    id: int
    topic: str
    key: bytes


def next_wave(
    rows: Sequence[OutboxRow], blocked: Collection[bytes]
) -> tuple[list[OutboxRow], list[OutboxRow]]:
    """Splits a pass's rows still to send into the wave to hand to the producer now and
    the rest.

    Args:
        rows: In id order.
        blocked: Keys with a row not acknowledged: their rows are left out of both lists
            (they wait for the next pass).

    Returns:
        ``(wave, rest)``, each in id order. The wave takes each key's rows up to its first
        row on another topic than its first one: those share a partition, where the
        producer keeps their order; the row on another topic waits in ``rest`` until the
        wave is acknowledged (there is no order between partitions).
    """
    wave: list[OutboxRow] = []
    rest: list[OutboxRow] = []
    topic_of: dict[bytes, str] = {}
    later: set[bytes] = set()  # keys whose remaining rows wait for the next wave
    for row in rows:
        if row.key in blocked:
            continue
        if row.key not in later and topic_of.setdefault(row.key, row.topic) == row.topic:
            wave.append(row)
        else:
            later.add(row.key)
            rest.append(row)
    return wave, rest


def publishable(rows: Sequence[OutboxRow], acknowledged: Collection[int]) -> list[int]:
    """The ids of a pass's rows that may be marked published.

    Args:
        rows: Every row the pass read, in id order (sent, held or left out alike).
        acknowledged: The ids Kafka acknowledged.

    Returns:
        In id order, each acknowledged row whose key has no earlier row in ``rows`` left
        unacknowledged: a later event of a user is never marked ahead of an earlier one, so
        the next pass sends it again after that one.
    """
    marked: list[int] = []
    behind: set[bytes] = set()  # keys with an earlier row not acknowledged
    for row in rows:
        if row.key in behind:
            continue
        if row.id in acknowledged:
            marked.append(row.id)
        else:
            behind.add(row.key)
    return marked


def _delivery_error(
    delivery: asyncio.Future[RecordMetadata],
    done: Collection[asyncio.Future[RecordMetadata]],
    timeout_s: float,
) -> Exception | None:
    """Why a delivery was not acknowledged, or None when it was."""
    if delivery not in done:
        return TimeoutError(f"no acknowledgement in {timeout_s} s")
    if delivery.cancelled():
        return RuntimeError("delivery cancelled")
    error = delivery.exception()
    if error is None or isinstance(error, Exception):
        return error
    return RuntimeError(f"delivery failed: {error!r}")


def _retrieve_exception(delivery: asyncio.Future[RecordMetadata]) -> None:
    """Marks a delivery's failure as seen: one that fails after the pass stopped waiting is
    answered by the next pass, not logged by asyncio as never retrieved."""
    if not delivery.cancelled():
        delivery.exception()


@dataclass
class _Hold:
    """A missing topic's rows set aside until ``until`` (monotonic), then looked at again."""

    until: float
    pause_s: float


def outbox_event(topic_prefix: str, event: EventEnvelope) -> OutboxEvent:
    """``event`` as the outbox stores it: its topic, key, body and Kafka headers."""
    return OutboxEvent(
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
    row = outbox_event(topic_prefix, event)
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
        """Publishes one batch in id order; returns how many rows it marked published.

        The rows go to the producer in waves without awaiting each acknowledgement (see the
        module docstring); the rows marked are those :func:`publishable` allows, also when
        the pass stops on a failure (then the failure is raised after the marking). A row
        whose topic the broker says does not exist holds its topic instead: the pass goes
        on without its rows and their keys' later rows.
        """
        await self._look_at_held_topics()
        held = list(self._held)
        async with connection(self._pool) as conn:
            records = await conn.fetch(_UNPUBLISHED, self._batch_size, held)
            backlog = len(records)
            if held:
                backlog = await conn.fetchval(
                    "SELECT count(*) FROM outbox WHERE published_at IS NULL"
                )
            metrics.OUTBOX_BACKLOG.labels(self._service).set(backlog)
            rows = [OutboxRow(r["id"], r["topic"], bytes(r["key"])) for r in records]
            acknowledged: set[int] = set()
            marked: list[int] = []
            try:
                await self._publish(rows, {r["id"]: r for r in records}, acknowledged)
            finally:
                marked = publishable(rows, acknowledged)
                if marked:
                    await conn.execute(
                        "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])",
                        marked,
                    )
                    metrics.OUTBOX_PUBLISHED.labels(self._service).inc(len(marked))
        return len(marked)

    async def _publish(
        self, rows: list[OutboxRow], records: dict[int, Any], acknowledged: set[int]
    ) -> None:
        """Hands ``rows`` to the producer wave by wave and adds the id of each row Kafka
        acknowledged to ``acknowledged``; raises the failure that stopped the pass."""
        blocked: set[bytes] = set()  # keys with a row of this pass not acknowledged
        rest = rows
        while rest:
            wave, rest = next_wave(rest, blocked)
            sent: dict[asyncio.Future[RecordMetadata], OutboxRow] = {}
            failure: Exception | None = None
            for row in wave:
                if row.key in blocked or row.topic in self._held:
                    blocked.add(row.key)
                    continue
                record = records[row.id]
                try:
                    # Returns once the record is in the producer's batch for its partition
                    # (after the topic's metadata is known: a missing topic waits here).
                    async with asyncio.timeout(self._publish_timeout_s):
                        delivery = await self._broker.publish(
                            record["envelope"],
                            row.topic,
                            key=row.key,
                            headers=record["headers"],
                            no_confirm=True,
                        )
                except Exception as exc:  # noqa: BLE001 - held, or raised below
                    blocked.add(row.key)
                    if await self._hold_if_missing(row.topic):
                        continue
                    failure = exc
                    break  # the rows sent so far are still awaited and marked
                delivery.add_done_callback(_retrieve_exception)
                sent[delivery] = row
            unacknowledged: dict[str, Exception] = {}
            if sent:
                done, _ = await asyncio.wait(sent, timeout=self._publish_timeout_s)
                for delivery, row in sent.items():
                    error = _delivery_error(delivery, done, self._publish_timeout_s)
                    if error is None:
                        acknowledged.add(row.id)
                    else:
                        blocked.add(row.key)
                        unacknowledged.setdefault(row.topic, error)
            if unacknowledged:
                # A topic deleted after the producer learnt of it fails here, not above.
                missing = await self._hold_missing(list(unacknowledged))
                failure = failure or next(
                    (e for t, e in unacknowledged.items() if t not in missing), None
                )
            if failure is not None:
                raise failure

    async def _hold_if_missing(self, topic: str) -> bool:
        """Holds ``topic`` when the broker says it does not exist; False when it exists or
        the broker cannot say (then the failure is the broker's, and the pass stops)."""
        return topic in await self._hold_missing([topic])

    async def _hold_missing(self, topics: Collection[str]) -> set[str]:
        """Holds those of ``topics`` the broker says do not exist; returns them (none when
        the broker cannot say)."""
        if self._missing_topics is None:
            return set()
        try:
            missing = await self._missing_topics(topics)
        except Exception:  # noqa: BLE001 - the broker is in trouble: not a missing topic
            return set()
        for topic in missing:
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
