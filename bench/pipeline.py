"""Round trip of a command that needs no LLM (``system.echo``), through the whole pipeline:

    HTTP client -> gateway -> Kafka -> worker -> Postgres (inbox, result, outbox) -> gRPC
    relay -> gateway -> HTTP client

next to the same database work done by a direct in-process call (the consumer's ``attempt``
without Kafka, gRPC or HTTP), measured in the same run, at 1, 50 and 200 concurrent clients.
The gateway and the worker run as their own processes, as deployed (one replica each).

Run: ``make bench`` (starts Kafka and Postgres natively when absent), or
``python bench/pipeline.py --requests 400``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from exammentor.contracts.commands import EchoPayload
from exammentor.contracts.envelope import CommandEnvelope
from exammentor.db import create_pool, user_transaction
from exammentor.logs import configure_logging
from exammentor.messaging.consumer import CommandConsumer, CommandRouter
from exammentor.messaging.result_relay import RelayChannels
from exammentor.messaging.topic_admin import ensure_topics
from exammentor.ops import migrate
from exammentor.settings import (
    DatabaseSettings,
    KafkaSettings,
)
from services.planner.settings import PlannerSettings
from tests.infra import ROOT, free_port, provide_servers, unique_name, with_database

Call = Callable[[int], Awaitable[None]]


async def measure(call: Call, clients: int, total: int) -> tuple[list[float], float]:
    """Runs ``total`` calls spread over ``clients`` concurrent loops; latencies and seconds."""
    latencies: list[float] = []
    counter = iter(range(total))

    async def client() -> None:
        for i in counter:
            started = time.perf_counter()
            await call(i)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of ``values``, in milliseconds."""
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(requests: int, concurrency: list[int]) -> None:
    """Sets up a private database and topics, starts a gateway and a worker, measures."""
    configure_logging("bench", "WARNING", "console")
    with provide_servers() as servers:
        database = unique_name("exammentor_bench_")
        admin = await asyncpg.connect(servers.admin_dsn)
        await admin.execute(f'CREATE DATABASE "{database}"')
        await admin.close()
        admin_dsn = with_database(servers.admin_dsn, database)
        await migrate.upgrade(admin_dsn)
        kafka = KafkaSettings(
            bootstrap_servers=servers.kafka_bootstrap, topic_prefix=unique_name("bench")
        )
        await ensure_topics(kafka)
        db = DatabaseSettings(
            database_url=admin_dsn,
            app_database_url=with_database(servers.admin_dsn, database, user="exammentor_app"),
            pool_max=20,
        )
        http_port = free_port()
        # Gateway and worker as their own processes, as deployed: the benchmark's clients
        # and the in-process baseline do not share their event loops.
        environ = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
            "DATABASE_URL": db.database_url,
            "APP_DATABASE_URL": db.app_database_url,
            "DB_POOL_MAX": "20",
            "EXAMMENTOR_LOG_LEVEL": "WARNING",
            # Gateway and worker are separate processes: they must share the relay token.
            "EXAMMENTOR_RELAY_TOKEN": secrets.token_urlsafe(32),
            # The bench registers its students from one address in a burst.
            "EXAMMENTOR_LOGIN_LIMITS": '{"per_address": 100000}',
        }
        worker_ops = free_port()
        processes = [
            await start_process(
                "services.gateway.app",
                {
                    **environ,
                    "EXAMMENTOR_HTTP_PORT": str(http_port),
                    "EXAMMENTOR_GRPC_PORT": str(free_port()),
                    "EXAMMENTOR_RELAY_PORT": str(free_port()),
                },
            ),
            await start_process(
                "services.planner.app",
                {**environ, "EXAMMENTOR_OPS_PORT": str(worker_ops)},
            ),
        ]
        try:
            await wait_ready(http_port)
            await wait_ready(worker_ops)
            rows = await compare(http_port, db, kafka, requests, concurrency)
        finally:
            for proc in processes:
                proc.send_signal(signal.SIGTERM)
            for proc in processes:
                await proc.wait()
            admin = await asyncpg.connect(servers.admin_dsn)
            await admin.execute(f'DROP DATABASE "{database}" WITH (FORCE)')
            await admin.close()
    print_table(rows, requests, servers.source)


async def start_process(module: str, environ: dict[str, str]) -> asyncio.subprocess.Process:
    """One service as its own process."""
    return await asyncio.create_subprocess_exec(sys.executable, "-m", module, env=environ, cwd=ROOT)


async def wait_ready(port: int, timeout_s: float = 60) -> None:
    """Polls a service's /ready until it answers 200."""
    async with httpx.AsyncClient(timeout=2) as http, asyncio.timeout(timeout_s):
        while True:
            try:
                if (await http.get(f"http://127.0.0.1:{port}/ready")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)


async def compare(
    http_port: int,
    db: DatabaseSettings,
    kafka: KafkaSettings,
    requests: int,
    concurrency: list[int],
) -> list[tuple[str, int, list[float], float]]:
    """Measures the pipeline and the direct call at each concurrency."""
    base = f"http://127.0.0.1:{http_port}"
    # Idle connections are dropped before the server's 5 s keep-alive ends: a connection
    # the server closes just as the client reuses it fails the request (httpx.ReadError).
    limits = httpx.Limits(
        max_connections=max(concurrency) + 5,
        max_keepalive_connections=max(concurrency) + 5,
        keepalive_expiry=2.0,
    )
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:
        # One student per client slot: commands of one student are ordered (one partition),
        # different students spread over partitions, as in real use.
        students: list[tuple[uuid.UUID, dict[str, str]]] = []
        for _ in range(max(concurrency)):
            reply = await http.post(
                "/api/users/register",
                json={"name": unique_name("bench-"), "password": "bench-pass"},
            )
            body = reply.json()
            students.append(
                (uuid.UUID(body["user_id"]), {"Authorization": f"Bearer {body['access_token']}"})
            )

        async def through_pipeline(i: int) -> None:
            auth = students[i % len(students)][1]
            answer = await http.post("/api/system/echo", json={"text": f"m{i}"}, headers=auth)
            if answer.status_code != 200 or answer.json()["echo"] != f"m{i}":
                raise RuntimeError(f"bad answer: {answer.status_code} {answer.text}")

        pool = await create_pool(db.app_database_url, max_size=20)
        channels = RelayChannels()
        consumer = CommandConsumer(
            router=CommandRouter("planner"),
            broker=None,  # type: ignore[arg-type]  # attempt() never publishes
            pool=pool,
            settings=PlannerSettings(kafka=kafka, db=db),
            channels=channels,
        )
        spec = consumer.router.lookup("system.echo", 1)
        assert spec is not None

        async def direct(i: int) -> None:
            # What the gateway and the consumer do in the database, with no transport.
            user_id = students[i % len(students)][0]
            envelope = CommandEnvelope(
                type="system.echo", request_id=uuid.uuid4(), user_id=user_id, payload={}
            )
            async with user_transaction(pool, user_id) as conn:
                await conn.execute(
                    "INSERT INTO requests (id, user_id, kind, payload) VALUES ($1, $2, $3, $4)",
                    envelope.request_id,
                    user_id,
                    "system.echo",
                    {"text": f"m{i}"},
                )
            stream = channels.stream(None, envelope.request_id)
            await consumer.attempt(envelope, spec, EchoPayload(text=f"m{i}"), stream)

        rows: list[tuple[str, int, list[float], float]] = []
        try:
            for clients in concurrency:
                await measure(through_pipeline, clients, min(requests, 20))  # warm-up
                await measure(direct, clients, min(requests, 20))
                lat, secs = await measure(through_pipeline, clients, requests)
                rows.append(("pipeline", clients, lat, secs))
                lat, secs = await measure(direct, clients, requests)
                rows.append(("direct", clients, lat, secs))
        finally:
            await pool.close()
            await channels.close()
    return rows


def print_table(
    rows: list[tuple[str, int, list[float], float]], requests: int, source: str
) -> None:
    """Prints the figures, with the pipeline/direct ratios."""
    print(f"\nsystem.echo round trip, {requests} requests per row, servers: {source}\n")
    header = f"{'path':<9} {'clients':>7} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'req/s':>8}"
    print(header)
    print("-" * len(header))
    by_key = {(name, clients): (lat, secs) for name, clients, lat, secs in rows}
    for name, clients, lat, secs in rows:
        print(
            f"{name:<9} {clients:>7} {percentile(lat, 0.5):>8.2f} {percentile(lat, 0.99):>8.2f} "
            f"{1000 * statistics.fmean(lat):>8.2f} {len(lat) / secs:>8.1f}"
        )
    print()
    for clients in sorted({c for _, c, _, _ in rows}):
        p_lat, p_secs = by_key[("pipeline", clients)]
        d_lat, d_secs = by_key[("direct", clients)]
        latency_ratio = percentile(p_lat, 0.5) / percentile(d_lat, 0.5)
        throughput_ratio = (len(p_lat) / p_secs) / (len(d_lat) / d_secs)
        print(
            f"{clients:>3} clients: pipeline/direct p50 x{latency_ratio:.1f}, "
            f"throughput x{throughput_ratio:.2f}"
        )


def main() -> None:
    """Parses arguments and runs the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 50, 200])
    args = parser.parse_args()
    asyncio.run(run(args.requests, args.clients))


if __name__ == "__main__":
    main()
