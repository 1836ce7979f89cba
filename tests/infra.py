"""Where the tests' servers come from, in order:

1. servers named by the environment (``KAFKA_BOOTSTRAP_SERVERS`` and ``DATABASE_URL``);
2. testcontainers (Kafka and Postgres containers) when a Docker engine answers;
3. the native servers of ``deploy/local`` (started when not running; left running).

Each test session then gets its own database (migrated) and its own topic prefix, so runs
never see each other's rows or messages.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from aiokafka.admin import AIOKafkaAdminClient

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Servers:
    """A Kafka cluster and a Postgres server with an owner (superuser) connection string."""

    kafka_bootstrap: str
    admin_dsn: str
    source: str


def docker_answers() -> bool:
    """True when a Docker engine responds (never on the project's own machines)."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://"):
        # A cheap look first: the SDK leaves sockets open when the engine is absent.
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(2)
            try:
                sock.connect(host.removeprefix("unix://"))
            except OSError:
                return False
    import docker

    try:
        client = docker.from_env(timeout=3)
    except Exception:  # noqa: BLE001 - any failure means: no engine
        return False
    try:
        return bool(client.ping())
    except Exception:  # noqa: BLE001 - any failure means: no engine
        return False
    finally:
        client.close()


def _run(script: str, *args: str) -> None:
    subprocess.run(["bash", str(ROOT / "deploy/local" / script), *args], check=True)


@contextmanager
def provide_servers() -> Iterator[Servers]:
    """Yields the servers for this test session (see the module docstring)."""
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    dsn = os.environ.get("DATABASE_URL")
    with ExitStack() as stack:
        if (not kafka or not dsn) and docker_answers():
            from testcontainers.kafka import KafkaContainer
            from testcontainers.postgres import PostgresContainer

            if not kafka:
                kafka = stack.enter_context(KafkaContainer().with_kraft()).get_bootstrap_server()
            if not dsn:
                pg = stack.enter_context(PostgresContainer("postgres:15", driver=None))
                dsn = pg.get_connection_url()
            yield Servers(kafka, dsn, "testcontainers")
            return
        source = "environment"
        if not kafka:
            _run("kafka.sh", "start")
            _run("kafka.sh", "wait")
            kafka = f"127.0.0.1:{os.environ.get('KAFKA_PORT', '9092')}"
            source = "native"
        if not dsn:
            _run("postgres.sh", "start")
            _run("postgres.sh", "wait")
            dsn = f"postgresql://postgres@127.0.0.1:{os.environ.get('PGPORT', '5433')}/postgres"
            source = "native"
        yield Servers(kafka, dsn, source)


def with_database(dsn: str, database: str, user: str | None = None) -> str:
    """``dsn`` pointed at another database (and, optionally, another role)."""
    parts = urlsplit(dsn)
    netloc = parts.netloc
    if user is not None:
        host = netloc.rsplit("@", 1)[-1]
        netloc = f"{user}@{host}"
    return urlunsplit((parts.scheme, netloc, f"/{database}", parts.query, parts.fragment))


ISSUED: set[str] = set()
"""Every name :func:`unique_name` gave out in this process: the session's topics are those
whose prefix is one of them (see :func:`delete_topics_of_this_run`)."""


def unique_name(prefix: str) -> str:
    """A short unique name for a database or topic prefix."""
    name = f"{prefix}{uuid.uuid4().hex[:10]}"
    ISSUED.add(name)
    return name


async def delete_topics_of_this_run(bootstrap: str) -> int:
    """Deletes the topics made under this process's prefixes; how many. A broker that keeps
    every run's topics (thousands of partitions after a few runs) takes minutes to start."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        ours = [t for t in await admin.list_topics() if t.split(".", 1)[0] in ISSUED]
        for start in range(0, len(ours), 100):
            await admin.delete_topics(ours[start : start + 100], timeout_ms=60_000)
        return len(ours)
    finally:
        await admin.close()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def python() -> str:
    """The interpreter running the tests (the project's virtualenv)."""
    return sys.executable
