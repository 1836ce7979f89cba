"""Round trip of a command that needs no LLM (``system.echo``), through the whole pipeline:

    HTTP client -> gateway -> Kafka -> worker -> Postgres (inbox, result, outbox) -> gRPC
    relay -> gateway -> HTTP client

next to the same database work done by a direct in-process call (the consumer's ``attempt``
without Kafka, gRPC or HTTP), measured in the same run, at 1, 50 and 200 concurrent clients.
The gateway and the worker run as their own processes, as deployed (one replica each).

Each pipeline row also prints the CPU time per request of the gateway, the worker and the
benchmark's own process (its HTTP client): on a shared machine the latencies move with the
load (the load average is printed before and after), the CPU cost per request much less.

Run: ``make bench`` (starts Kafka and Postgres natively when absent), or
``python bench/pipeline.py --requests 400``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.stack import process_stack
from bench.tutor import cpu_seconds
from exammentor.contracts.commands import EchoPayload
from exammentor.contracts.envelope import CommandEnvelope
from exammentor.db import connection, create_pool
from exammentor.logs import configure_logging
from exammentor.messaging import pipeline
from exammentor.messaging.consumer import CommandConsumer
from exammentor.messaging.handling import CommandRouter
from exammentor.messaging.result_relay import RelayChannels
from exammentor.settings import (
    DatabaseSettings,
    KafkaSettings,
)
from services.planner.settings import PlannerSettings
from tests.infra import provide_servers, unique_name

Call = Callable[[int, int], Awaitable[None]]
"""One request: the client slot sending it, and the request's number."""
Row = tuple[str, int, list[float], float, dict[str, float]]
"""path, clients, latencies, seconds, CPU ms per request by process (pipeline rows only)."""


async def measure(call: Call, clients: int, total: int) -> tuple[list[float], float]:
    """Runs ``total`` calls spread over ``clients`` concurrent loops; latencies and seconds."""
    latencies: list[float] = []
    counter = iter(range(total))

    async def client(slot: int) -> None:
        for i in counter:
            started = time.perf_counter()
            await call(slot, i)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(client(slot) for slot in range(clients)))
    return latencies, time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of ``values``, in milliseconds."""
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(requests: int, concurrency: list[int]) -> None:
    """Sets up a private database and topics, starts a gateway and a worker, measures."""
    configure_logging("bench", "WARNING", "console")
    with provide_servers() as servers:
        # Gateway and worker as their own processes, as deployed: the benchmark's clients
        # and the in-process baseline do not share their event loops.
        async with process_stack(
            servers,
            ["planner"],
            label="pipeline",
            # The bench registers its students from one address in a burst.
            environ={"EXAMMENTOR_LOGIN_LIMITS": '{"per_address": 100000}'},
        ) as stack:
            await stack.ready(timeout_s=60)
            load_before = os.getloadavg()
            rows = await compare(
                stack.http_port, stack.db, stack.kafka, requests, concurrency, stack.pids
            )
            load_after = os.getloadavg()
    print_table(rows, requests, servers.source)
    print(f"\nload average (1, 5, 15 min) before: {load_before}, after: {load_after}")


async def compare(
    http_port: int,
    db: DatabaseSettings,
    kafka: KafkaSettings,
    requests: int,
    concurrency: list[int],
    pids: dict[str, int],
) -> list[Row]:
    """Measures the pipeline and the direct call at each concurrency."""
    base = f"http://127.0.0.1:{http_port}"
    # One connection per client slot, each in a client session of its own, as separate
    # students' browsers would be. The client is aiohttp: httpx spent 1.3 ms of CPU per
    # request here, more than the gateway's handling of it, on the same two cores.
    # Idle connections are dropped before the server's 5 s keep-alive ends: a connection
    # the server closes just as the client reuses it fails the request.
    timeout = aiohttp.ClientTimeout(total=60)
    async with contextlib.AsyncExitStack() as opened:
        slots = [
            await opened.enter_async_context(
                aiohttp.ClientSession(
                    base,
                    timeout=timeout,
                    connector=aiohttp.TCPConnector(limit=1, keepalive_timeout=2.0),
                )
            )
            for _ in range(max(concurrency))
        ]
        http = slots[0]
        # One student per client slot: commands of one student are ordered (one partition),
        # different students spread over partitions, as in real use.
        students: list[tuple[uuid.UUID, dict[str, str]]] = []
        for _ in range(max(concurrency)):
            async with http.post(
                "/api/users/register",
                json={"name": unique_name("bench-"), "password": "bench-pass"},
            ) as reply:
                body = await reply.json()
            students.append(
                (uuid.UUID(body["user_id"]), {"Authorization": f"Bearer {body['access_token']}"})
            )

        async def through_pipeline(slot: int, i: int) -> None:
            auth = students[i % len(students)][1]
            async with slots[slot].post(
                "/api/system/echo", json={"text": f"m{i}"}, headers=auth
            ) as answer:
                body = await answer.read()
            if answer.status != 200 or json.loads(body)["echo"] != f"m{i}":
                raise RuntimeError(f"bad answer: {answer.status} {body!r}")

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

        async def direct(slot: int, i: int) -> None:
            # What the gateway and the consumer do in the database, with no transport.
            user_id = students[i % len(students)][0]
            envelope = CommandEnvelope(
                type="system.echo", request_id=uuid.uuid4(), user_id=user_id, payload={}
            )
            async with connection(pool) as conn:
                await pipeline.create_request(
                    conn, envelope.request_id, user_id, "system.echo", {"text": f"m{i}"}
                )
            stream = channels.stream(None, envelope.request_id)
            await consumer.attempt(envelope, spec, EchoPayload(text=f"m{i}"), stream)

        rows: list[Row] = []
        try:
            for clients in concurrency:
                await measure(through_pipeline, clients, min(requests, 20))  # warm-up
                await measure(direct, clients, min(requests, 20))
                cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
                client_before = time.process_time()
                lat, secs = await measure(through_pipeline, clients, requests)
                cpu = {
                    name: 1000 * (cpu_seconds(pid) - cpu_before[name]) / requests
                    for name, pid in pids.items()
                }
                cpu["client"] = 1000 * (time.process_time() - client_before) / requests
                rows.append(("pipeline", clients, lat, secs, cpu))
                lat, secs = await measure(direct, clients, requests)
                rows.append(("direct", clients, lat, secs, {}))
        finally:
            await pool.close()
            await channels.close()
    return rows


def print_table(rows: list[Row], requests: int, source: str) -> None:
    """Prints the figures, with the pipeline/direct ratios."""
    print(f"\nsystem.echo round trip, {requests} requests per row, servers: {source}\n")
    names = sorted({name for *_, cpu in rows for name in cpu})
    header = f"{'path':<9} {'clients':>7} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'req/s':>8}"
    header += "".join(f" {name[:7] + ' cpu':>12}" for name in names)
    print(header)
    print("-" * len(header))
    by_key = {(name, clients): (lat, secs) for name, clients, lat, secs, _ in rows}
    for name, clients, lat, secs, cpu in rows:
        print(
            f"{name:<9} {clients:>7} {percentile(lat, 0.5):>8.2f} {percentile(lat, 0.99):>8.2f} "
            f"{1000 * statistics.fmean(lat):>8.2f} {len(lat) / secs:>8.1f}"
            + "".join(f" {cpu[n]:>9.2f} ms" if n in cpu else f" {'':>12}" for n in names)
        )
    print("(cpu: CPU time per request of each process; client: this benchmark's process)")
    print()
    for clients in sorted({c for _, c, *_ in rows}):
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
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 50, 200])
    args = parser.parse_args()
    # The clients share this process: on uvloop they take less of the 2 cores measured.
    uvloop.run(run(args.requests, args.clients))


if __name__ == "__main__":
    main()
