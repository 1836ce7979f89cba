"""The autopilot as a client of the tutor and the quiz: their commands over Kafka, each
with ids derived from the autopilot's action key.

A command sent for an action gets ``request_id = uuid5(key)`` and ``command_id =
uuid5(key + "#command")``. After a crash the action is given again with the same key, so:

- a request that already ended is read back from the ``requests`` table, and nothing is
  sent again;
- otherwise the command is published again with the same command id, and the service that
  applied it before answers from its inbox (the stored result, no second model call); one
  still in its hands is applied once, then the copy is answered from the inbox.

Sending is the kit's :class:`~exammentor.messaging.dispatch.Dispatcher` (as the gateway sends), with
the derived ids. Results stream back to this replica's relay (``reply_to``); the
``requests`` row is checked as well while waiting, so a lost stream only costs a short
delay.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, TypeVar
from uuid import UUID, uuid5

from faststream.kafka import KafkaBroker
from pydantic import BaseModel

from exammentor.contracts.commands import Command
from exammentor.db import Pool, user_transaction
from exammentor.logs import get_logger
from exammentor.messaging import pipeline
from exammentor.messaging.dispatch import Dispatcher
from exammentor.messaging.result_relay import RelayChunk
from exammentor.worker import CommandRelay

log = get_logger(__name__)

R = TypeVar("R", bound=BaseModel)

KEY_NAMESPACE = UUID("6f0b7d2e-3c55-4d0e-9a57-0a7e1c2f4b10")
"""Namespace of the ids derived from action keys (fixed: changing it repeats paid calls)."""


def request_id_for(key: str) -> UUID:
    """The request id of the command sent for ``key``."""
    return uuid5(KEY_NAMESPACE, key)


def command_id_for(key: str) -> UUID:
    """The command id of the command sent for ``key``."""
    return uuid5(KEY_NAMESPACE, f"{key}#command")


class CallFailed(Exception):
    """The command ended in error (refused, or dead-lettered after its attempts)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class StudyCalls:
    """Sends one replica's tutor and quiz commands and waits for their results."""

    def __init__(
        self,
        pool: Pool,
        broker: KafkaBroker,
        relay: CommandRelay,
        topic_prefix: str,
        *,
        resend_after_s: float,
        poll_s: float = 2.0,
    ) -> None:
        self._pool = pool
        self._dispatcher = Dispatcher(pool, broker, relay.hub, topic_prefix, relay.reply_to)
        self._resend_after_s = resend_after_s
        self._poll_s = poll_s
        self.sent = 0
        """Commands published (a re-send counts again), for tests and the benchmark."""

    async def call(
        self,
        command: Command[Any, R],
        user_id: UUID,
        payload: BaseModel,
        *,
        key: str,
        session_id: UUID | None = None,
    ) -> R:
        """Sends ``command`` once per ``key`` and returns its result.

        Args:
            command: The declaration (tutor or quiz).
            user_id: The student the command acts for.
            payload: Its payload model.
            key: The action's idempotency key.
            session_id: The study session (the partition key: one session stays in order).

        Returns:
            The declared result.

        Raises:
            CallFailed: The command ended in error.
        """
        request_id = request_id_for(key)
        body = payload.model_dump(mode="json")
        stored = await self._stored(user_id, request_id)
        if stored is not None:
            return self._decode(command, stored)
        while True:
            # The dispatcher creates the request row once (a re-send finds it) and publishes
            # with the same command id, so the service answers a copy from its inbox.
            async with self._dispatcher.dispatch(
                command,
                user_id,
                body,
                session_id=session_id,
                request_id=request_id,
                command_id=command_id_for(key),
            ) as sent:
                self.sent += 1
                found = await self._wait(command, user_id, request_id, sent.queue)
            if found is not None:
                return found
            log.warning("no result yet; sending the command again", key=key)

    async def _stored(self, user_id: UUID, request_id: UUID) -> RelayChunk | None:
        """The final chunk of a request that already ended (a call made before a crash)."""
        async with user_transaction(self._pool, user_id) as conn:
            return _chunk(await pipeline.get_request(conn, request_id))

    async def _wait(
        self,
        command: Command[Any, R],
        user_id: UUID,
        request_id: UUID,
        queue: asyncio.Queue[RelayChunk],
    ) -> R | None:
        """The result, from the relay or the stored row; None when it is time to re-send."""
        deadline = time.monotonic() + self._resend_after_s
        while time.monotonic() < deadline:
            try:
                chunk = await asyncio.wait_for(queue.get(), self._poll_s)
            except TimeoutError:
                stored = await self._stored(user_id, request_id)
                if stored is not None:
                    return self._decode(command, stored)
                continue
            if chunk.final:
                return self._decode(command, chunk)
        return None

    @staticmethod
    def _decode(command: Command[Any, R], chunk: RelayChunk) -> R:
        if chunk.kind == "error":
            raise CallFailed(
                str(chunk.data.get("code", "failed")), str(chunk.data.get("message", ""))
            )
        return command.result.model_validate(chunk.data)


def _chunk(stored: pipeline.StoredRequest | None) -> RelayChunk | None:
    """A finished stored request as the final chunk it would have streamed."""
    if stored is None:
        return None
    if stored.status == "done" and stored.result is not None:
        return RelayChunk(stored.request_id, 0, "result", stored.result)
    if stored.status == "failed" and stored.error is not None:
        return RelayChunk(stored.request_id, 0, "error", stored.error)
    return None
