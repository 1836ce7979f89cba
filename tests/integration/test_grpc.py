"""The public gRPC API of the gateway, over a real channel."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import grpc
import httpx
import pytest
from grpc import aio

from exammentor._proto import gateway_pb2, gateway_pb2_grpc
from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration


@pytest.fixture
async def grpc_stub(stack: Stack) -> AsyncIterator[gateway_pb2_grpc.StudyGatewayStub]:
    """A stub on a channel to the stack's gateway."""
    async with aio.insecure_channel(f"127.0.0.1:{stack.gateway.grpc_port}") as channel:
        yield gateway_pb2_grpc.StudyGatewayStub(channel)


async def test_register_login_and_fetch_a_request_over_grpc(
    grpc_stub: gateway_pb2_grpc.StudyGatewayStub, client: httpx.AsyncClient
) -> None:
    name = f"grpc-{uuid.uuid4().hex[:8]}"
    registered = await grpc_stub.Register(
        gateway_pb2.Credentials(name=name, password="grpc-password")
    )
    token = await grpc_stub.Login(gateway_pb2.Credentials(name=name, password="grpc-password"))
    assert token.user_id == registered.user_id
    auth = {"Authorization": f"Bearer {token.access_token}"}

    # A request made over HTTP is visible over gRPC to the same user (one token, two APIs).
    reply = await client.post("/api/system/echo", json={"text": "both"}, headers=auth)
    request_id = reply.headers["X-Request-Id"]
    stored = await grpc_stub.GetRequest(
        gateway_pb2.RequestRef(request_id=request_id),
        metadata=(("authorization", f"Bearer {token.access_token}"),),
    )
    assert stored.status == "done"
    assert stored.result["echo"] == "both"
    assert stored.kind == "system.echo"


async def test_grpc_refuses_missing_tokens_and_bad_input(
    grpc_stub: gateway_pb2_grpc.StudyGatewayStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await grpc_stub.GetRequest(gateway_pb2.RequestRef(request_id=str(uuid.uuid4())))
    assert missing.value.code() == grpc.StatusCode.UNAUTHENTICATED

    with pytest.raises(grpc.aio.AioRpcError) as short:
        await grpc_stub.Register(gateway_pb2.Credentials(name="x", password="short"))
    assert short.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "password" in (short.value.details() or "")

    with pytest.raises(grpc.aio.AioRpcError) as wrong:
        await grpc_stub.Login(
            gateway_pb2.Credentials(name=f"nobody-{uuid.uuid4().hex[:6]}", password="whatever1")
        )
    assert wrong.value.code() == grpc.StatusCode.UNAUTHENTICATED


def _reflect(address: str) -> tuple[list[str], list[str], bytes]:
    """What a client with no proto files learns from the server (as grpcurl does)."""
    from google.protobuf.descriptor_pool import DescriptorPool
    from google.protobuf.message_factory import GetMessageClass
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )

    with grpc.insecure_channel(address) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = sorted(database.get_services())
        pool = DescriptorPool(database)
        service = pool.FindServiceByName("exammentor.gateway.v1.StudyGateway")
        methods = sorted(m.name for m in service.methods)
        # Build a request message from the reflected descriptor alone and call with it.
        request_cls = GetMessageClass(
            pool.FindMessageTypeByName("exammentor.gateway.v1.Credentials")
        )
        token_cls = GetMessageClass(pool.FindMessageTypeByName("exammentor.gateway.v1.Token"))
        call = channel.unary_unary(
            "/exammentor.gateway.v1.StudyGateway/Register",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=token_cls.FromString,
        )
        token = call(request_cls(name=f"reflect-{uuid.uuid4().hex[:8]}", password="pass-word-1"))
        return services, methods, token.access_token.encode()


async def test_reflection_and_health_answer_a_client_without_proto_files(stack: Stack) -> None:
    import asyncio

    from grpc_health.v1 import health_pb2, health_pb2_grpc

    address = f"127.0.0.1:{stack.gateway.grpc_port}"
    # In a thread: the reflection client is synchronous and the server runs on this loop.
    services, methods, token = await asyncio.to_thread(_reflect, address)
    assert "exammentor.gateway.v1.StudyGateway" in services
    assert "grpc.health.v1.Health" in services
    assert "grpc.reflection.v1alpha.ServerReflection" in services
    assert {"Register", "GeneratePlan", "StartSession", "GetSessionHistory"} <= set(methods)
    assert token.count(b".") == 2  # a JWT, issued for a request built from reflection alone

    async with aio.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "exammentor.gateway.v1.StudyGateway"):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(aio.AioRpcError) as unknown:
            await health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"))
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_grpc_client_lists_and_follows_its_requests(
    grpc_stub: gateway_pb2_grpc.StudyGatewayStub,
) -> None:
    token = await grpc_stub.Register(
        gateway_pb2.Credentials(name=f"follow-{uuid.uuid4().hex[:8]}", password="pass-word-1")
    )
    auth = (("authorization", f"Bearer {token.access_token}"),)
    echoed = await grpc_stub.Echo(gateway_pb2.EchoRequest(text="followed"), metadata=auth)
    listed = await grpc_stub.ListRequests(gateway_pb2.RequestListRequest(), metadata=auth)
    assert [r.request_id for r in listed.requests] == [echoed.request_id]
    lines = [
        line
        async for line in grpc_stub.FollowRequest(
            gateway_pb2.RequestFollow(request_id=echoed.request_id), metadata=auth
        )
    ]
    assert [line.type for line in lines] == ["complete"]
    assert dict(lines[-1].data["final_result"])["echo"] == "followed"
    with pytest.raises(aio.AioRpcError) as unknown:
        _ = [
            line
            async for line in grpc_stub.FollowRequest(
                gateway_pb2.RequestFollow(request_id=str(uuid.uuid4())), metadata=auth
            )
        ]
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
