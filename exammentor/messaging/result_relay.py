"""Streaming results from workers back to the gateway instance that holds the client.

Each worker process holds one long-lived ``ResultRelay.Link`` call per gateway it answers (the
address in a command's ``reply_to``), shared by every request streamed there (:class:`RelayLink`):
numbered chunks of many requests go in batches, progress first, then each request's final
result or error. A gateway of an older release, without ``Link``, gets one client-streaming
``Push`` call per request instead. The gateway's
:class:`~exammentor.messaging.result_hub.RelayHub` routes chunks to whoever waits on that
request id. Results are also stored in Postgres, so a lost stream never loses a result.

When no one waits for a request any more (its client went away), the hub says so on the Link
(or aborts the Push with ``CANCELLED`` and :data:`WAITER_GONE` in the details); the worker's
:class:`ResultStream` then reports itself :attr:`~ResultStream.cancelled`, so a handler
that produces text for a reader (the tutor's token stream) can stop paying for it.

The relay port is internal: it listens on loopback by default, and every Link and Push carries
the shared relay token (``EXAMMENTOR_RELAY_TOKEN``) as call metadata under
:data:`RELAY_TOKEN_HEADER`. A hub given a token aborts any other call with
``UNAUTHENTICATED`` before routing anything, so no one else can inject chunks into a
client's stream.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import grpc
from grpc import aio

from exammentor._proto import relay_pb2, relay_pb2_grpc
from exammentor.json_codec import dumps
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

    Chunks go on the process's :class:`RelayLink` to the gateway (queued, sent in batches);
    a gateway without the Link gets one ``Push`` call for this request instead.
    """

    def __init__(self, channels: RelayChannels, address: str | None, request_id: UUID) -> None:
        self._channels = channels
        self._address = address
        self._request_id = str(request_id)
        self._seq = 0
        self._link: RelayLink | None = None
        self._call: aio.StreamUnaryCall[relay_pb2.ResultChunk, relay_pb2.RelayAck] | None = None
        self._broken = address is None
        self._cancelled = asyncio.Event()
        self._watch: asyncio.Task[None] | None = None

    @property
    def request_id(self) -> str:
        """The request's id, as the chunks carry it."""
        return self._request_id

    @property
    def cancelled(self) -> bool:
        """True once the gateway said no one waits for this request (the client left)."""
        return self._cancelled.is_set()

    async def wait_cancelled(self) -> None:
        """Returns when the gateway says no one waits for this request any more."""
        await self._cancelled.wait()

    def waiter_gone(self) -> None:
        """The gateway said no one waits for this request: stop sending, tell the handler."""
        self._broken = True
        self._cancelled.set()

    def link_lost(self) -> None:
        """The Link this request's chunks went on failed: nothing more is sent."""
        self._broken = True

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
            self.waiter_gone()
        elif code == grpc.StatusCode.UNAUTHENTICATED:
            log.error(UNAUTHENTICATED_HINT, address=self._address)

    @property
    def seq(self) -> int:
        """Sequence number of the last chunk sent."""
        return self._seq

    def resume_after(self, seq: int) -> None:
        """Numbers the next chunk after ``seq``: a retried command's progress continues the
        numbers an earlier attempt stored, so a client never drops it as already seen."""
        self._seq = max(self._seq, seq)

    async def _send(self, chunk: relay_pb2.ResultChunk, *, final: bool = False) -> None:
        if self._broken:
            return
        assert self._address is not None
        try:
            if self._link is None and self._call is None:
                link = await self._channels.link(self._address)
                if link is not None:
                    self._link = link
                    link.attach(self)
            if self._link is not None:
                # Progress is queued (the Link sends it with whatever else is waiting); the
                # end is awaited, so the record is marked done once its result went out.
                await self._link.send(chunk, self, wait=final)
                return
            await self._push(chunk)
        except (grpc.RpcError, asyncio.InvalidStateError, TimeoutError, RelayLinkLost) as exc:
            log.warning("result relay unavailable", address=self._address, error=repr(exc))
            self._broken = True

    async def _push(self, chunk: relay_pb2.ResultChunk) -> None:
        """One ``Push`` call for this request (a gateway without the Link)."""
        if self._call is None:
            assert self._address is not None
            stub = relay_pb2_grpc.ResultRelayStub(self._channels.get(self._address))
            self._call = stub.Push(  # type: ignore[call-arg]  # stubs predate aio
                timeout=3600, metadata=self._channels.metadata
            )
            self._watch = asyncio.ensure_future(self._watch_call(self._call))
        # Bounded: a gateway that stopped reading must not hold the command up.
        async with asyncio.timeout(RELAY_WRITE_TIMEOUT_S):
            await self._call.write(chunk)

    async def progress(self, data: dict[str, Any]) -> int:
        """Sends one progress event; returns its sequence number."""
        self._seq += 1
        await self._send(
            relay_pb2.ResultChunk(
                request_id=self._request_id, seq=self._seq, progress_json=dumps(data)
            )
        )
        return self._seq

    async def result(self, data: dict[str, Any]) -> None:
        """Sends the final result and closes the stream."""
        self._seq += 1
        await self._send(
            relay_pb2.ResultChunk(
                request_id=self._request_id, seq=self._seq, result_json=dumps(data)
            ),
            final=True,
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
                    details_json=dumps(details) if details else "",
                ),
            ),
            final=True,
        )
        await self.close()

    async def close(self) -> None:
        """Ends the stream (idempotent)."""
        if self._link is not None:
            self._link.detach(self)
        if self._call is not None and not self._broken:
            try:
                await self._call.done_writing()
                await self._call
            except (grpc.RpcError, asyncio.InvalidStateError) as exc:
                log.warning("result relay closed badly", error=str(exc))
        self._broken = True
        if self._watch is not None and not self._watch.done():
            self._watch.cancel()


UNAUTHENTICATED_HINT = (
    "the result relay refused this worker's token; give gateway and workers the same "
    "EXAMMENTOR_RELAY_TOKEN"
)

LINK_QUEUE_SIZE = 10_000
"""Chunks queued on one Link at most; a progress chunk past it waits (up to
:data:`RELAY_WRITE_TIMEOUT_S`) for room, so a gateway that stopped reading cannot grow the
worker."""
LINK_BATCH_SIZE = 500
"""Chunks sent in one ``ResultBatch`` at most."""


class RelayLinkLost(Exception):
    """The Link failed before a chunk queued on it was sent."""


class RelayLink:
    """One long-lived ``Link`` call from this process to one gateway, shared by every request
    streamed there.

    Chunks are queued and sent by one writer in batches: what queued while a batch was being
    written goes in the next, so a busy process sends fewer, larger messages and a quiet one
    sends each chunk at once (no timer). One request's chunks keep their order. The gateway
    answers on the same call when a request's waiter is gone (:meth:`ResultStream.waiter_gone`).

    The call opens on first use and waits for the gateway's hello; a gateway that does not know
    ``Link`` (an older release) makes :meth:`open` return False, and its requests use ``Push``.
    A Link that fails ends the live streams that were on it (their results are stored) and is
    opened again by the next request.
    """

    def __init__(self, channel: aio.Channel, metadata: tuple[tuple[str, str], ...], address: str):
        self._channel = channel
        self._metadata = metadata
        self._address = address
        self._queue: deque[tuple[relay_pb2.ResultChunk, asyncio.Future[None] | None]] = deque()
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._streams: dict[str, ResultStream] = {}
        self._call: aio.StreamStreamCall[relay_pb2.ResultBatch, relay_pb2.RelayNotice] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.alive = False

    async def open(self) -> bool:
        """Opens the call and waits for the gateway's hello. False: the gateway has no Link.

        Raises:
            grpc.RpcError: The gateway refused the call (a wrong token) or did not answer.
            TimeoutError: No hello within :data:`RELAY_WRITE_TIMEOUT_S`.
            RelayLinkLost: The call ended before the hello.
        """
        stub = relay_pb2_grpc.ResultRelayStub(self._channel)
        call = stub.Link(metadata=self._metadata)  # type: ignore[call-arg]  # stubs predate aio
        failure: grpc.RpcError | None = None
        try:
            async with asyncio.timeout(RELAY_WRITE_TIMEOUT_S):
                hello = await call.read()
        except grpc.RpcError as exc:
            call.cancel()
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                return False
            failure = exc
        except BaseException:
            call.cancel()
            raise
        if failure is not None:
            if failure.code() == grpc.StatusCode.UNAUTHENTICATED:
                log.error(UNAUTHENTICATED_HINT, address=self._address)
            raise failure
        if not isinstance(hello, relay_pb2.RelayNotice):  # the call ended (EOF)
            call.cancel()
            raise RelayLinkLost(self._address)
        self._call = call
        self.alive = True
        self._tasks = [
            asyncio.create_task(self._write(call), name=f"relay link to {self._address}"),
            asyncio.create_task(self._read(call), name=f"relay notices from {self._address}"),
        ]
        return True

    def attach(self, stream: ResultStream) -> None:
        """Routes the gateway's notices about ``stream``'s request to it."""
        self._streams[stream.request_id] = stream

    def detach(self, stream: ResultStream) -> None:
        """Stops routing notices to ``stream`` (its request ended)."""
        if self._streams.get(stream.request_id) is stream:
            del self._streams[stream.request_id]

    async def send(self, chunk: relay_pb2.ResultChunk, stream: ResultStream, *, wait: bool) -> None:
        """Queues ``chunk``; with ``wait``, returns once it was written.

        Raises:
            RelayLinkLost: The Link failed before the chunk went out.
            TimeoutError: No room, or (with ``wait``) not written, within
                :data:`RELAY_WRITE_TIMEOUT_S`.
        """
        if not self.alive:
            raise RelayLinkLost(self._address)
        if not wait and len(self._queue) < LINK_QUEUE_SIZE:
            # The common case (a token): queued at once, no timer armed.
            self._queue.append((chunk, None))
            self._wake.set()
            return
        async with asyncio.timeout(RELAY_WRITE_TIMEOUT_S):
            while len(self._queue) >= LINK_QUEUE_SIZE:
                self._room.clear()
                await self._room.wait()
                if not self.alive:
                    raise RelayLinkLost(self._address)
            done = asyncio.get_running_loop().create_future() if wait else None
            self._queue.append((chunk, done))
            self._wake.set()
            if done is not None:
                await done

    async def _write(
        self, call: aio.StreamStreamCall[relay_pb2.ResultBatch, relay_pb2.RelayNotice]
    ) -> None:
        taken: list[tuple[relay_pb2.ResultChunk, asyncio.Future[None] | None]] = []
        try:
            while True:
                if not self._queue:
                    self._wake.clear()
                    await self._wake.wait()
                count = min(LINK_BATCH_SIZE, len(self._queue))
                taken = [self._queue.popleft() for _ in range(count)]
                self._room.set()
                async with asyncio.timeout(RELAY_WRITE_TIMEOUT_S):
                    await call.write(relay_pb2.ResultBatch(chunks=[c for c, _ in taken]))
                for _, done in taken:
                    if done is not None and not done.done():
                        done.set_result(None)
                taken = []
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure ends this Link
            log.warning("result relay link lost", address=self._address, error=repr(exc))
            self._lost(taken)

    async def _read(
        self, call: aio.StreamStreamCall[relay_pb2.ResultBatch, relay_pb2.RelayNotice]
    ) -> None:
        try:
            while isinstance(notice := await call.read(), relay_pb2.RelayNotice):
                stream = self._streams.get(notice.request_id)
                if stream is not None and notice.waiter_gone:
                    stream.waiter_gone()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the writer reports it too
            log.debug("result relay link ended", address=self._address, error=repr(exc))
        if self.alive:
            self._lost([])

    def _lost(self, taken: list[tuple[relay_pb2.ResultChunk, asyncio.Future[None] | None]]) -> None:
        """Ends the Link: the streams on it stop sending; what waits for a write is told."""
        self.alive = False
        if self._call is not None:
            self._call.cancel()
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        for _, done in [*taken, *self._queue]:
            if done is not None and not done.done():
                done.set_exception(RelayLinkLost(self._address))
        self._queue.clear()
        self._room.set()
        for stream in list(self._streams.values()):
            stream.link_lost()
        self._streams.clear()

    async def close(self) -> None:
        """Stops the Link (what is queued is dropped: results are stored)."""
        self.alive = False
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._call is not None:
            self._call.cancel()


class RelayChannels:
    """One gRPC channel and one :class:`RelayLink` per gateway address, reused by every
    request; ``token`` is the relay token every call sends (None sends none: only a test's
    open hub accepts that)."""

    def __init__(self, token: str | None = None) -> None:
        self._channels: dict[str, aio.Channel] = {}
        self._links: dict[str, RelayLink] = {}
        self._no_link: set[str] = set()
        self._opening: dict[str, asyncio.Lock] = {}
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

    async def link(self, address: str) -> RelayLink | None:
        """The live Link to ``address`` (opened when there is none); None when that gateway
        has no Link (use ``Push``).

        Raises:
            grpc.RpcError: The gateway refused or did not answer.
            TimeoutError: The gateway did not say hello in time.
            RelayLinkLost: The call ended before the hello.
        """
        if address in self._no_link:
            return None
        link = self._links.get(address)
        if link is not None and link.alive:
            return link
        lock = self._opening.setdefault(address, asyncio.Lock())
        async with lock:
            link = self._links.get(address)
            if link is not None and link.alive:
                return link
            link = RelayLink(self.get(address), self.metadata, address)
            if not await link.open():
                self._no_link.add(address)
                return None
            self._links[address] = link
            return link

    def stream(self, address: str | None, request_id: UUID) -> ResultStream:
        """A new result stream for one request."""
        return ResultStream(self, address, request_id)

    async def close(self) -> None:
        """Closes every Link and channel."""
        for link in self._links.values():
            await link.close()
        self._links.clear()
        for channel in self._channels.values():
            await channel.close(grace=None)
        self._channels.clear()
