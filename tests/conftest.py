"""Shared fixtures: real servers (see ``tests/infra.py``), a fresh migrated database and
topic prefix per session, and the services run in-process on free ports.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from exammentor.logs import configure_logging
from exammentor.messaging.topic_admin import ensure_topics
from exammentor.ops import migrate
from exammentor.settings import DatabaseSettings, KafkaSettings, LLMSettings, ServiceSettings
from tests.infra import (
    Servers,
    delete_topics_of_this_run,
    provide_servers,
    unique_name,
    with_database,
)

# One relay token for the whole run, in the environment: services the tests start as
# subprocesses inherit it, so they relay to in-process services (and the reverse) the way
# the processes of one deployment do.
os.environ.setdefault("EXAMMENTOR_RELAY_TOKEN", secrets.token_urlsafe(32))
# Every test registers its users from 127.0.0.1: the attempt limits would refuse the suite.
# tests/integration/test_security.py checks them on a gateway of its own.
os.environ.setdefault("EXAMMENTOR_LOGIN_LIMITS", '{"per_name": 1000000, "per_address": 1000000}')


@dataclass(frozen=True)
class SessionEnv:
    """What one test session runs against."""

    servers: Servers
    admin_dsn: str
    app_dsn: str
    topic_prefix: str

    def kafka(self) -> KafkaSettings:
        """Kafka settings of this session (its own topic prefix)."""
        return KafkaSettings(
            bootstrap_servers=self.servers.kafka_bootstrap,
            topic_prefix=self.topic_prefix,
            partitions=3,
            retry_backoff_s=0.05,
        )

    def db(self) -> DatabaseSettings:
        """Database settings of this session (its own database)."""
        return DatabaseSettings(
            database_url=self.admin_dsn, app_database_url=self.app_dsn, pool_max=5
        )

    def service_settings(
        self, cls: type[ServiceSettings], llm: LLMSettings | None = None, **extra: Any
    ) -> Any:
        """Settings of one service for this session."""
        return cls(
            kafka=self.kafka(),
            db=self.db(),
            llm=llm or LLMSettings(),
            ops_port=0,
            shutdown_grace_s=5.0,
            **extra,
        )


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    """Kafka and Postgres for the whole run."""
    configure_logging("tests", os.environ.get("EXAMMENTOR_LOG_LEVEL", "WARNING"), "console")
    with provide_servers() as found:
        yield found


@pytest.fixture(scope="session")
async def test_env(servers: Servers) -> AsyncIterator[SessionEnv]:
    """A migrated database and a topic prefix of this session's own."""
    database = unique_name("exammentor_test_")
    admin = await asyncpg.connect(servers.admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{database}"')
    finally:
        await admin.close()
    admin_dsn = with_database(servers.admin_dsn, database)
    await migrate.upgrade(admin_dsn)
    env = SessionEnv(
        servers=servers,
        admin_dsn=admin_dsn,
        app_dsn=with_database(servers.admin_dsn, database, user="exammentor_app"),
        topic_prefix=unique_name("t"),
    )
    await ensure_topics(env.kafka())
    yield env
    admin = await asyncpg.connect(servers.admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE "{database}" WITH (FORCE)')
    finally:
        await admin.close()
    await delete_topics_of_this_run(servers.kafka_bootstrap)


@pytest.fixture
async def admin_db(test_env: SessionEnv) -> AsyncIterator[asyncpg.Connection]:
    """An owner connection to the session's database, for assertions that see every row."""
    conn = await asyncpg.connect(test_env.admin_dsn)
    yield conn
    await conn.close()


@pytest.fixture
def api_client() -> Callable[[str], httpx.AsyncClient]:
    """Builds HTTP clients for a gateway base URL."""

    def build(base_url: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=base_url, timeout=120)

    return build
