"""A request and its command commit together, a client's retry gets the same request, and
nothing stays pending forever: what a client gets when Kafka does not take a command, when
a publish times out after Kafka stored it, and when a request is stuck."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka.errors import KafkaConnectionError
from grpc import aio

from exammentor._proto import gateway_pb2, gateway_pb2_grpc
from services.gateway.app import Gateway
from services.gateway.sweeper import SweepPolicy
from tests.conftest import SessionEnv
from tests.integration.conftest import Stack, register, start_stack

pytestmark = pytest.mark.integration


async def _applied(admin_db: asyncpg.Connection, request_id: str) -> dict[str, Any]:
    row = await admin_db.fetchrow(
        "SELECT r.status, r.error, "
        "(SELECT count(*) FROM inbox i WHERE i.command_id = (r.command->>'command_id')::uuid) "
        "AS inbox, (SELECT count(*) FROM outbox o WHERE o.envelope->>'request_id' = $2) "
        "AS events FROM requests r WHERE r.id = $1",
        uuid.UUID(request_id),
        request_id,
    )
    return dict(row)


async def _end_of(http: httpx.AsyncClient, request_id: str, auth: dict[str, str]) -> dict[str, Any]:
    """The last line of a followed request (it waits for the end)."""
    async with http.stream("GET", f"/api/requests/{request_id}/events", headers=auth) as reply:
        lines = [json.loads(line) async for line in reply.aiter_lines() if line]
    return lines[-1]


async def test_a_retry_with_the_same_idempotency_key_gets_the_same_request(
    client: httpx.AsyncClient, stack: Stack, admin_db: asyncpg.Connection
) -> None:
    user_id, auth = await register(client)
    keyed = {**auth, "Idempotency-Key": "checkout-42"}
    first = await client.post("/api/system/echo", json={"text": "once"}, headers=keyed)
    again = await client.post("/api/system/echo", json={"text": "once"}, headers=keyed)
    assert first.status_code == again.status_code == 200
    assert first.headers["X-Request-Id"] == again.headers["X-Request-Id"]
    assert first.json() == again.json()
    assert (await _applied(admin_db, first.headers["X-Request-Id"]))["inbox"] == 1
    assert (
        await admin_db.fetchval(
            "SELECT count(*) FROM requests WHERE user_id = $1", uuid.UUID(user_id)
        )
        == 1
    )

    other_body = await client.post("/api/system/echo", json={"text": "twice"}, headers=keyed)
    assert other_body.status_code == 409
    assert other_body.json()["detail"]["code"] == "idempotency_conflict"
    bad_key = await client.post(
        "/api/system/echo", json={"text": "x"}, headers={**auth, "Idempotency-Key": "k" * 201}
    )
    assert bad_key.status_code == 422

    async with aio.insecure_channel(f"127.0.0.1:{stack.gateway.grpc_port}") as channel:
        stub = gateway_pb2_grpc.StudyGatewayStub(channel)
        metadata = (("authorization", auth["Authorization"]), ("idempotency-key", "grpc-7"))
        one = await stub.Echo(gateway_pb2.EchoRequest(text="g"), metadata=metadata)
        two = await stub.Echo(gateway_pb2.EchoRequest(text="g"), metadata=metadata)
    assert one.request_id == two.request_id


@pytest.fixture
async def sweeping_gateway(
    test_env: SessionEnv, stack: Stack
) -> AsyncIterator[tuple[Gateway, httpx.AsyncClient]]:
    """A second gateway over the stack's workers, whose sweeper the test drives itself."""
    del stack  # its workers answer this gateway's commands
    settings = {
        "request_timeout_s": 30,
        "publish_timeout_s": 2,
        "sweep": SweepPolicy(republish_after_s=0, running_deadline_s=60, interval_s=3600),
    }
    async with (
        start_stack(test_env, [], own_topics=False, gateway=settings) as sweeping,
        httpx.AsyncClient(base_url=sweeping.base_url, timeout=60) as http,
    ):
        yield sweeping.gateway, http


def _patch_publish(gateway: Gateway, fake: Callable[..., Awaitable[Any]]) -> Callable[[], None]:
    broker = gateway._broker
    assert broker is not None
    real = broker.publish
    broker.publish = fake  # type: ignore[method-assign]

    def restore() -> None:
        broker.publish = real  # type: ignore[method-assign]

    return restore


async def test_a_command_kafka_did_not_take_is_queued_then_sent_by_the_sweeper(
    sweeping_gateway: tuple[Gateway, httpx.AsyncClient], admin_db: asyncpg.Connection
) -> None:
    gateway, http = sweeping_gateway
    _, auth = await register(http)

    async def refuse(*_: object, **__: object) -> None:
        raise KafkaConnectionError("broker down")

    restore = _patch_publish(gateway, refuse)
    try:
        queued = await http.post("/api/system/echo", json={"text": "later"}, headers=auth)
    finally:
        restore()
    # What the client gets: 202, the request id and where to follow it; nothing is lost.
    assert queued.status_code == 202, queued.text
    request_id = queued.json()["request_id"]
    assert (await _applied(admin_db, request_id))["status"] == "pending"

    assert gateway.sweeper is not None
    sent, _ = await gateway.sweeper.sweep_once()
    assert sent == 1
    end = await _end_of(http, request_id, auth)
    assert end["type"] == "complete"
    assert end["final_result"]["echo"] == "later"
    assert await _applied(admin_db, request_id) == {
        "status": "done",
        "error": None,
        "inbox": 1,
        "events": 1,
    }
    assert await gateway.sweeper.sweep_once() == (0, 0)  # done: nothing to send again


async def test_a_publish_that_timed_out_after_kafka_stored_it_is_applied_once(
    sweeping_gateway: tuple[Gateway, httpx.AsyncClient], admin_db: asyncpg.Connection
) -> None:
    gateway, http = sweeping_gateway
    _, auth = await register(http)
    assert gateway._broker is not None
    real = gateway._broker.publish

    async def stored_then_lost(*args: Any, **kwargs: Any) -> None:
        await real(*args, **kwargs)
        raise TimeoutError("no acknowledgement in time")

    restore = _patch_publish(gateway, stored_then_lost)
    try:
        queued = await http.post("/api/system/echo", json={"text": "maybe"}, headers=auth)
    finally:
        restore()
    assert queued.status_code == 202
    request_id = queued.json()["request_id"]
    assert gateway.sweeper is not None
    await gateway.sweeper.sweep_once()  # sends it again if still pending: the inbox dedupes
    end = await _end_of(http, request_id, auth)
    assert end["type"] == "complete"
    applied = await _applied(admin_db, request_id)
    assert (applied["status"], applied["inbox"], applied["events"]) == ("done", 1, 1)


async def test_the_reaper_ends_requests_stuck_past_their_deadline(
    sweeping_gateway: tuple[Gateway, httpx.AsyncClient], admin_db: asyncpg.Connection
) -> None:
    gateway, http = sweeping_gateway
    user_id, auth = await register(http)
    stuck_pending, stuck_running, finished = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await admin_db.executemany(
        "INSERT INTO requests (id, user_id, kind, status, publish_attempts, updated_at, "
        "command, topic) VALUES ($1, $2, 'system.echo', $3, $4, now() - interval '2 hours', "
        "'{}'::jsonb, 'nowhere')",
        [
            (stuck_pending, uuid.UUID(user_id), "pending", 5),
            (stuck_running, uuid.UUID(user_id), "running", 0),
            (finished, uuid.UUID(user_id), "done", 0),
        ],
    )
    assert gateway.sweeper is not None
    _, expired = await gateway.sweeper.sweep_once()
    assert expired >= 2
    for request_id in (stuck_pending, stuck_running):
        stored = (await http.get(f"/api/requests/{request_id}", headers=auth)).json()
        assert stored["status"] == "failed"
        assert stored["error"]["code"] == "expired"
        end = await _end_of(http, str(request_id), auth)
        assert (end["type"], end["code"]) == ("error", "expired")
    assert (await http.get(f"/api/requests/{finished}", headers=auth)).json()["status"] == "done"
