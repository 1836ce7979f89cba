"""The gateway's end of the result relay: :class:`RelayHub` takes the chunks workers send (on
one long-lived ``Link`` per worker process, or one ``Push`` per request from an older
worker) and routes them to whoever waits on that request id; :func:`follow` reads one
waiter's queue. The rules of the relay are stated in :mod:`exammentor.messaging.result_relay`."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import grpc
from grpc import aio

from exammentor._proto import relay_pb2, relay_pb2_grpc
from exammentor.logs import get_logger
from exammentor.messaging.result_relay import (
    RELAY_TOKEN_HEADER,
    WAITER_GONE,
    WAITER_QUEUE_SIZE,
    RelayChunk,
    decode_chunk,
)

log = get_logger(__name__)


class RelayHub(relay_pb2_grpc.ResultRelayServicer):
    """The gateway's side: routes incoming chunks to the waiter of each request id.

    With a ``token`` (the gateway and every worker pass their settings' relay token), a Push
    without that token in its metadata is aborted ``UNAUTHENTICATED`` and nothing it sent is
    routed. Without one the hub is open: only tests' own probes are built that way.
    """

    def __init__(self, token: str | None = None) -> None:
        self._waiters: dict[UUID, asyncio.Queue[RelayChunk]] = {}
        self._token = token.encode() if token is not None else None

    @contextlib.contextmanager
    def waiter(self, request_id: UUID) -> Any:
        """Registers a queue for ``request_id`` (before the command is published)."""
        queue: asyncio.Queue[RelayChunk] = asyncio.Queue(maxsize=WAITER_QUEUE_SIZE)
        self._waiters[request_id] = queue
        try:
            yield queue
        finally:
            self._waiters.pop(request_id, None)

    @property
    def waiting(self) -> int:
        """How many requests are waiting for results."""
        return len(self._waiters)

    async def Push(  # noqa: N802 - the gRPC method name
        self,
        request_iterator: AsyncIterator[relay_pb2.ResultChunk],
        context: aio.ServicerContext[relay_pb2.ResultChunk, relay_pb2.RelayAck],
    ) -> relay_pb2.RelayAck:
        """Receives one request's chunks from a worker.

        A progress chunk no one waits for (the client went away, or never was on this
        instance) aborts the call with ``CANCELLED`` and :data:`WAITER_GONE`, so the worker
        can stop producing; the final result is stored by the worker either way. A call
        without the hub's token is refused before its first chunk is read.
        """
        if self._token is not None and not self._authentic(context):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong relay token")
        received = 0
        async for msg in request_iterator:
            received += 1
            chunk = decode_chunk(msg)
            if not self._route(chunk):
                await context.abort(grpc.StatusCode.CANCELLED, f"{WAITER_GONE}: {chunk.request_id}")
        return relay_pb2.RelayAck(received=received)

    async def Link(  # type: ignore[override]  # noqa: N802 - aio: a coroutine writing via context
        self,
        request_iterator: AsyncIterator[relay_pb2.ResultBatch],
        context: aio.ServicerContext[relay_pb2.ResultBatch, relay_pb2.RelayNotice],
    ) -> None:
        """Receives the chunks of every request a worker process streams here, in batches.

        Says hello first (an empty notice: the worker then knows this gateway has the Link).
        A progress chunk no one waits for is answered with a notice naming its request, once,
        so the worker can stop producing. A call without the hub's token is refused before
        its hello.
        """
        if self._token is not None and not self._authentic(context):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong relay token")
        await context.write(relay_pb2.RelayNotice())
        told: set[UUID] = set()
        async for batch in request_iterator:
            for msg in batch.chunks:
                chunk = decode_chunk(msg)
                if self._route(chunk):
                    continue
                if chunk.request_id not in told:
                    if len(told) >= WAITER_QUEUE_SIZE:
                        told.clear()  # bounded; telling a worker twice is harmless
                    told.add(chunk.request_id)
                    await context.write(
                        relay_pb2.RelayNotice(request_id=msg.request_id, waiter_gone=True)
                    )

    def _route(self, chunk: RelayChunk) -> bool:
        """Hands ``chunk`` to its request's waiter; False for progress no one waits for."""
        queue = self._waiters.get(chunk.request_id)
        if queue is not None and (chunk.final or not queue.full()):
            if queue.full():  # keep room for the end: the last progress chunk gives way
                queue.get_nowait()
            queue.put_nowait(chunk)
        elif queue is not None:
            log.warning("client too slow; progress chunk dropped", seq=chunk.seq)
        elif not chunk.final:
            return False
        return True

    def _authentic(self, context: aio.ServicerContext[Any, Any]) -> bool:
        assert self._token is not None
        sent = next(
            (v for k, v in context.invocation_metadata() or () if k == RELAY_TOKEN_HEADER), None
        )
        if not isinstance(sent, str):
            return False
        # Constant time, so the token cannot be guessed a character at a time.
        return hmac.compare_digest(sent.encode(), self._token)


async def follow(queue: asyncio.Queue[RelayChunk]) -> AsyncIterator[RelayChunk]:
    """Chunks of one request in sequence order, without repeats, until the final one."""
    seen: set[int] = set()
    while True:
        chunk = await queue.get()
        if chunk.seq in seen and not chunk.final:
            continue  # a redelivered command sends its progress again
        seen.add(chunk.seq)
        yield chunk
        if chunk.final:
            return
