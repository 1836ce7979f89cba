"""Streaming results from workers back to the gateway instance that holds the client.

Workers open one client-streaming ``ResultRelay.Push`` call per request (to the address in
the command's ``reply_to``) and send numbered chunks: progress, then a final result or
error. The gateway's :class:`RelayHub` routes chunks to whoever waits on that request id.
Results are also stored in Postgres, so a lost stream never loses a result.

When no one waits for a request any more (its client went away), the hub aborts the Push
with ``CANCELLED`` and :data:`WAITER_GONE` in the details; the worker's
:class:`ResultStream` then reports itself :attr:`~ResultStream.cancelled`, so a handler
that produces text for a reader (the tutor's token stream) can stop paying for it.

The relay port is internal: it listens on loopback by default, and every Push carries the
shared relay token (``EXAMMENTOR_RELAY_TOKEN``) as call metadata under
:data:`RELAY_TOKEN_HEADER`. A hub given a token aborts any other call with
``UNAUTHENTICATED`` before routing anything, so no one else can inject chunks into a
client's stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import grpc
from grpc import aio

from exammentor._proto import relay_pb2, relay_pb2_grpc
from exammentor.logs import get_logger

log = get_logger(__name__)

RELAY_WRITE_TIMEOUT_S = 10.0
"""Longest one chunk's write to the gateway may take before the stream is given up (the
result is stored either way)."""
WAITER_QUEUE_SIZE = 10_000
"""Chunks held for one client at most; past it progress is dropped (the stored events and
the final result are not), so a client that stopped reading cannot grow the gateway."""

RELAY_TOKEN_HEADER = "x-exammentor-relay-token"  # noqa: S105 - a header name
"""Call metadata that carries the relay token from a worker to the hub."""

WAITER_GONE = "no one waits for this request"
"""Details of the ``CANCELLED`` status the hub aborts a Push with when its waiter is gone."""


@dataclass(frozen=True)
class RelayChunk:
    """One decoded chunk: ``kind`` is progress, result or error."""

    request_id: UUID
    seq: int
    kind: str
    data: dict[str, Any]

    @property
    def final(self) -> bool:
        """True for the result or error that ends a request."""
        return self.kind != "progress"


def decode_chunk(msg: relay_pb2.ResultChunk) -> RelayChunk:
    """The protobuf chunk as a :class:`RelayChunk`."""
    body = msg.WhichOneof("body")
    if body == "progress_json":
        return RelayChunk(UUID(msg.request_id), msg.seq, "progress", json.loads(msg.progress_json))
    if body == "result_json":
        return RelayChunk(UUID(msg.request_id), msg.seq, "result", json.loads(msg.result_json))
    details = json.loads(msg.error.details_json) if msg.error.details_json else {}
    return RelayChunk(
        UUID(msg.request_id),
        msg.seq,
        "error",
        {**details, "code": msg.error.code, "message": msg.error.message},
    )


class ResultStream:
    """The worker's side of one request's stream. Never raises for a gateway that is gone:
    the result is in the database, and losing the live stream only costs the client a fetch.
    """

    def __init__(self, channels: RelayChannels, address: str | None, request_id: UUID) -> None:
        self._channels = channels
        self._address = address
        self._request_id = str(request_id)
        self._seq = 0
        self._call: aio.StreamUnaryCall[relay_pb2.ResultChunk, relay_pb2.RelayAck] | None = None
        self._broken = address is None
        self._cancelled = asyncio.Event()
        self._watch: asyncio.Task[None] | None = None

    @property
    def cancelled(self) -> bool:
        """True once the gateway said no one waits for this request (the client left)."""
        return self._cancelled.is_set()

    async def wait_cancelled(self) -> None:
        """Returns when the gateway says no one waits for this request any more."""
        await self._cancelled.wait()

    async def _watch_call(
        self, call: aio.StreamUnaryCall[relay_pb2.ResultChunk, relay_pb2.RelayAck]
    ) -> None:
        # The call ends early only when the gateway aborts it; waiting on its status costs
        # nothing and tells a handler at once, not at its next write.
        try:
            code = await call.code()
            details = await call.details()
        except asyncio.CancelledError:
            return
        if code == grpc.StatusCode.CANCELLED and WAITER_GONE in (details or ""):
            self._broken = True
            self._cancelled.set()
        elif code == grpc.StatusCode.UNAUTHENTICATED:
            log.error(
                "the result relay refused this worker's token; give gateway and workers the "
                "same EXAMMENTOR_RELAY_TOKEN",
                address=self._address,
            )

    @property
    def seq(self) -> int:
        """Sequence number of the last chunk sent."""
        return self._seq

    def resume_after(self, seq: int) -> None:
        """Numbers the next chunk after ``seq``: a retried command's progress continues the
        numbers an earlier attempt stored, so a client never drops it as already seen."""
        self._seq = max(self._seq, seq)

    async def _send(self, chunk: relay_pb2.ResultChunk) -> None:
        if self._broken:
            return
        try:
            if self._call is None:
                assert self._address is not None
                stub = relay_pb2_grpc.ResultRelayStub(self._channels.get(self._address))
                self._call = stub.Push(  # type: ignore[call-arg]  # stubs predate aio
                    timeout=3600, metadata=self._channels.metadata
                )
                self._watch = asyncio.ensure_future(self._watch_call(self._call))
            # Bounded: a gateway that stopped reading must not hold the command up.
            await asyncio.wait_for(self._call.write(chunk), RELAY_WRITE_TIMEOUT_S)
        except (grpc.RpcError, asyncio.InvalidStateError, TimeoutError) as exc:
            log.warning("result relay unavailable", address=self._address, error=str(exc))
            self._broken = True

    async def progress(self, data: dict[str, Any]) -> int:
        """Sends one progress event; returns its sequence number."""
        self._seq += 1
        await self._send(
            relay_pb2.ResultChunk(
                request_id=self._request_id, seq=self._seq, progress_json=json.dumps(data)
            )
        )
        return self._seq

    async def result(self, data: dict[str, Any]) -> None:
        """Sends the final result and closes the stream."""
        self._seq += 1
        await self._send(
            relay_pb2.ResultChunk(
                request_id=self._request_id, seq=self._seq, result_json=json.dumps(data)
            )
        )
        await self.close()

    async def error(self, error: dict[str, Any]) -> None:
        """Sends a final error (``code``, ``message`` and any details) and closes the stream."""
        details = {k: v for k, v in error.items() if k not in {"code", "message"}}
        self._seq += 1
        await self._send(
            relay_pb2.ResultChunk(
                request_id=self._request_id,
                seq=self._seq,
                error=relay_pb2.RequestError(
                    code=str(error.get("code", "failed")),
                    message=str(error.get("message", "")),
                    details_json=json.dumps(details) if details else "",
                ),
            )
        )
        await self.close()

    async def close(self) -> None:
        """Ends the call (idempotent)."""
        if self._call is not None and not self._broken:
            try:
                await self._call.done_writing()
                await self._call
            except (grpc.RpcError, asyncio.InvalidStateError) as exc:
                log.warning("result relay closed badly", error=str(exc))
        self._broken = True
        if self._watch is not None and not self._watch.done():
            self._watch.cancel()


class RelayChannels:
    """One gRPC channel per gateway address, reused by every request; ``token`` is the
    relay token every Push sends (None sends none: only a test's open hub accepts that)."""

    def __init__(self, token: str | None = None) -> None:
        self._channels: dict[str, aio.Channel] = {}
        self.metadata: tuple[tuple[str, str], ...] = (
            ((RELAY_TOKEN_HEADER, token),) if token is not None else ()
        )

    def get(self, address: str) -> aio.Channel:
        """The channel to ``address``, opened on first use."""
        channel = self._channels.get(address)
        if channel is None:
            channel = aio.insecure_channel(address)
            self._channels[address] = channel
        return channel

    def stream(self, address: str | None, request_id: UUID) -> ResultStream:
        """A new result stream for one request."""
        return ResultStream(self, address, request_id)

    async def close(self) -> None:
        """Closes every channel."""
        for channel in self._channels.values():
            await channel.close(grace=None)
        self._channels.clear()


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
            queue = self._waiters.get(chunk.request_id)
            if queue is not None and (chunk.final or not queue.full()):
                if queue.full():  # keep room for the end: the last progress chunk gives way
                    queue.get_nowait()
                queue.put_nowait(chunk)
            elif queue is not None:
                log.warning("client too slow; progress chunk dropped", seq=chunk.seq)
            elif not chunk.final:
                await context.abort(grpc.StatusCode.CANCELLED, f"{WAITER_GONE}: {chunk.request_id}")
        return relay_pb2.RelayAck(received=received)

    def _authentic(
        self, context: aio.ServicerContext[relay_pb2.ResultChunk, relay_pb2.RelayAck]
    ) -> bool:
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
