"""Maintenance mode on both transports: writes answered 503 with Retry-After, reads served,
commands already in Kafka applied, and writes back once it is off, with no restart."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import grpc
import httpx
import pytest
from aiokafka import AIOKafkaProducer
from grpc import aio

from exammentor._proto import gateway_pb2 as pb
from exammentor._proto import gateway_pb2_grpc
from exammentor.contracts.envelope import CommandEnvelope
from exammentor.messaging.consumer import encode_command
from exammentor.messaging.topic_admin import command_topic
from exammentor.ops import maintenance
from tests.conftest import SessionEnv
from tests.integration.conftest import RelayProbe, Stack

pytestmark = pytest.mark.integration

RETRY_AFTER_S = 7


@pytest.fixture
async def stub(stack: Stack) -> AsyncIterator[gateway_pb2_grpc.StudyGatewayStub]:
    async with aio.insecure_channel(f"127.0.0.1:{stack.gateway.grpc_port}") as channel:
        yield gateway_pb2_grpc.StudyGatewayStub(channel)


@pytest.fixture
async def window(test_env: SessionEnv) -> AsyncIterator[Callable[[bool], Awaitable[None]]]:
    """Turns maintenance on or off as an operator does; always off again afterwards."""

    async def turn(on: bool) -> None:
        await maintenance.set_mode(
            test_env.admin_dsn,
            on,
            reason="upgrade window" if on else None,
            retry_after_s=RETRY_AFTER_S,
            changed_by="test",
        )

    yield turn
    await turn(False)


async def _echo(client: httpx.AsyncClient, auth: dict[str, str]) -> httpx.Response:
    return await client.post("/api/system/echo", json={"text": "hi"}, headers=auth)


async def _until(check: Callable[[], Awaitable[bool]], what: str, within_s: float = 10) -> None:
    """Polls ``check`` until true: the gateway's cache of the flag lasts about a second."""
    deadline = asyncio.get_running_loop().time() + within_s
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.2)


async def _operator(dsn: str, *args: str) -> tuple[int, str]:
    """``exammentor ARGS`` as an operator runs it, with the owner's connection string."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "exammentor.ops.cli",
        *args,
        env={**os.environ, "DATABASE_URL": dsn},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    # The last line is the command's answer (log lines come before it).
    return proc.returncode or 0, out.decode().strip().splitlines()[-1]


def _metadata(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def test_writes_refused_reads_served_on_both_transports_and_resumed_without_restart(
    client: httpx.AsyncClient,
    stub: gateway_pb2_grpc.StudyGatewayStub,
    window: Callable[[bool], Awaitable[None]],
    test_env: SessionEnv,
    producer: AIOKafkaProducer,
    relay_probe: RelayProbe,
    admin_db: asyncpg.Connection,
) -> None:
    name = f"maint-{uuid.uuid4().hex[:8]}"
    token = await stub.Register(pb.Credentials(name=name, password="maint-password"))
    auth = {"Authorization": f"Bearer {token.access_token}"}
    before = await _echo(client, auth)
    assert before.status_code == 200, before.text
    request_id = before.headers["X-Request-Id"]
    started = await client.post("/api/session/start", json={"exam_type": "JEE"}, headers=auth)
    session_id = started.json()["session_id"]

    await window(True)

    async def refused() -> bool:
        return (await _echo(client, auth)).status_code == 503

    await _until(refused, "the gateway never saw maintenance mode on")

    # HTTP: every write is 503 maintenance with Retry-After; nothing is stored for it.
    requests_before = await admin_db.fetchval("SELECT count(*) FROM requests")
    writes = [
        await _echo(client, auth),
        await client.post(
            "/api/plan/generate", json={"syllabus_text": "Optics", "goal": "pass"}, headers=auth
        ),
        await client.post("/api/session/start", json={"exam_type": "JEE"}, headers=auth),
        await client.post(
            "/api/plan/stream-verified",
            json={"syllabus_text": "Optics", "goal": "pass"},
            headers=auth,
        ),
        await client.post("/api/tutor/stream", json={"topic": "Optics"}, headers=auth),
        await client.delete(f"/api/materials/{uuid.uuid4()}", headers=auth),
        await client.post(f"/api/autopilot/pause/{session_id}", headers=auth),
        await client.post(
            f"/api/session/{session_id}/save", json={"context": {}, "phase": None}, headers=auth
        ),
        await client.post(
            "/api/users/register", json={"name": f"x-{name}", "password": "maint-password"}
        ),
    ]
    for reply in writes:
        assert reply.status_code == 503, (reply.request.url, reply.text)
        assert reply.headers["Retry-After"] == str(RETRY_AFTER_S)
        assert reply.json()["detail"]["code"] == "maintenance"
        assert "upgrade window" in reply.json()["detail"]["message"]
    assert await admin_db.fetchval("SELECT count(*) FROM requests") == requests_before

    # HTTP reads keep working, and so does login (it writes nothing).
    assert (await client.get(f"/api/requests/{request_id}", headers=auth)).status_code == 200
    assert (await client.get("/api/sessions", headers=auth)).status_code == 200
    assert (await client.get(f"/api/session/{session_id}/state", headers=auth)).status_code == 200
    login = await client.post("/api/users/login", json={"name": name, "password": "maint-password"})
    assert login.status_code == 200

    # gRPC: the same rule (it lives in the gateway core), UNAVAILABLE with the code and the
    # wait in the trailing metadata; reads answered.
    meta = _metadata(token.access_token)
    calls = [
        stub.Echo(pb.EchoRequest(text="hi"), metadata=meta),
        stub.StartSession(pb.StartSessionRequest(exam_type="JEE"), metadata=meta),
        stub.Register(pb.Credentials(name=f"y-{name}", password="maint-password")),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as refused_call:
            await call
        trailing = dict(refused_call.value.trailing_metadata() or ())
        assert refused_call.value.code() == grpc.StatusCode.UNAVAILABLE
        assert trailing["error-code"] == "maintenance"
        assert trailing["retry-after"] == str(RETRY_AFTER_S)
    with pytest.raises(grpc.aio.AioRpcError) as plan_stream:
        async for _ in stub.GeneratePlan(
            pb.PlanRequest(syllabus_text="Optics", goal="pass"), metadata=meta
        ):
            pass
    assert plan_stream.value.code() == grpc.StatusCode.UNAVAILABLE
    stored = await stub.GetRequest(pb.RequestRef(request_id=request_id), metadata=meta)
    assert stored.status == "done"
    listed = await stub.ListSessions(pb.SessionListRequest(limit=5), metadata=meta)
    assert session_id in [s.session_id for s in listed.sessions]

    # Workers do not look at the flag: a command already in Kafka is applied.
    held = CommandEnvelope(
        type="system.echo",
        request_id=uuid.uuid4(),
        user_id=uuid.UUID(token.user_id),
        reply_to=relay_probe.address,
        payload={"text": "in flight"},
    )
    await admin_db.execute(
        "INSERT INTO requests (id, user_id, kind) VALUES ($1, $2, 'system.echo')",
        held.request_id,
        held.user_id,
    )
    with relay_probe.hub.waiter(held.request_id) as queue:
        await producer.send_and_wait(
            command_topic(test_env.topic_prefix, "tutor"), encode_command(held), key=held.key
        )
        (final,) = await relay_probe.finals(queue, 1)
    assert final.kind == "result"
    assert final.data["echo"] == "in flight"

    # The operator's command reports the window.
    code, out = await _operator(test_env.admin_dsn, "maintenance", "status")
    assert (code, "maintenance: ON (upgrade window) by test") == (0, out.split(" since")[0])

    # Off again: writes resume on the same gateway process.
    code, out = await _operator(test_env.admin_dsn, "maintenance", "off")
    assert code == 0
    assert out.startswith("maintenance: off"), out

    async def accepted() -> bool:
        return (await _echo(client, auth)).status_code == 200

    await _until(accepted, "writes did not resume after maintenance mode was turned off")
    echoed = await stub.Echo(pb.EchoRequest(text="back"), metadata=meta)
    assert echoed.echo == "back"


async def test_the_services_role_reads_the_flag_but_cannot_change_it(
    test_env: SessionEnv,
) -> None:
    conn = await asyncpg.connect(test_env.app_dsn)
    try:
        assert (await maintenance.read_state(conn)).enabled is False
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("UPDATE maintenance SET enabled = true")
    finally:
        await conn.close()


async def test_the_command_refuses_a_wait_out_of_range(test_env: SessionEnv) -> None:
    code, out = await _operator(test_env.admin_dsn, "maintenance", "on", "--retry-after", "0")
    assert code == 2
    assert "retry_after_s: 0 is not between 1 and 86400" in out
    assert not (await maintenance.status(test_env.admin_dsn)).enabled
