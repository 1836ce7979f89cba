"""Input that once got a 5xx (seen by trying the running stack): each is now a 4xx naming
the field, on both transports, and nothing is stored, published or sent to a model."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import grpc
import httpx
import pytest
from grpc import aio

from exammentor._proto import gateway_pb2 as pb
from exammentor._proto import gateway_pb2_grpc
from tests.integration.conftest import Stack, register

pytestmark = pytest.mark.integration


@pytest.fixture
async def stub(stack: Stack) -> AsyncIterator[gateway_pb2_grpc.StudyGatewayStub]:
    async with aio.insecure_channel(f"127.0.0.1:{stack.gateway.grpc_port}") as channel:
        yield gateway_pb2_grpc.StudyGatewayStub(channel)


async def _requests_of(admin_db: asyncpg.Connection, user_id: str) -> int:
    count: int = await admin_db.fetchval(
        "SELECT count(*) FROM requests WHERE user_id = $1", uuid.UUID(user_id)
    )
    return count


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"text": "a\\u0000b"}', "text"),
        (b'{"text": "\\ud800"}', "text"),
        (b"[" * 50_000 + b"]" * 50_000, "body"),
        (b'{"text": 1' + b"9" * 5000 + b"}", "body"),
        (b'{"text": "x", "service": "planner", "extra": 1}', "extra"),
        (b"\xff\xfe", "body"),
    ],
    ids=["nul", "lone-surrogate", "deep-nesting", "huge-integer", "unknown-field", "not-utf8"],
)
async def test_a_bad_echo_body_is_a_422_naming_the_field(
    client: httpx.AsyncClient, admin_db: asyncpg.Connection, body: bytes, field: str
) -> None:
    user_id, auth = await register(client)
    reply = await client.post(
        "/api/system/echo", content=body, headers={**auth, "content-type": "application/json"}
    )
    assert reply.status_code == 422, reply.text
    detail = reply.json()["detail"]
    assert detail["code"] == "invalid_request"
    assert detail["message"].startswith(f"{field}")
    assert await _requests_of(admin_db, user_id) == 0


async def test_a_date_past_the_calendar_is_refused_before_any_model_call(
    client: httpx.AsyncClient, stub: gateway_pb2_grpc.StudyGatewayStub, admin_db: asyncpg.Connection
) -> None:
    user_id, auth = await register(client)
    body = {"goal": "x", "syllabus_text": "- A", "start_date": "9999-12-30", "days": 5}
    reply = await client.post("/api/plan/generate", json=body, headers=auth)
    assert reply.status_code == 422
    assert reply.json()["detail"]["message"].startswith("start_date:")
    with pytest.raises(aio.AioRpcError) as refused:
        await anext(
            aiter(
                stub.GeneratePlan(
                    pb.PlanRequest(goal="x", syllabus_text="- A", start_date="9999-12-30"),
                    metadata=(("authorization", auth["Authorization"]),),
                )
            )
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (refused.value.details() or "").startswith("start_date:")
    assert await _requests_of(admin_db, user_id) == 0


async def test_nul_text_over_grpc_is_refused_by_name(
    stub: gateway_pb2_grpc.StudyGatewayStub, client: httpx.AsyncClient
) -> None:
    _, auth = await register(client)
    metadata = (("authorization", auth["Authorization"]),)
    with pytest.raises(aio.AioRpcError) as refused:
        await stub.Echo(pb.EchoRequest(text="a\x00b"), metadata=metadata)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (refused.value.details() or "").startswith("text:")


async def test_a_chunked_body_over_the_limit_is_a_413_whatever_its_headers(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    _, auth = await register(client)
    limit = stack.gateway.settings.max_body_bytes

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"text": "'
        for _ in range(limit // 65_536 + 2):
            yield b"a" * 65_536
        yield b'"}'

    reply = await client.post(
        "/api/system/echo", content=chunks(), headers={**auth, "content-type": "application/json"}
    )
    assert reply.status_code == 413
    assert reply.json()["detail"]["limit"] == limit


async def test_out_of_range_query_values_are_422(client: httpx.AsyncClient) -> None:
    _, auth = await register(client)
    reply = await client.get(
        f"/api/requests/{uuid.uuid4()}/events", params={"after": "9" * 30}, headers=auth
    )
    assert reply.status_code == 422
    assert reply.json()["detail"]["errors"][0]["field"] == "after"
