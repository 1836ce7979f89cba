"""Sending a command to a service and following its results: the gateway does it for its
clients, and a service does it when it drives another (the autopilot drives tutor and quiz).

The request row is written and the waiter registered before the command is published, so
no chunk can arrive unheard; the command carries the sender's relay address (``reply_to``),
where the handling worker streams progress and the final result.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

from faststream.kafka import KafkaBroker

from exammentor.contracts.commands import Command
from exammentor.contracts.envelope import CommandEnvelope
from exammentor.db import Pool, connection
from exammentor.logs import get_logger
from exammentor.messaging import pipeline
from exammentor.messaging.consumer import encode_command
from exammentor.messaging.result_hub import RelayHub, follow
from exammentor.messaging.result_relay import RelayChunk
from exammentor.messaging.topic_admin import command_topic
from exammentor.telemetry import inject_headers

log = get_logger(__name__)


class BrokerUnavailable(Exception):
    """The command could not be published (the request is marked failed)."""


class ResultTimeout(Exception):
    """No final result within the wait; the request goes on and can be fetched later."""


@dataclass
class Dispatched:
    """A published command whose chunks can be followed."""

    request_id: UUID
    queue: asyncio.Queue[RelayChunk]
    replayed: pipeline.CreatedRequest | None = None
    """Set when an earlier request with the same idempotency key was found: no command
    was published, and its chunks will not come here (read it from Postgres)."""

    async def chunks(self, timeout_s: float) -> AsyncIterator[RelayChunk]:
        """Progress chunks then the final one, within ``timeout_s`` in all."""
        stream = follow(self.queue)
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            # asyncio.timeout_at, not wait_for: wait_for runs each read in a task of its own,
            # a cost paid for every token of a stream. The yield stays outside the timeout,
            # so the reader's own time never cancels it.
            try:
                async with asyncio.timeout_at(deadline):
                    chunk = await anext(stream)
            except StopAsyncIteration:
                return
            except TimeoutError as exc:
                raise ResultTimeout(str(self.request_id)) from exc
            yield chunk

    async def final(self, timeout_s: float) -> RelayChunk:
        """Skips progress and returns the final chunk."""
        last: RelayChunk | None = None
        async for chunk in self.chunks(timeout_s):
            last = chunk
        assert last is not None
        assert last.final
        return last


class Dispatcher:
    """Publishes commands for one gateway instance."""

    def __init__(
        self,
        pool: Pool,
        broker: KafkaBroker,
        hub: RelayHub,
        topic_prefix: str,
        reply_to: str,
        *,
        publish_timeout_s: float = 10.0,
    ) -> None:
        self._pool = pool
        self._publish_timeout_s = publish_timeout_s
        self._broker = broker
        self._hub = hub
        self._prefix = topic_prefix
        self._reply_to = reply_to

    @asynccontextmanager
    async def dispatch(
        self,
        command: Command[Any, Any],
        user_id: UUID,
        payload: dict[str, Any],
        *,
        session_id: UUID | None = None,
        request_id: UUID | None = None,
        command_id: UUID | None = None,
        idempotency_key: str | None = None,
    ) -> AsyncIterator[Dispatched]:
        """Stores a pending request with its command, publishes the command and yields its
        result stream.

        The request row and the command commit together, so no request waits for a command
        that was never stored: one that did not reach Kafka (the publish failed or timed out,
        or this process died first) is sent again by the gateway's sweeper.

        A client's ``idempotency_key`` names its request: sending again with the same key
        yields the request already stored (``replayed``), nothing is published twice. A
        sender that must not pay twice for one action (the autopilot, after a crash) chooses
        ``request_id`` and ``command_id`` itself, derived from the action: sending again then
        reuses the stored request row and publishes the same command, which the service
        answers from its inbox.

        Raises:
            BrokerUnavailable: The command is stored but Kafka did not take it in time.
        """
        chosen = request_id is not None
        request_id = request_id or uuid4()
        topic = command_topic(self._prefix, command.service)
        envelope = CommandEnvelope(
            command_id=command_id or uuid4(),
            type=command.name,
            version=command.version,
            request_id=request_id,
            user_id=user_id,
            session_id=session_id,
            reply_to=self._reply_to,
            payload=payload,
        )
        async with connection(self._pool) as conn:
            stored = await pipeline.create_request(
                conn,
                request_id,
                user_id,
                command.name,
                payload,
                command=envelope.model_dump(mode="json"),
                topic=topic,
                idempotency_key=idempotency_key,
            )
        if not stored.new and not chosen:
            with self._hub.waiter(stored.request_id) as queue:
                yield Dispatched(stored.request_id, queue, replayed=stored)
            return
        with self._hub.waiter(request_id) as queue:
            try:
                await asyncio.wait_for(
                    self._broker.publish(
                        encode_command(envelope),
                        topic,
                        key=envelope.key,
                        headers={
                            "command-type": command.name,
                            "command-version": str(command.version),
                            **inject_headers(),
                        },
                    ),
                    self._publish_timeout_s,
                )
            except Exception as exc:
                # Stored with the request: the sweeper sends it when Kafka answers.
                log.warning("command stored, not yet published", type=command.name, error=repr(exc))
                raise BrokerUnavailable(str(request_id)) from exc
            yield Dispatched(request_id, queue)
