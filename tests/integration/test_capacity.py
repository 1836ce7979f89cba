"""``exammentor capacity`` against the session's stack: echoes sent through the gateway and
requests of known durations are counted, timed and attributed to their service; the Kafka
figures are the broker's; the database's tables are listed."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from exammentor.contracts.kafka_topics import SERVICES, command_topic
from exammentor.messaging.topic_admin import consumer_lag
from tests.conftest import SessionEnv
from tests.integration.conftest import Stack, register

pytestmark = pytest.mark.integration

ECHOES = {"planner": 3, "tutor": 2, "quiz": 4, "autopilot": 1}

PROBE_SECONDS = (10, 20, 30, 40)
"""Created-to-completed times of the probe requests, all inside a one-hour window."""

STRADDLE_INSIDE_S = 60
"""A probe request created before the window and completed this long after its start."""


async def _capacity(test_env: SessionEnv, *args: str) -> str:
    env = {
        **os.environ,
        "DATABASE_URL": test_env.admin_dsn,
        "KAFKA_BOOTSTRAP_SERVERS": test_env.servers.kafka_bootstrap,
        "KAFKA_TOPIC_PREFIX": test_env.topic_prefix,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "exammentor.ops.cli",
        "capacity",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, out.decode() + err.decode()
    return out.decode()


async def _partitions(test_env: SessionEnv) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=test_env.servers.kafka_bootstrap)
    await admin.start()
    try:
        topics = [command_topic(test_env.topic_prefix, s) for s in SERVICES]
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    by_topic = {t["topic"]: len(t["partitions"]) for t in described}
    return {s: by_topic[command_topic(test_env.topic_prefix, s)] for s in SERVICES}


async def _until_no_lag(test_env: SessionEnv, within_s: float = 20) -> None:
    """The offsets are committed just after each result is relayed: wait for them."""
    deadline = time.monotonic() + within_s
    while True:
        lags = {s: await consumer_lag(test_env.kafka(), s) for s in SERVICES}
        if not any(lags.values()):
            return
        assert time.monotonic() < deadline, f"the groups never caught up: {lags}"
        await asyncio.sleep(0.2)


async def _add_probe_requests(test_env: SessionEnv, user_id: str, kind: str) -> None:
    """Requests of known durations on the tutor's topic, one of them failed, and one that
    began before a one-hour window and ended inside it."""
    topic = command_topic(test_env.topic_prefix, "tutor")
    conn = await asyncpg.connect(test_env.admin_dsn)
    try:
        rows: list[tuple[float, float, str]] = [
            (600.0, seconds, "failed" if i == 0 else "done")
            for i, seconds in enumerate(PROBE_SECONDS)
        ]
        rows.append((3600.0 + 30, 30.0 + STRADDLE_INSIDE_S, "done"))
        for ago, seconds, status in rows:
            await conn.execute(
                "INSERT INTO requests (id, user_id, kind, status, topic, created_at, "
                "completed_at) VALUES ($1, $2, $3, $4, $5, now() - make_interval(secs => $6), "
                "now() - make_interval(secs => $6) + make_interval(secs => $7))",
                uuid.uuid4(),
                uuid.UUID(user_id),
                kind,
                status,
                topic,
                ago,
                seconds,
            )
    finally:
        await conn.close()


async def test_capacity_reports_each_services_load_group_and_the_database(
    stack: Stack, client: httpx.AsyncClient, test_env: SessionEnv
) -> None:
    user_id, auth = await register(client)
    probe = f"capacity.probe-{uuid.uuid4().hex[:8]}"
    await _add_probe_requests(test_env, user_id, probe)

    async def echo(service: str, i: int) -> None:
        body = {"service": service, "text": f"capacity {i}"}
        reply = await client.post("/api/system/echo", json=body, headers=auth)
        assert reply.status_code == 200, reply.text
        assert reply.json()["service"] == service

    await asyncio.gather(*(echo(s, i) for s, n in ECHOES.items() for i in range(n)))
    await _until_no_lag(test_env)
    partitions = await _partitions(test_env)

    report: dict[str, Any] = json.loads(await _capacity(test_env, "--json", "--hours", "1"))

    assert report["window"]["hours"] == 1
    assert report["target_utilisation"] == 0.7
    services = {s["service"]: s for s in report["services"]}
    assert sorted(services) == sorted(SERVICES)
    for name, service in services.items():
        assert service["partitions"] == partitions[name]
        assert service["consumers"] >= 1, service
        assert service["replicas"] >= 1
        assert service["lag"] == 0
        kinds = {k["kind"]: k for k in service["kinds"]}
        assert kinds["system.echo"]["commands"] >= ECHOES[name]
        assert service["commands"] >= ECHOES[name]
        assert service["commands"] == sum(k["commands"] for k in kinds.values())
        assert service["recommendation"]["replicas"] >= 1

    tutor = {k["kind"]: k for k in services["tutor"]["kinds"]}[probe]
    # The straddling request is load within the window, not a command created in it.
    assert (tutor["commands"], tutor["failed"]) == (len(PROBE_SECONDS), 1)
    assert tutor["p50_s"] == pytest.approx(25.0, abs=0.01)
    assert tutor["p95_s"] == pytest.approx(38.5, abs=0.01)
    # The command runs a moment after the rows were written, so the window's start has
    # moved on by that much and the straddling request counts a little less than 60 s.
    assert sum(PROBE_SECONDS) + STRADDLE_INSIDE_S - 15 < tutor["busy_s"]
    assert tutor["busy_s"] <= sum(PROBE_SECONDS) + STRADDLE_INSIDE_S
    assert tutor["in_flight"] == pytest.approx(tutor["busy_s"] / 3600)
    assert tutor["arrivals_per_minute"] == pytest.approx(len(PROBE_SECONDS) / 60)

    tables = {t["table"]: t for t in report["database"]["tables"]}
    assert tables["requests"]["rows"] >= sum(ECHOES.values()) + len(PROBE_SECONDS) + 1
    assert tables["requests"]["rows_exact"] is True
    assert report["database"]["bytes"] >= sum(t["bytes"] for t in tables.values())

    text = await _capacity(test_env)
    lines = text.splitlines()
    for name in SERVICES:
        rows = [line for line in lines if line.split()[:1] == [name]]
        assert len(rows) == 1, text
        assert rows[0].split()[1] == str(partitions[name])
    assert any(line.split()[:1] == [probe] for line in lines), text
    assert any(line.startswith("requests ") for line in lines), text
