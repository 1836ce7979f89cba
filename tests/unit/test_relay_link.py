"""The result Link: one long-lived call per worker process and gateway carries every
request's chunks in batches, in order per request; the gateway tells the worker on it when a
request's waiter is gone; a gateway without the Link still gets each request on a Push.

A real gRPC server on loopback (no broker, no database)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator

import grpc
from grpc import aio

from exammentor._proto import relay_pb2, relay_pb2_grpc
from exammentor.messaging.result_hub import RelayHub, follow
from exammentor.messaging.result_relay import RelayChannels, RelayChunk


class _CountingHub(RelayHub):
    """A hub that counts the calls and batches it received."""

    def __init__(self, token: str | None = None) -> None:
        super().__init__(token)
        self.links = 0
        self.batches = 0
        self.pushes = 0

    async def Link(  # type: ignore[override]  # noqa: N802
        self,
        request_iterator: AsyncIterator[relay_pb2.ResultBatch],
        context: aio.ServicerContext[relay_pb2.ResultBatch, relay_pb2.RelayNotice],
    ) -> None:
        self.links += 1

        async def counted() -> AsyncIterator[relay_pb2.ResultBatch]:
            async for batch in request_iterator:
                self.batches += 1
                yield batch

        await super().Link(counted(), context)

    async def Push(  # noqa: N802
        self,
        request_iterator: AsyncIterator[relay_pb2.ResultChunk],
        context: aio.ServicerContext[relay_pb2.ResultChunk, relay_pb2.RelayAck],
    ) -> relay_pb2.RelayAck:
        self.pushes += 1
        return await super().Push(request_iterator, context)


class _PushOnly(relay_pb2_grpc.ResultRelayServicer):
    """A gateway of a release before the Link: Push only (Link answers UNIMPLEMENTED)."""

    def __init__(self, hub: RelayHub) -> None:
        self._hub = hub

    async def Push(  # noqa: N802
        self,
        request_iterator: AsyncIterator[relay_pb2.ResultChunk],
        context: aio.ServicerContext[relay_pb2.ResultChunk, relay_pb2.RelayAck],
    ) -> relay_pb2.RelayAck:
        return await self._hub.Push(request_iterator, context)

    async def Link(  # type: ignore[override]  # noqa: N802
        self,
        request_iterator: AsyncIterator[relay_pb2.ResultBatch],
        context: aio.ServicerContext[relay_pb2.ResultBatch, relay_pb2.RelayNotice],
    ) -> None:
        # What gRPC answers for a method the server does not have.
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")


async def _serve(servicer: relay_pb2_grpc.ResultRelayServicer) -> tuple[aio.Server, str]:
    server = aio.server()
    relay_pb2_grpc.add_ResultRelayServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


@contextlib.contextmanager
def waiters(hub: RelayHub, ids: list[uuid.UUID]) -> Iterator[list[asyncio.Queue[RelayChunk]]]:
    """A waiter on ``hub`` for each request id, as the gateway registers them."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(hub.waiter(i)) for i in ids]


async def _collect(queue: asyncio.Queue[RelayChunk]) -> list[RelayChunk]:
    return [chunk async for chunk in follow(queue)]


async def test_three_hundred_requests_share_one_link_in_batches_each_in_order() -> None:
    hub = _CountingHub("secret")
    server, address = await _serve(hub)
    channels = RelayChannels("secret")
    ids = [uuid.uuid4() for _ in range(300)]
    try:
        with waiters(hub, ids) as queues:
            readers = [asyncio.ensure_future(_collect(q)) for q in queues]

            async def produce(request_id: uuid.UUID) -> None:
                stream = channels.stream(address, request_id)
                for n in range(40):
                    await stream.progress({"n": n})
                await stream.result({"done": str(request_id)})

            await asyncio.gather(*(produce(i) for i in ids))
            got = await asyncio.wait_for(asyncio.gather(*readers), 30)
    finally:
        await channels.close()
        await server.stop(None)
    for request_id, chunks in zip(ids, got, strict=True):
        assert [c.data.get("n") for c in chunks[:-1]] == list(range(40))
        assert [c.seq for c in chunks] == list(range(1, 42))
        assert chunks[-1].kind == "result"
        assert chunks[-1].data == {"done": str(request_id)}
    assert hub.links == 1
    assert hub.pushes == 0
    assert hub.batches < 300 * 41, "every chunk went in a batch of its own"


async def test_a_request_whose_waiter_is_gone_is_cancelled_and_the_others_go_on() -> None:
    hub = RelayHub()
    server, address = await _serve(hub)
    channels = RelayChannels()
    kept, gone = uuid.uuid4(), uuid.uuid4()
    try:
        with hub.waiter(kept) as queue:
            left = channels.stream(address, gone)
            stayed = channels.stream(address, kept)
            await left.progress({"n": 0})
            await asyncio.wait_for(left.wait_cancelled(), 10)
            assert left.cancelled
            await stayed.progress({"n": 0})
            await stayed.result({"ok": True})
            chunks = await asyncio.wait_for(_collect(queue), 10)
            assert not stayed.cancelled
    finally:
        await channels.close()
        await server.stop(None)
    assert [c.kind for c in chunks] == ["progress", "result"]


async def test_a_gateway_without_the_link_gets_each_request_on_a_push() -> None:
    hub = RelayHub()
    server, address = await _serve(_PushOnly(hub))
    channels = RelayChannels()
    ids = [uuid.uuid4(), uuid.uuid4()]
    try:
        with waiters(hub, ids) as queues:
            for request_id in ids:
                stream = channels.stream(address, request_id)
                await stream.progress({"n": 1})
                await stream.result({"id": str(request_id)})
            got = await asyncio.wait_for(asyncio.gather(*(_collect(q) for q in queues)), 10)
    finally:
        await channels.close()
        await server.stop(None)
    assert [[c.kind for c in chunks] for chunks in got] == [["progress", "result"]] * 2
    assert [chunks[-1].data for chunks in got] == [{"id": str(i)} for i in ids]


async def test_a_link_with_the_wrong_token_is_refused_and_routes_nothing() -> None:
    hub = RelayHub("right")
    server, address = await _serve(hub)
    request_id = uuid.uuid4()
    try:
        with hub.waiter(request_id) as queue:
            async with aio.insecure_channel(address) as channel:
                call = relay_pb2_grpc.ResultRelayStub(channel).Link(  # type: ignore[call-arg]
                    metadata=(("x-exammentor-relay-token", "guessed"),)
                )
                chunk = relay_pb2.ResultChunk(
                    request_id=str(request_id), seq=1, result_json='{"forged": true}'
                )
                await call.write(relay_pb2.ResultBatch(chunks=[chunk]))
                assert await call.code() == grpc.StatusCode.UNAUTHENTICATED
            wrong = RelayChannels("guessed")
            await wrong.stream(address, request_id).result({"forged": True})
            await wrong.close()
            assert queue.empty()
    finally:
        await server.stop(None)
