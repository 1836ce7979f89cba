"""The delivery rules, against the real broker and database: exactly-once effects for
duplicates, dead letters for poison, events through the outbox, the gateway's auth wall.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from types import SimpleNamespace

import asyncpg
import httpx
import jwt
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from exammentor.contracts.envelope import CommandEnvelope, EventEnvelope
from exammentor.contracts.events import DomainEvent, SystemEchoedV1
from exammentor.messaging.consumer import encode_command
from exammentor.messaging.topic_admin import command_topic, dead_letter_topic, event_topic
from tests.conftest import SessionEnv
from tests.infra import ROOT
from tests.integration.conftest import RelayProbe, register

pytestmark = pytest.mark.integration


async def test_echo_round_trip_is_stored_and_fetchable(client: httpx.AsyncClient) -> None:
    _, auth = await register(client)
    reply = await client.post(
        "/api/system/echo", json={"text": "hello", "service": "tutor"}, headers=auth
    )
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"echo": "hello", "service": "tutor"}
    request_id = reply.headers["X-Request-Id"]

    stored = await client.get(f"/api/requests/{request_id}", headers=auth)
    assert stored.status_code == 200
    assert stored.json()["status"] == "done"
    assert stored.json()["result"] == {"echo": "hello", "service": "tutor"}


async def test_login_returns_a_token_that_works(client: httpx.AsyncClient) -> None:
    name = f"login-{uuid.uuid4().hex[:8]}"
    await client.post("/api/users/register", json={"name": name, "password": "right-password"})
    wrong = await client.post("/api/users/login", json={"name": name, "password": "wrong-password"})
    assert wrong.status_code == 401
    good = await client.post("/api/users/login", json={"name": name, "password": "right-password"})
    assert good.status_code == 200
    auth = {"Authorization": f"Bearer {good.json()['access_token']}"}
    echoed = await client.post("/api/system/echo", json={"text": "x"}, headers=auth)
    assert echoed.status_code == 200


async def test_a_user_cannot_read_another_users_request(client: httpx.AsyncClient) -> None:
    _, alice = await register(client)
    _, bob = await register(client)
    reply = await client.post("/api/system/echo", json={"text": "mine"}, headers=alice)
    request_id = reply.headers["X-Request-Id"]
    assert (await client.get(f"/api/requests/{request_id}", headers=bob)).status_code == 404
    assert (await client.get(f"/api/requests/{request_id}", headers=alice)).status_code == 200


def _echo(user_id: uuid.UUID, reply_to: str, payload: dict[str, object]) -> CommandEnvelope:
    """A ``system.echo`` command answering to ``reply_to``."""
    return CommandEnvelope(
        type="system.echo",
        request_id=uuid.uuid4(),
        user_id=user_id,
        reply_to=reply_to,
        payload=payload,
    )


async def _new_user_id(client: httpx.AsyncClient) -> uuid.UUID:
    user_id, _ = await register(client)
    return uuid.UUID(user_id)


async def test_a_command_delivered_twice_changes_the_database_once(
    client: httpx.AsyncClient,
    test_env: SessionEnv,
    producer: AIOKafkaProducer,
    relay_probe: RelayProbe,
    admin_db: asyncpg.Connection,
) -> None:
    envelope = _echo(await _new_user_id(client), relay_probe.address, {"text": "twice"})
    topic = command_topic(test_env.topic_prefix, "quiz")
    # As the gateway does before publishing: the request row the result is stored on.
    await admin_db.execute(
        "INSERT INTO requests (id, user_id, kind) VALUES ($1, $2, 'system.echo')",
        envelope.request_id,
        envelope.user_id,
    )
    with relay_probe.hub.waiter(envelope.request_id) as queue:
        for _ in range(2):
            await producer.send_and_wait(topic, encode_command(envelope), key=envelope.key)
        finals = await relay_probe.finals(queue, 2)

    # The second delivery is answered from the stored result, without applying again.
    assert [f.kind for f in finals] == ["result", "result"]
    assert finals[0].data == finals[1].data == {"echo": "twice", "service": "quiz"}
    applied = await admin_db.fetchval(
        "SELECT count(*) FROM inbox WHERE command_id = $1", envelope.command_id
    )
    events = await admin_db.fetchval(
        "SELECT count(*) FROM outbox WHERE envelope->>'request_id' = $1", str(envelope.request_id)
    )
    assert (applied, events) == (1, 1)


async def _dead_letters(
    test_env: SessionEnv, service: str, wanted: int
) -> list[tuple[bytes, dict]]:
    consumer = AIOKafkaConsumer(
        dead_letter_topic(test_env.topic_prefix, service),
        bootstrap_servers=test_env.servers.kafka_bootstrap,
        auto_offset_reset="earliest",
        group_id=f"dlq-reader-{uuid.uuid4().hex[:6]}",
    )
    await consumer.start()
    found: list[tuple[bytes, dict]] = []
    try:
        async for record in consumer:
            found.append((record.value, {k: v.decode() for k, v in record.headers}))
            if len(found) >= wanted:
                break
    finally:
        await consumer.stop()
    return found


async def test_poison_goes_to_the_dead_letter_topic_and_the_partition_moves_on(
    client: httpx.AsyncClient,
    test_env: SessionEnv,
    producer: AIOKafkaProducer,
    relay_probe: RelayProbe,
    admin_db: asyncpg.Connection,
) -> None:
    user_id = await _new_user_id(client)
    topic = command_topic(test_env.topic_prefix, "autopilot")
    key = str(user_id).encode()  # one key: poison and good commands share a partition
    bad_payload = _echo(user_id, relay_probe.address, {"text": ["not", "a", "string"]})
    good = _echo(user_id, relay_probe.address, {"text": "after the poison"})
    with (
        relay_probe.hub.waiter(bad_payload.request_id) as bad_queue,
        relay_probe.hub.waiter(good.request_id) as good_queue,
    ):
        await producer.send_and_wait(topic, b"{this is not json", key=key)
        await producer.send_and_wait(topic, encode_command(bad_payload), key=key)
        await producer.send_and_wait(topic, encode_command(good), key=key)
        (good_final,) = await relay_probe.finals(good_queue, 1)
        (bad_final,) = await relay_probe.finals(bad_queue, 1)

    assert good_final.kind == "result"
    assert good_final.data["echo"] == "after the poison"
    # The sender of a well-addressed but invalid command is told why.
    assert bad_final.kind == "error"
    assert bad_final.data["code"] == "dead_lettered"
    assert bad_final.data["message"].startswith("text: Input should be a valid string")

    letters = await _dead_letters(test_env, "autopilot", 2)
    assert letters[0][0] == b"{this is not json"
    assert letters[0][1]["dlq-reason"].startswith("invalid envelope")
    assert letters[1][1]["dlq-reason"].startswith("text:")
    stored = await admin_db.fetchval("SELECT count(*) FROM dead_letters WHERE topic = $1", topic)
    assert stored == 2


async def test_an_event_from_the_outbox_reaches_kafkas_own_console_consumer(
    client: httpx.AsyncClient, test_env: SessionEnv
) -> None:
    _, auth = await register(client)
    text = f"event-{uuid.uuid4().hex[:6]}"
    reply = await client.post("/api/system/echo", json={"text": text}, headers=auth)
    request_id = reply.headers["X-Request-Id"]

    topic = event_topic(test_env.topic_prefix, "system")
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": test_env.servers.kafka_bootstrap}
    # An independent consumer: the console consumer from the Kafka distribution's own jars.
    # Run without blocking the loop: the in-process workers must keep their heartbeats.
    proc = await asyncio.create_subprocess_exec(
        "bash",
        str(ROOT / "deploy/local/kafka.sh"),
        "console-consumer",
        topic,
        "--from-beginning",
        "--timeout-ms",
        "15000",
        "--property",
        "print.headers=true",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    consumed = SimpleNamespace(stdout=out.decode(), stderr=err.decode())
    lines = [line for line in consumed.stdout.splitlines() if request_id in line]
    assert lines, consumed.stdout + consumed.stderr
    headers, _, value = lines[0].partition("\t")
    event = json.loads(value)
    assert event["type"] == "system.echoed"
    assert event["version"] == 1
    assert event["payload"]["text"] == text
    assert "event-type:system.echoed" in headers


async def test_bad_requests_are_refused_with_a_reason_and_store_nothing(
    client: httpx.AsyncClient, admin_db: asyncpg.Connection
) -> None:
    user_id, auth = await register(client)
    before = await admin_db.fetchval("SELECT count(*) FROM requests")

    missing = await client.post("/api/system/echo", json={"text": "x"})
    assert missing.status_code == 401
    assert missing.json()["detail"]["message"] == "missing bearer token"

    forged_token = jwt.encode(
        {"sub": user_id, "exp": 4_000_000_000, "iss": "exammentor"},
        "an-attacker-secret-of-plenty-of-bytes-0123",
        "HS256",
    )
    forged = await client.post(
        "/api/system/echo",
        json={"text": "x"},
        headers={"Authorization": f"Bearer {forged_token}"},
    )
    assert forged.status_code == 401
    assert "Signature verification failed" in forged.json()["detail"]["message"]

    malformed = await client.post("/api/system/echo", content=b"{not json", headers=auth)
    assert malformed.status_code == 422
    wrong_field = await client.post(
        "/api/system/echo", json={"text": "x", "service": "nowhere"}, headers=auth
    )
    assert wrong_field.status_code == 422
    assert wrong_field.json()["detail"]["errors"][0]["field"] == "service"

    assert await admin_db.fetchval("SELECT count(*) FROM requests") == before


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    health = await client.get("/health")
    assert health.json()["ok"] is True
    ready = await client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": True, "kafka": True}


async def test_trace_context_rides_from_the_command_to_its_events(
    client: httpx.AsyncClient,
    test_env: SessionEnv,
    producer: AIOKafkaProducer,
    relay_probe: RelayProbe,
    admin_db: asyncpg.Connection,
) -> None:
    envelope = _echo(await _new_user_id(client), relay_probe.address, {"text": "traced"})
    trace_id = uuid.uuid4().hex
    traceparent = f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"
    with relay_probe.hub.waiter(envelope.request_id) as queue:
        await producer.send_and_wait(
            command_topic(test_env.topic_prefix, "planner"),
            encode_command(envelope),
            key=envelope.key,
            headers=[("traceparent", traceparent.encode())],
        )
        await relay_probe.finals(queue, 1)
    headers = await admin_db.fetchval(
        "SELECT headers->>'traceparent' FROM outbox WHERE envelope->>'request_id' = $1",
        str(envelope.request_id),
    )
    # Same trace, a new span: the worker continued the caller's trace.
    assert headers.split("-")[1] == trace_id
    assert headers != traceparent


def _applied_count(metrics_text: str, service: str) -> float:
    rows = [
        row
        for row in metrics_text.splitlines()
        if row.startswith("exammentor_commands_total{")
        and f'service="{service}"' in row
        and 'type="system.echo"' in row
        and 'outcome="applied"' in row
    ]
    return float(rows[0].rsplit(" ", 1)[1]) if rows else 0.0


async def test_metrics_count_applied_commands(client: httpx.AsyncClient) -> None:
    _, auth = await register(client)
    before = _applied_count((await client.get("/metrics")).text, "quiz")
    reply = await client.post(
        "/api/system/echo", json={"text": "m", "service": "quiz"}, headers=auth
    )
    assert reply.status_code == 200
    assert reply.json() == {"echo": "m", "service": "quiz"}
    # This echo, counted: one more than before it (whatever earlier tests left). The worker
    # counts it just after it relayed the answer, so the count may trail the reply a little.
    async with asyncio.timeout(10):
        while (after := _applied_count((await client.get("/metrics")).text, "quiz")) == before:
            await asyncio.sleep(0.05)
    assert after == before + 1


async def test_the_example_integrator_receives_typed_events(
    client: httpx.AsyncClient, test_env: SessionEnv
) -> None:
    from examples.consume_events import consume

    _, auth = await register(client)
    text = f"integrator-{uuid.uuid4().hex[:6]}"
    await client.post("/api/system/echo", json={"text": text}, headers=auth)
    received: list[SystemEchoedV1] = []

    async def keep(envelope: EventEnvelope, payload: DomainEvent) -> None:
        if isinstance(payload, SystemEchoedV1) and payload.text == text:
            received.append(payload)

    await asyncio.wait_for(
        consume(
            test_env.servers.kafka_bootstrap,
            test_env.topic_prefix,
            f"example-{uuid.uuid4().hex[:6]}",
            keep,
            stop=lambda: bool(received),
        ),
        60,
    )
    assert received[0].service == "planner"


@pytest.mark.llm
async def test_plan_round_trip_register_login_plan_then_fetch_by_id(
    client: httpx.AsyncClient,
) -> None:
    # register -> login -> gateway -> Kafka -> planner (model) -> Postgres -> gRPC -> client
    name = f"round-trip-{uuid.uuid4().hex[:6]}"
    await client.post("/api/users/register", json={"name": name, "password": "round-trip-1"})
    login = await client.post("/api/users/login", json={"name": name, "password": "round-trip-1"})
    auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
    reply = await client.post(
        "/api/plan/generate",
        json={
            "syllabus_text": "- Kinematics\n- Laws of Motion\n- Work, Energy and Power",
            "exam_type": "NEET",
            "goal": "Physics mechanics in five days",
            "days": 5,
        },
        headers=auth,
    )
    assert reply.status_code == 200, reply.text
    plan = reply.json()
    assert plan["total_days"] == 5
    assert {t["name"] for day in plan["schedule"] for t in day["topics"]} >= {
        "Kinematics",
        "Laws of Motion",
        "Work, Energy and Power",
    }

    stored = await client.get(f"/api/requests/{reply.headers['X-Request-Id']}", headers=auth)
    assert stored.status_code == 200
    assert stored.json()["status"] == "done"
    assert stored.json()["result"]["final_plan"] == plan
