"""The services running in-process against the session's real broker and database.

Every stack of this folder is built by :func:`start_stack`: the session's ``stack`` fixture
(every service, the embedded model, the session's topics and database) and each module's
own (a scripted model, topics of its own, and a database of its own where it runs an
autopilot replica)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer
from grpc import aio

from exammentor._proto import relay_pb2_grpc
from exammentor.messaging.result_hub import RelayHub
from exammentor.messaging.result_relay import RelayChunk
from exammentor.messaging.topic_admin import ensure_topics
from exammentor.ops import migrate
from exammentor.settings import LLMSettings, WorkerSettings
from exammentor.worker import InstallHandlers, Worker
from services.autopilot.handlers import install_handlers as autopilot_handlers
from services.autopilot.settings import AutopilotSettings
from services.gateway.app import Gateway
from services.gateway.settings import GatewaySettings
from services.planner.handlers import install_handlers as planner_handlers
from services.planner.settings import PlannerSettings
from services.quiz.handlers import install_handlers as quiz_handlers
from services.quiz.settings import QuizSettings
from services.tutor.handlers import install_handlers as tutor_handlers
from services.tutor.settings import TutorSettings
from tests.conftest import SessionEnv
from tests.fakes.scripted_openai import Reply, Responder, ScriptedOpenAI
from tests.infra import ROOT, python, unique_name
from tests.upgrade.database import app_dsn, scratch_database

pytestmark = pytest.mark.integration

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test of this folder needs the servers, whether or not its module says so:
    ``-m "not integration"`` must never select one (test_security's did, and errored)."""
    for item in items:
        if item.path.is_relative_to(_HERE):
            item.add_marker(pytest.mark.integration)


@dataclass
class Stack:
    """A gateway and workers sharing the session's servers."""

    gateway: Gateway
    workers: list[Worker[Any]]
    env: SessionEnv
    """Where they run: the session's servers, with the stack's topics and database."""
    model: ScriptedOpenAI | None = None
    """The stack's scripted model, when it was given a script (see :func:`start_stack`)."""

    @property
    def base_url(self) -> str:
        """The gateway's HTTP address."""
        return f"http://127.0.0.1:{self.gateway.http_port}"


@dataclass(frozen=True)
class ScriptedStack:
    """A module's stack on a scripted model of its own, as the module's tests read it:
    ``.stack``, ``.model`` (to script it) and ``.env`` (its topics and database)."""

    stack: Stack

    @property
    def model(self) -> ScriptedOpenAI:
        """The stack's scripted model server."""
        assert self.stack.model is not None, "start_stack(model=...) was given no script"
        return self.stack.model

    @property
    def env(self) -> SessionEnv:
        """Where the stack runs."""
        return self.stack.env


SERVICES: dict[str, tuple[type[WorkerSettings], InstallHandlers[Any]]] = {
    "planner": (PlannerSettings, planner_handlers),
    "tutor": (TutorSettings, tutor_handlers),
    "quiz": (QuizSettings, quiz_handlers),
    "autopilot": (AutopilotSettings, autopilot_handlers),
}
"""Each worker service: its settings class and its handlers."""

SCRIPTED_LLM: dict[str, Any] = {
    "max_retries": 1,
    "repair_attempts": 1,
    "timeout_s": 5,
    "backoff_base_s": 0.01,
    "backoff_max_s": 0.05,
}
"""Model settings of workers on a scripted model: a fault shows after one quick retry."""


async def start_worker_process(
    env: SessionEnv, prefix: str, llm_url: str, **extra: str
) -> asyncio.subprocess.Process:
    """The tests' model-calling worker (``tests/fakes/llm_worker.py``, service ``tutor``) as
    a process of its own on ``prefix``'s topics, with the production consumer settings; the
    test sends it SIGTERM (it drains) or kills it."""
    environ = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": env.servers.kafka_bootstrap,
        "KAFKA_TOPIC_PREFIX": prefix,
        "APP_DATABASE_URL": env.app_dsn,
        "DATABASE_URL": env.admin_dsn,
        "OPENAI_BASE_URL": llm_url,
        "OPENAI_MAX_RETRIES": "0",
        "EXAMMENTOR_SERVICE_NAME": "tutor",
        "EXAMMENTOR_LOG_LEVEL": "WARNING",
        **extra,
    }
    return await asyncio.create_subprocess_exec(
        python(), "-m", "tests.fakes.llm_worker", cwd=ROOT, env=environ
    )


@asynccontextmanager
async def start_stack(
    env: SessionEnv,
    services: Sequence[str] = tuple(SERVICES),
    *,
    model: Reply | Responder | LLMSettings | None = None,
    llm: Mapping[str, Any] | None = None,
    gateway: Mapping[str, Any] | None = None,
    workers: Mapping[str, Mapping[str, Any]] | None = None,
    handlers: Mapping[str, InstallHandlers[Any]] | None = None,
    own_topics: bool = True,
    own_database: bool | None = None,
) -> AsyncIterator[Stack]:
    """The one way a test builds a stack: a gateway and the named workers, in-process on
    free ports, stopped (and what they ran on dropped) on the way out, in reverse order.

    Args:
        env: The session's servers (``test_env``).
        services: The workers to run, by name (:data:`SERVICES`); none for a lone gateway.
        model: A scripted reply or responder: a scripted model server of the stack's own
            answers with it (``Stack.model``), the workers on :data:`SCRIPTED_LLM`
            settings. Model settings: used as they are. None: the configured (embedded)
            model.
        llm: Model settings over :data:`SCRIPTED_LLM` (with a scripted model) or over the
            defaults.
        gateway: Gateway settings over the defaults (free ports).
        workers: Each worker's settings over the defaults, by name.
        handlers: Stand-in handlers of a service, by name, in place of its own
            (``tests/fakes/autopilot_standins.py``).
        own_topics: Topics under a prefix of the stack's own, so the session's workers do
            not take its commands; False for topics of ``env``.
        own_database: A migrated database of the stack's own, dropped afterwards. By default
            so for a stack that runs an autopilot replica on topics of its own: a replica
            claims the runs of its whole database, so the session stack's (on the embedded
            model) must not see this stack's runs, nor this one the session's.
    """
    if own_database is None:
        own_database = own_topics and "autopilot" in services
    async with AsyncExitStack() as exits:
        if own_database:
            dsn = await exits.enter_async_context(
                scratch_database(env.servers.admin_dsn, "exammentor_stack_")
            )
            await migrate.upgrade(dsn)
            env = replace(env, admin_dsn=dsn, app_dsn=app_dsn(dsn))
        if own_topics:
            env = replace(env, topic_prefix=unique_name("s"))
        await ensure_topics(env.kafka())
        scripted: ScriptedOpenAI | None = None
        if isinstance(model, LLMSettings):
            llm_settings = model.model_copy(update=dict(llm or {}))
        elif model is not None:
            scripted = await exits.enter_async_context(ScriptedOpenAI(default=model))
            llm_settings = LLMSettings(
                base_url=scripted.base_url, **{**SCRIPTED_LLM, **(llm or {})}
            )
        else:
            llm_settings = LLMSettings(**(llm or {}))
        front = Gateway(
            env.service_settings(
                GatewaySettings, http_port=0, grpc_port=0, relay_port=0, **(gateway or {})
            )
        )
        exits.push_async_callback(front.stop)
        await front.start()
        running: list[Worker[Any]] = []
        for name in services:
            cls, install = SERVICES[name]
            install = (handlers or {}).get(name, install)
            extra = (workers or {}).get(name, {})
            worker = Worker(env.service_settings(cls, llm=llm_settings, **extra), install)
            exits.push_async_callback(worker.stop)
            await worker.start()
            running.append(worker)
        yield Stack(front, running, env, scripted)


@asynccontextmanager
async def owner_connection(env: SessionEnv) -> AsyncIterator[asyncpg.Connection]:
    """An owner connection to ``env``'s database, for assertions that see every row (a
    module whose stack has a database of its own overrides ``admin_db`` with it)."""
    conn = await asyncpg.connect(env.admin_dsn)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture(scope="session")
async def llm_settings() -> LLMSettings:
    """The model endpoint of the workers of the shared stack (the embedded one by default)."""
    return LLMSettings()


@pytest.fixture(scope="session")
async def stack(test_env: SessionEnv, llm_settings: LLMSettings) -> AsyncIterator[Stack]:
    """Gateway plus every worker, for the whole session, on the session's topics and
    database."""
    async with start_stack(
        test_env, model=llm_settings, own_topics=False, gateway={"request_timeout_s": 240}
    ) as found:
        yield found


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the stack's gateway."""
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=300) as http:
        yield http


async def register(client: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    """A new user; returns its id and the Authorization header."""
    name = f"student-{uuid.uuid4().hex[:8]}"
    reply = await client.post("/api/users/register", json={"name": name, "password": "s3cret-pass"})
    assert reply.status_code == 201, reply.text
    body = reply.json()
    return body["user_id"], {"Authorization": f"Bearer {body['access_token']}"}


class RelayProbe:
    """A result relay of the test's own: commands published by a test name it as reply_to,
    and the test awaits the chunks the worker sends (no sleeping, no polling).
    """

    def __init__(self) -> None:
        self.hub = RelayHub()
        self.server = aio.server()
        relay_pb2_grpc.add_ResultRelayServicer_to_server(self.hub, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")

    @property
    def address(self) -> str:
        """The reply_to address."""
        return f"127.0.0.1:{self.port}"

    async def finals(
        self, queue: asyncio.Queue[RelayChunk], count: int, timeout_s: float = 60
    ) -> list[RelayChunk]:
        """The next ``count`` final chunks on ``queue``."""
        found: list[RelayChunk] = []
        async with asyncio.timeout(timeout_s):
            while len(found) < count:
                chunk = await queue.get()
                if chunk.final:
                    found.append(chunk)
        return found


@pytest.fixture
async def relay_probe() -> AsyncIterator[RelayProbe]:
    """A started :class:`RelayProbe`."""
    probe = RelayProbe()
    await probe.server.start()
    yield probe
    await probe.server.stop(None)


@pytest.fixture
async def producer(test_env: SessionEnv) -> AsyncIterator[AIOKafkaProducer]:
    """A raw Kafka producer, to put exact bytes on a topic."""
    prod = AIOKafkaProducer(
        bootstrap_servers=test_env.servers.kafka_bootstrap, acks="all", enable_idempotence=True
    )
    await prod.start()
    yield prod
    await prod.stop()
