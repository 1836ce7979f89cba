"""The Kafka broker every process uses, set up with the project's delivery rules.

Producers are idempotent with ``acks=all``. Commands are consumed by
:class:`KeyOrderedConsumer` (aiokafka's consumer driven directly, never auto-committing): many
records in hand at once, in order per key, each partition's offset committed as the low-water
mark of the records done, which :mod:`exammentor.messaging.consumer` makes "after the database
transaction committed (or the command was dead-lettered)".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import ConsumerStoppedError, KafkaError
from faststream.kafka import KafkaBroker

from exammentor.logs import get_logger
from exammentor.settings import KafkaSettings

log = get_logger(__name__)


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


class OffsetWindow:
    """The records of one partition taken and not yet done, and the offset to commit.

    Records are taken in offset order and finish in any order; the offset committed is the
    *low-water mark*: the lowest offset not yet done (or one past the last taken when all
    are). A record is never skipped, and a crash re-delivers only what is above the mark.
    """

    def __init__(self) -> None:
        # Insertion order is offset order, so the first key is the lowest pending offset.
        self._pending: dict[int, None] = {}
        self._next: int | None = None

    def take(self, offset: int) -> None:
        """Notes a record taken for handling; offsets must come in increasing order."""
        if self._next is not None and offset < self._next:
            raise ValueError(f"offset {offset} taken after {self._next - 1}")
        self._pending[offset] = None
        self._next = offset + 1

    def done(self, offset: int) -> None:
        """Notes a record handled (applied or dead-lettered)."""
        self._pending.pop(offset, None)

    @property
    def low_water(self) -> int | None:
        """The offset to commit: the lowest not done; None before any record was taken."""
        if self._pending:
            return next(iter(self._pending))
        return self._next

    @property
    def next_offset(self) -> int | None:
        """One past the last record taken (None before any)."""
        return self._next

    @property
    def span(self) -> int:
        """Records from the low-water mark to the last taken: what a crash re-delivers."""
        low = self.low_water
        return 0 if low is None or self._next is None else self._next - low

    def __len__(self) -> int:
        return len(self._pending)


RecordHandler = Callable[[ConsumerRecord[bytes, bytes]], Awaitable[None]]
"""Handles one record; returns once it is done (its offset may be committed). Raising means
"not done": the record is handled again after a pause, unless its partition is being given
up, in which case it is handed back uncommitted."""

_RETRY_FIRST_PAUSE_S = 0.2
_RETRY_MAX_PAUSE_S = 5.0
_COMMIT_LINGER_S = 0.02
"""How long a completion waits for others to share its offset commit (a crash in it
re-delivers a little more, which the inbox answers)."""
_SPAN_PER_SLOT = 4
"""A partition whose uncommitted span reaches this many times ``max_in_flight`` is paused
(one slow record holds the mark while later ones finish): bounds what a crash re-delivers."""


@dataclass
class _Lane:
    """The records of one key on one partition, handled one after another."""

    records: deque[ConsumerRecord[bytes, bytes]] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None


class KeyOrderedConsumer(ConsumerRebalanceListener):  # type: ignore[misc]
    """Consumes a topic with up to ``max_in_flight`` records in hand at once, in order per key.

    The model of Confluent's parallel consumer (key ordering): records of one key (one
    study session) run one after another; records of different keys run side by side, also
    within one partition. Per partition, the committed offset is the low-water mark of the
    work done (:class:`OffsetWindow`), committed after each completion (coalesced: one
    request carries every partition's mark).

    - **Back-pressure**: with ``max_in_flight`` records in hand, every partition is paused
      (aiokafka keeps polling, so the member stays in the group); a partition whose
      uncommitted span grew past ``4 x max_in_flight`` is paused on its own.
    - **Rebalance**: partitions being revoked take no new records; their records in hand get
      ``rebalance_wait_s`` to finish, the rest are cancelled (handed back: their offsets
      stay uncommitted), and their marks are committed before the partitions are given up.
    - **Shutdown**: :meth:`drain` stops fetching, lets records in hand finish, commits the
      marks; :meth:`stop` then leaves the group.
    """

    def __init__(
        self,
        *,
        settings: KafkaSettings,
        topic: str,
        group_id: str,
        client_id: str,
        max_in_flight: int,
        handle: RecordHandler,
    ) -> None:
        self._settings = settings
        self._topic = topic
        self._group_id = group_id
        self._client_id = client_id
        self._max_in_flight = max_in_flight
        self._handle = handle
        self.client: AIOKafkaConsumer | None = None
        self._windows: dict[TopicPartition, OffsetWindow] = {}
        self._committed: dict[TopicPartition, int] = {}
        self._lanes: dict[tuple[TopicPartition, bytes | None], _Lane] = {}
        self._in_flight = 0
        self._room = asyncio.Event()
        self._dirty = asyncio.Event()
        self._commit_lock = asyncio.Lock()
        self._revoking: set[TopicPartition] = set()
        self._draining = False
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def in_flight(self) -> int:
        """Records taken and not yet done."""
        return self._in_flight

    async def start(self) -> None:
        """Joins the group and starts fetching."""
        wait_ms = int(self._settings.rebalance_wait_s * 1000)
        self.client = client = AIOKafkaConsumer(
            bootstrap_servers=self._settings.bootstrap_servers,
            group_id=self._group_id,
            client_id=self._client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_interval_ms=600_000,
            # The group waits for our revoke callback (records in hand finish, marks
            # commit) rather than moving on after the session timeout.
            rebalance_timeout_ms=wait_ms + 10_000,
        )
        client.subscribe([self._topic], listener=self)
        await client.start()
        self._tasks = [
            asyncio.create_task(self._fetch(), name=f"fetch {self._topic}"),
            asyncio.create_task(self._commit_loop(), name=f"commit {self._topic}"),
        ]

    async def drain(self, timeout_s: float) -> bool:
        """Stops fetching, lets the records in hand finish (up to ``timeout_s``; the rest are
        handed back uncommitted) and commits the marks. False when the wait ran out."""
        self._draining = True
        if self._tasks:
            fetch = self._tasks[0]
            fetch.cancel()
            await asyncio.gather(fetch, return_exceptions=True)
        finished = await self._finish_lanes(lambda _: True, timeout_s)
        if not finished:
            log.warning("drain timed out; unfinished commands go to another replica")
        await self._commit()
        return finished

    async def stop(self) -> None:
        """Leaves the group (after :meth:`drain`; without it, nothing more is committed)."""
        self._draining = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self._finish_lanes(lambda _: True, 0)
        if self.client is not None:
            await self.client.stop()
            self.client = None

    # Rebalance listener (aiokafka awaits these during the group's rebalance).

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Hands back the revoked partitions: in-hand records finish or are cancelled, then
        the partitions' low-water marks are committed."""
        gone = set(revoked)
        self._revoking |= gone
        try:
            await self._finish_lanes(lambda tp: tp in gone, self._settings.rebalance_wait_s)
            await self._commit(gone)
        finally:
            for tp in gone:
                self._windows.pop(tp, None)
                self._committed.pop(tp, None)
            self._revoking -= gone

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """Nothing to load: a partition starts at its committed offset."""

    # Fetching.

    async def _fetch(self) -> None:
        while True:
            try:
                if await self._fetch_once():
                    return
            except asyncio.CancelledError:
                raise
            except Exception:  # a dead fetch loop would stop the service silently
                log.exception("fetching failed; trying again")
                await asyncio.sleep(1.0)

    async def _fetch_once(self) -> bool:
        """Takes records until the consumer stops (True) or something unexpected raises."""
        client = self.client
        assert client is not None
        while True:
            room = self._max_in_flight - self._in_flight
            assigned = client.assignment()
            limit = self._max_in_flight * _SPAN_PER_SLOT
            full = {
                tp
                for tp in assigned
                if room <= 0 or (tp in self._windows and self._windows[tp].span >= limit)
            }
            if full:
                client.pause(*full)
            paused = client.paused()
            if reopened := [tp for tp in assigned - full if tp in paused]:
                client.resume(*reopened)
            try:
                if room <= 0:
                    # Back-pressure: nothing is fetched until a record is done. The wait is
                    # bounded so the loop polls again well within the poll interval.
                    self._room.clear()
                    # asyncio.timeout: wait_for (3.11) can swallow the stop's cancellation.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(1.0):
                            await self._room.wait()
                    await client.getmany(timeout_ms=0)
                    continue
                batch = await client.getmany(timeout_ms=500, max_records=room)
            except ConsumerStoppedError:
                return True
            except KafkaError as exc:
                log.warning("fetch failed; trying again", error=repr(exc))
                await asyncio.sleep(1.0)
                continue
            held = client.assignment()
            for tp, records in batch.items():
                if tp in self._revoking or tp not in held:
                    continue  # being given up: the next owner reads these
                for record in records:
                    self._take(tp, record)

    def _take(self, tp: TopicPartition, record: ConsumerRecord[bytes, bytes]) -> None:
        window = self._windows.setdefault(tp, OffsetWindow())
        taken = window.next_offset
        if taken is not None and record.offset < taken:
            # Fetched again after a reset of the position: held already (or done).
            return
        window.take(record.offset)
        self._in_flight += 1
        lane_key = (tp, record.key)
        lane = self._lanes.get(lane_key)
        if lane is None:
            lane = self._lanes[lane_key] = _Lane()
            lane.task = asyncio.create_task(self._run_lane(lane_key, lane))
        lane.records.append(record)

    def _giving_up(self, tp: TopicPartition) -> bool:
        return self._draining or tp in self._revoking

    async def _run_lane(self, lane_key: tuple[TopicPartition, bytes | None], lane: _Lane) -> None:
        tp = lane_key[0]
        try:
            while lane.records and not self._giving_up(tp):
                record = lane.records[0]
                if not await self._handle_until_done(tp, record):
                    break
                lane.records.popleft()
                self._in_flight -= 1
                window = self._windows.get(tp)
                if window is not None:
                    window.done(record.offset)
                self._dirty.set()
                self._room.set()
        finally:
            # What is left is handed back: pending in its window, so never committed.
            self._in_flight -= len(lane.records)
            lane.records.clear()
            if self._lanes.get(lane_key) is lane:
                del self._lanes[lane_key]
            self._room.set()

    async def _handle_until_done(
        self, tp: TopicPartition, record: ConsumerRecord[bytes, bytes]
    ) -> bool:
        """Handles the record until it is done (True), or its partition is given up (False)."""
        pause = _RETRY_FIRST_PAUSE_S
        while True:
            try:
                await self._handle(record)
            except Exception as exc:  # noqa: BLE001 - any failure leaves the record not done
                if self._giving_up(tp):
                    return False
                # Not done and not given up: handled again, as a rewound partition would,
                # but holding only this key.
                log.warning(
                    "record not done; handling it again",
                    partition=tp.partition,
                    offset=record.offset,
                    error=repr(exc),
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, _RETRY_MAX_PAUSE_S)
            else:
                return True

    async def _finish_lanes(
        self, which: Callable[[TopicPartition], bool], timeout_s: float
    ) -> bool:
        """Waits for the lanes of the partitions ``which`` picks to finish their record in
        hand (they start no other); cancels those still running after ``timeout_s``."""
        tasks = [
            lane.task
            for (tp, _), lane in list(self._lanes.items())
            if which(tp) and lane.task is not None
        ]
        if not tasks:
            return True
        pending = set(tasks)
        if timeout_s > 0:
            _, pending = await asyncio.wait(tasks, timeout=timeout_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        return not pending

    # Committing.

    async def _commit_loop(self) -> None:
        while True:
            await self._dirty.wait()
            # Completions that come together go in one commit request.
            await asyncio.sleep(_COMMIT_LINGER_S)
            self._dirty.clear()
            if not await self._commit():
                await asyncio.sleep(1.0)
                self._dirty.set()

    async def _commit(self, only: set[TopicPartition] | None = None) -> bool:
        """Commits the low-water marks that moved; False when the broker refused."""
        client = self.client
        if client is None:
            return True
        async with self._commit_lock:
            assigned = client.assignment()
            offsets: dict[TopicPartition, int] = {}
            for tp, window in self._windows.items():
                mark = window.low_water
                if only is not None and tp not in only:
                    continue
                if tp in assigned and mark is not None and mark != self._committed.get(tp):
                    offsets[tp] = mark
            if not offsets:
                return True
            try:
                await client.commit(offsets)
            except KafkaError as exc:  # IllegalStateError included
                log.warning("offset commit failed; trying again", error=repr(exc))
                return False
            self._committed.update(offsets)
            return True
