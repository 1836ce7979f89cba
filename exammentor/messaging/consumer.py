"""Consuming commands with the project's delivery rules.

A worker process holds up to ``max_in_flight`` commands at once
(:class:`~exammentor.messaging.kafka.KeyOrderedConsumer`): the commands of one key (one study
session, or one user without a session) run one after another, in offset order; commands of
different keys run side by side, also within one partition. For each record,
:class:`CommandConsumer`:

1. decodes the envelope and the payload; a message that fails (a *poison* message) goes to
   the dead-letter topic at once with the reason, and its key moves on;
2. skips a command whose id is already in the inbox (it was applied before) and re-sends
   the stored result, so a client waiting on a redelivered command still gets its answer;
3. runs the handler (which may call the LLM and stream progress) outside any transaction;
4. in one user transaction: inserts the inbox row, applies the handler's writes, stores the
   request's result and writes its events to the outbox; commits (one round trip when the
   handler has no writes of its own; steps 2 and 4 are server functions,
   ``migrations/009_one_round_trip.sql``);
5. streams the final result to the gateway, and only then marks the record done. A
   partition's committed offset is the lowest record not done (its low-water mark), so
   nothing is skipped and a crash re-delivers at most the records that were in hand, which
   the inbox answers (step 2). An exception leaves the record not done: it is handled again
   after a pause, holding its key only.

On shutdown, :meth:`CommandConsumer.drain` stops fetching, lets the commands in hand finish
and commits their offsets, and hands back uncommitted what did not finish in time; partitions
taken away by a rebalance are handed back the same way.

A handler error other than :class:`CommandRejected` is retried with backoff up to
``max_attempts`` (the retry holds its key, not the partition); then the command is
dead-lettered and its request marked failed.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from typing import Any

from aiokafka import ConsumerRecord
from faststream.kafka import KafkaBroker
from pydantic import BaseModel, ValidationError

from exammentor import metrics
from exammentor.contracts.envelope import CommandEnvelope
from exammentor.db import Pool, connection, user_transaction
from exammentor.logs import bind_ids, get_logger
from exammentor.messaging import pipeline
from exammentor.messaging.handling import (
    CommandContext,
    CommandDeadlineExceeded,
    CommandRejected,
    CommandRouter,
    CommandSpec,
    Outcome,
    UndeclaredErrorCode,
)
from exammentor.messaging.kafka import KeyOrderedConsumer
from exammentor.messaging.outbox import outbox_event
from exammentor.messaging.result_relay import RelayChannels, ResultStream
from exammentor.messaging.topic_admin import command_topic, dead_letter_topic
from exammentor.outages import is_unreachable
from exammentor.settings import WorkerSettings
from exammentor.telemetry import span_from_headers
from exammentor.validation import validation_reason

log = get_logger(__name__)


class _Poison(Exception):
    """A message that can never be applied (bad envelope, unknown type, invalid payload)."""


_OUTAGE_FIRST_PAUSE_S = 0.2
_OUTAGE_MAX_PAUSE_S = 5.0


class _UnknownCommand(_Poison):
    """A well-formed command of a type or version this service does not handle (yet)."""

    def __init__(self, message: str, envelope: CommandEnvelope) -> None:
        super().__init__(message)
        self.envelope = envelope


PARKED = "parked: "
"""Reason prefix of a dead letter kept for a newer version of the service: a command of a
type or version this one does not handle, sent by a newer gateway during a rolling update.
Its client is not told it failed; the first replica that handles it replays it at start-up
(:meth:`CommandConsumer.replay_parked`)."""


FAULT_EXIT_CODE = 86
"""Exit status of a worker stopped at the test-only fault point (``fault_after_commit``)."""


class CommandConsumer:
    """Subscribes one service's router to its command topic, with the delivery rules."""

    def __init__(
        self,
        *,
        router: CommandRouter,
        broker: KafkaBroker,
        pool: Pool,
        settings: WorkerSettings,
        channels: RelayChannels,
    ) -> None:
        self.router = router
        self.service = router.service
        self._broker = broker
        self._pool = pool
        self._settings = settings
        self._channels = channels
        self._prefix = settings.kafka.topic_prefix
        self.consumer_name = f"{self._prefix}.{self.service}"
        self._draining = False
        self._fault_after_commit = settings.fault_after_commit
        self._reader = KeyOrderedConsumer(
            settings=settings.kafka,
            topic=command_topic(self._prefix, self.service),
            group_id=self.consumer_name,
            client_id=settings.service_name,
            max_in_flight=settings.max_in_flight,
            handle=self._on_record,
        )

    @property
    def in_flight(self) -> int:
        """Commands taken and not yet done."""
        return self._reader.in_flight

    async def start(self) -> None:
        """Joins the service's consumer group and starts taking commands."""
        await self._reader.start()

    async def drain(self, timeout_s: float) -> bool:
        """Stops taking records, lets the ones in hand finish and commits their offsets; what
        is unfinished after ``timeout_s`` is handed back uncommitted. Returns False when the
        wait ran out.
        """
        self._draining = True
        return await self._reader.drain(timeout_s)

    async def stop(self) -> None:
        """Leaves the consumer group (call :meth:`drain` first)."""
        self._draining = True
        await self._reader.stop()

    async def replay_parked(self) -> int:
        """Puts back on their topics the parked commands this service now handles (a newer
        gateway sent them before this replica was upgraded); returns how many."""
        async with self._pool.acquire() as conn:
            letters = await pipeline.parked_letters(conn, self.consumer_name, PARKED)
        replayed = 0
        for letter in letters:
            try:
                envelope = CommandEnvelope.model_validate_json(letter.value)
            except ValidationError:
                continue
            if self.router.lookup(envelope.type, envelope.version) is None:
                continue
            await self._broker.publish(
                letter.value,
                letter.topic,
                key=letter.key,
                headers={"dlq-replay-of": str(letter.letter_id)},
            )
            async with self._pool.acquire() as conn:
                await pipeline.mark_replayed(conn, letter.letter_id)
            replayed += 1
        if replayed:
            log.info("parked commands replayed", count=replayed)
        return replayed

    async def _on_record(self, record: ConsumerRecord[bytes, bytes]) -> None:
        """Handles one Kafka record; returns only when it is applied or dead-lettered."""
        metrics.observe_consumer_lag(self.service, self._reader.client, record)
        await self._through_outages(record)

    async def _through_outages(self, record: ConsumerRecord[bytes, bytes]) -> None:
        """Handles the record, waiting out database and broker outages.

        An outage is not a failed attempt: the record is handled again from the start (the
        inbox makes that safe) after a capped backoff, for as long as the server does not
        answer, up to ``outage_wait_s``; then it raises, and the record stays not done (its
        offset uncommitted) and is taken up again; never dead-lettered, its request not failed.
        """
        waited = 0.0
        pause = _OUTAGE_FIRST_PAUSE_S
        while True:
            try:
                await self._handle(record)
            except Exception as exc:
                limit = self._settings.kafka.outage_wait_s
                if not is_unreachable(exc) or self._draining or waited >= limit:
                    raise
                metrics.COMMANDS.labels(self.service, "any", "outage_wait").inc()
                log.warning("server unreachable; waiting it out", error=repr(exc), waited=waited)
                await asyncio.sleep(pause)
                waited += pause
                pause = min(pause * 2, _OUTAGE_MAX_PAUSE_S)
            else:
                return

    async def _handle(self, record: ConsumerRecord[bytes, bytes]) -> None:
        body = record.value or b""
        headers = {k: v.decode(errors="replace") for k, v in record.headers}
        try:
            envelope, spec, payload = self._decode(body)
        except _UnknownCommand as exc:
            # Parked, not failed: a newer replica handles it after the rolling update.
            await self._dead_letter(
                record,
                reason=f"{PARKED}{exc}",
                attempts=1,
                envelope=exc.envelope,
                tell_client=False,
            )
            return
        except _Poison as exc:
            await self._dead_letter(record, reason=str(exc), attempts=1, envelope=None)
            return
        with (
            bind_ids(
                request_id=str(envelope.request_id),
                command_id=str(envelope.command_id),
                user_id=str(envelope.user_id),
            ),
            span_from_headers(f"{self.service} {envelope.type}", headers),
        ):
            if isinstance(payload, ValidationError):
                await self._dead_letter(
                    record, reason=validation_reason(payload), attempts=1, envelope=envelope
                )
                return
            await self._apply(envelope, spec, payload, record)

    def _decode(self, body: bytes) -> tuple[CommandEnvelope, CommandSpec, Any]:
        try:
            envelope = CommandEnvelope.model_validate_json(body)
        except ValidationError as exc:
            raise _Poison(f"invalid envelope: {validation_reason(exc)}") from exc
        spec = self.router.lookup(envelope.type, envelope.version)
        if spec is None:
            raise _UnknownCommand(
                f"{self.service} does not handle {envelope.type}@{envelope.version} "
                f"(handles {', '.join(self.router.types)}); replayed when a version that "
                "does starts",
                envelope,
            )
        try:
            return envelope, spec, spec.command.payload.model_validate(envelope.payload)
        except ValidationError as exc:
            # The envelope is good, so the client can be told: handled by the caller.
            return envelope, spec, exc

    async def _apply(
        self,
        envelope: CommandEnvelope,
        spec: CommandSpec,
        payload: BaseModel,
        record: ConsumerRecord[bytes, bytes],
    ) -> None:
        started = time.perf_counter()
        max_attempts = self._settings.kafka.max_attempts
        for attempt in range(1, max_attempts + 1):
            stream = self._channels.stream(envelope.reply_to, envelope.request_id)
            try:
                outcome = await self.attempt(envelope, spec, payload, stream)
            except CommandRejected as rejected:
                await self._finish_failed(envelope, rejected.as_error(), stream, applied=True)
                metrics.COMMANDS.labels(self.service, spec.name, "rejected").inc()
                log.info("command rejected", code=rejected.code, reason=rejected.message)
                return
            except Exception as exc:
                await stream.close()
                if is_unreachable(exc):
                    raise  # an outage, not a failed attempt: waited out in _through_outages
                if attempt == max_attempts:
                    log.exception("command failed on its last attempt", attempt=attempt)
                    await self._dead_letter(
                        record,
                        reason=f"{type(exc).__name__}: {exc}",
                        attempts=attempt,
                        envelope=envelope,
                        # Exception text is for operators (the letter, the log), never for
                        # the client, who learns what happened and what to quote.
                        client_message="the command failed and was set aside for an operator; "
                        f"quote request {envelope.request_id}",
                    )
                    return
                metrics.COMMANDS.labels(self.service, spec.name, "retried").inc()
                log.warning("command attempt failed; retrying", attempt=attempt, error=repr(exc))
                await asyncio.sleep(self._settings.kafka.retry_backoff_s * 2 ** (attempt - 1))
                continue
            if outcome is None:
                metrics.COMMANDS.labels(self.service, spec.name, "duplicate").inc()
                log.info("duplicate command skipped")
            else:
                metrics.COMMANDS.labels(self.service, spec.name, "applied").inc()
                metrics.COMMAND_SECONDS.labels(self.service, spec.name).observe(
                    time.perf_counter() - started
                )
                log.info("command applied", type=spec.name)
            return

    async def attempt(
        self,
        envelope: CommandEnvelope,
        spec: CommandSpec,
        payload: BaseModel,
        stream: ResultStream,
    ) -> Outcome[Any] | None:
        """One try at a decoded command: handler, then inbox, writes, result and events in one
        transaction. None when the command had been applied before (its result re-sent).
        Public so the pipeline benchmark can time the same work without the transport.
        """
        if await self._resend_if_applied(envelope, stream):
            return None
        ctx = CommandContext(envelope, self._pool, stream, self.service)
        try:
            # One deadline for the whole handler, retries of its model calls included, below
            # the consumer's poll interval: past it the command counts as a failed attempt
            # instead of the consumer being evicted while it still runs (and running twice).
            deadline = self._settings.kafka.command_deadline_s
            try:
                outcome = await asyncio.wait_for(spec.handler(ctx, payload), deadline)
            except TimeoutError as exc:
                # Ours, so it is a failed attempt, never mistaken for a server outage.
                raise CommandDeadlineExceeded(
                    f"{spec.command.key} ran past {deadline:g} s"
                ) from exc
        except CommandRejected as rejected:
            if spec.command.declares(rejected.code):
                raise
            # A bug, not a refusal: retried like any failure, then dead-lettered.
            raise UndeclaredErrorCode(
                f"{spec.command.key} does not declare the error code {rejected.code!r}"
            ) from rejected
        result = spec.command.result.model_validate(outcome.result).model_dump(mode="json")
        if not await self._finish(envelope, outcome, result):
            # Applied by another consumer between our check and now: theirs stands, and it
            # answered the client; our relay call is closed, not left open.
            await stream.close()
            return None
        if self._fault_after_commit:
            log.warning("fault point: exiting after the commit, before the offset")
            os._exit(FAULT_EXIT_CODE)
        await stream.result(result)
        return outcome

    async def _finish(
        self, envelope: CommandEnvelope, outcome: Outcome[Any], result: dict[str, Any]
    ) -> bool:
        """Commits the inbox row, the command's own writes, its result and its events; False
        (nothing written) when another consumer applied it first."""
        events = [outbox_event(self._prefix, event) for event in outcome.events]
        finish = functools.partial(
            pipeline.finish_attempt,
            consumer=self.consumer_name,
            command_id=envelope.command_id,
            user_id=envelope.user_id,
            request_id=envelope.request_id,
            result=result,
            events=events,
        )
        if outcome.persist is None:
            # Nothing of its own to write: one round trip, a transaction of its own.
            async with connection(self._pool) as conn:
                return await finish(conn)
        async with user_transaction(self._pool, envelope.user_id) as conn:
            # The inbox first, as ever: a duplicate never runs the handler's writes. (Events
            # its writes add themselves come after ``outcome.events``.)
            if not await finish(conn):
                return False
            await outcome.persist(conn)
        return True

    async def _resend_if_applied(self, envelope: CommandEnvelope, stream: ResultStream) -> bool:
        """True (and the stored answer re-sent) when the command was applied before;
        otherwise marks its request running.
        """
        async with connection(self._pool) as conn:
            applied, last_seq = await pipeline.start_attempt(
                conn,
                self.consumer_name,
                envelope.command_id,
                envelope.request_id,
                envelope.user_id,
            )
        if not applied:
            stream.resume_after(last_seq)
            return False
        async with user_transaction(self._pool, envelope.user_id) as conn:
            stored = await pipeline.get_request(conn, envelope.request_id)
        if stored is not None and stored.status == "done" and stored.result is not None:
            await stream.result(stored.result)
        elif stored is not None and stored.error is not None:
            await stream.error(stored.error)
        else:
            await stream.close()
        return True

    async def _finish_failed(
        self,
        envelope: CommandEnvelope,
        error: dict[str, Any],
        stream: ResultStream,
        *,
        applied: bool,
    ) -> None:
        """Marks the request failed (and, for a rejection, the command applied)."""
        if applied:
            async with connection(self._pool) as conn:
                if not await pipeline.finish_attempt(
                    conn,
                    self.consumer_name,
                    envelope.command_id,
                    envelope.user_id,
                    envelope.request_id,
                    error=error,
                ):
                    return
        else:
            async with user_transaction(self._pool, envelope.user_id) as conn:
                await pipeline.finish_request(conn, envelope.request_id, error=error)
        await stream.error(error)

    async def _dead_letter(
        self,
        record: ConsumerRecord[bytes, bytes],
        *,
        reason: str,
        attempts: int,
        envelope: CommandEnvelope | None,
        client_message: str | None = None,
        tell_client: bool = True,
    ) -> None:
        """Records the letter, sends the record to the dead-letter topic, and tells the client.

        The row comes first: while the database is down this raises before anything is
        published (an outage, waited out), so a redelivered record never adds a second letter
        on the topic for each try. The publish is awaited: if Kafka refuses, we raise and the
        record is redelivered (the row is kept once).
        """
        body = record.value or b""
        source, partition, offset, key = record.topic, record.partition, record.offset, record.key
        async with self._pool.acquire() as conn:
            await pipeline.record_dead_letter(
                conn,
                pipeline.DeadLetterRecord(
                    consumer=self.consumer_name,
                    topic=source,
                    partition=partition,
                    offset=offset,
                    key=key,
                    value=body,
                    reason=reason,
                    attempts=attempts,
                    user_id=envelope.user_id if envelope else None,
                ),
            )
        await self._broker.publish(
            body,
            dead_letter_topic(self._prefix, self.service),
            key=key,
            headers={
                "dlq-reason": reason[:2000],
                "dlq-consumer": self.consumer_name,
                "dlq-source-topic": source,
                "dlq-source-partition": str(partition),
                "dlq-source-offset": str(offset),
                "dlq-attempts": str(attempts),
            },
        )
        metrics.COMMANDS.labels(
            self.service, envelope.type if envelope else "unknown", "dead_lettered"
        ).inc()
        log.warning("command dead-lettered", reason=reason, partition=partition, offset=offset)
        if envelope is not None and tell_client:
            stream = self._channels.stream(envelope.reply_to, envelope.request_id)
            await self._finish_failed(
                envelope,
                {"code": "dead_lettered", "message": client_message or reason},
                stream,
                applied=False,
            )


def encode_command(envelope: CommandEnvelope) -> bytes:
    """The command as it goes on the wire (UTF-8 JSON)."""
    return envelope.model_dump_json().encode()
