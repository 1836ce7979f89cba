"""The stack a benchmark measures: the gateway and the named workers as their own processes,
as deployed (one replica each), on a database and topic prefix of the run's own.

The one way the benches start and stop it (``bench/pipeline.py``, ``bench/tutor.py``,
``bench/quality.py``)::

    async with process_stack(servers, ["tutor"], label="tutor", environ={...}) as stack:
        await stack.ready()
        ... measure against stack.http_port ...

On the way out each process gets SIGTERM and drains (one still busy after 30 s is killed),
then the database and the run's topics are dropped. :meth:`ProcessStack.ready` is called by
the bench, so a stack that never comes up is reported as the bench reports any other failure.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
import httpx

from exammentor.messaging.topic_admin import ensure_topics
from exammentor.ops import migrate
from exammentor.settings import DatabaseSettings, KafkaSettings
from tests.infra import (
    ROOT,
    Servers,
    delete_topics_of_this_run,
    free_port,
    unique_name,
    with_database,
)

STOP_GRACE_S = 30.0
"""How long a service may drain after SIGTERM before it is killed."""


@dataclass(frozen=True)
class ProcessStack:
    """The running processes, by service name (``gateway`` among them), and what they use."""

    http_port: int
    ops_ports: Mapping[str, int]
    processes: Mapping[str, asyncio.subprocess.Process]
    db: DatabaseSettings
    kafka: KafkaSettings

    @property
    def base_url(self) -> str:
        """The gateway's HTTP address."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def pids(self) -> dict[str, int]:
        """Each service's process id."""
        return {name: proc.pid for name, proc in self.processes.items()}

    async def ready(self, timeout_s: float = 90) -> None:
        """Waits until the gateway and every worker answer /ready with 200."""
        await wait_ready(self.http_port, timeout_s)
        for port in self.ops_ports.values():
            await wait_ready(port, timeout_s)


@asynccontextmanager
async def process_stack(
    servers: Servers,
    services: Sequence[str],
    *,
    label: str,
    environ: Mapping[str, str] | None = None,
    gateway: Mapping[str, str] | None = None,
    partitions: int | None = None,
    pool_max: int = 20,
) -> AsyncIterator[ProcessStack]:
    """Starts the gateway and ``services`` on a private database and topic prefix.

    Args:
        servers: Kafka and Postgres (``tests.infra.provide_servers``).
        services: The worker services, by package name (``services/<name>/app.py``).
        label: Names the run's database (``exammentor_bench_<label>_…``).
        environ: Environment of every process, over this process's and the stack's.
        gateway: Environment of the gateway only.
        partitions: Partitions of the run's topics (the settings' default when None).
        pool_max: Database connections of each process.
    """
    database = unique_name(f"exammentor_bench_{label}_")
    admin = await asyncpg.connect(servers.admin_dsn)
    await admin.execute(f'CREATE DATABASE "{database}"')
    await admin.close()
    processes: dict[str, asyncio.subprocess.Process] = {}
    try:
        admin_dsn = with_database(servers.admin_dsn, database)
        await migrate.upgrade(admin_dsn)
        kafka = KafkaSettings(
            bootstrap_servers=servers.kafka_bootstrap,
            topic_prefix=unique_name(f"b{label[:4]}"),
            **({} if partitions is None else {"partitions": partitions}),
        )
        await ensure_topics(kafka)
        db = DatabaseSettings(
            database_url=admin_dsn,
            app_database_url=with_database(servers.admin_dsn, database, user="exammentor_app"),
            pool_max=pool_max,
        )
        common = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
            "KAFKA_PARTITIONS": str(kafka.partitions),
            "DATABASE_URL": db.database_url,
            "APP_DATABASE_URL": db.app_database_url,
            "DB_POOL_MAX": str(pool_max),
            # Gateway and workers are separate processes: they must share the relay token.
            "EXAMMENTOR_RELAY_TOKEN": secrets.token_urlsafe(32),
            "EXAMMENTOR_LOG_LEVEL": "WARNING",
            **(environ or {}),
        }
        http_port = free_port()
        processes["gateway"] = await start_process(
            "services.gateway.app",
            {
                **common,
                "EXAMMENTOR_HTTP_PORT": str(http_port),
                "EXAMMENTOR_GRPC_PORT": str(free_port()),
                "EXAMMENTOR_RELAY_PORT": str(free_port()),
                **(gateway or {}),
            },
        )
        ops_ports = {name: free_port() for name in services}
        for name, port in ops_ports.items():
            processes[name] = await start_process(
                f"services.{name}.app", {**common, "EXAMMENTOR_OPS_PORT": str(port)}
            )
        yield ProcessStack(http_port, ops_ports, processes, db, kafka)
    finally:
        await stop_all(list(processes.values()))
        admin = await asyncpg.connect(servers.admin_dsn)
        await admin.execute(f'DROP DATABASE "{database}" WITH (FORCE)')
        await admin.close()
        # A broker that keeps every run's topics runs out of heap after some dozens of runs.
        await delete_topics_of_this_run(servers.kafka_bootstrap)


async def start_process(module: str, environ: dict[str, str]) -> asyncio.subprocess.Process:
    """One service as its own process."""
    return await asyncio.create_subprocess_exec(sys.executable, "-m", module, env=environ, cwd=ROOT)


async def stop_all(processes: Sequence[asyncio.subprocess.Process]) -> None:
    """SIGTERM to each service; one still draining after :data:`STOP_GRACE_S` is killed."""
    for proc in processes:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
    for proc in processes:
        try:
            await asyncio.wait_for(proc.wait(), STOP_GRACE_S)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def wait_ready(port: int, timeout_s: float = 90) -> None:
    """Polls a service's /ready until it answers 200."""
    async with httpx.AsyncClient(timeout=2) as http, asyncio.timeout(timeout_s):
        while True:
            try:
                if (await http.get(f"http://127.0.0.1:{port}/ready")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
