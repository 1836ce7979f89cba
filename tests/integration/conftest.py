"""The services running in-process against the session's real broker and database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from grpc import aio

from exammentor._proto import relay_pb2_grpc
from exammentor.messaging.result_relay import RelayChunk, RelayHub
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

    @property
    def base_url(self) -> str:
        """The gateway's HTTP address."""
        return f"http://127.0.0.1:{self.gateway.http_port}"


SERVICES: dict[str, tuple[type[WorkerSettings], InstallHandlers[Any]]] = {
    "planner": (PlannerSettings, planner_handlers),
    "tutor": (TutorSettings, tutor_handlers),
    "quiz": (QuizSettings, quiz_handlers),
    "autopilot": (AutopilotSettings, autopilot_handlers),
}
"""Each worker service: its settings class and its handlers."""


async def start_worker(
    env: SessionEnv, name: str, llm: LLMSettings, **settings: Any
) -> Worker[Any]:
    """One worker service in-process, with its own settings class."""
    cls, install = SERVICES[name]
    worker = Worker(env.service_settings(cls, llm=llm, **settings), install)
    await worker.start()
    return worker


@pytest.fixture(scope="session")
async def llm_settings() -> LLMSettings:
    """The model endpoint of the workers of the shared stack (the embedded one by default)."""
    return LLMSettings()


@pytest.fixture(scope="session")
async def stack(test_env: SessionEnv, llm_settings: LLMSettings) -> AsyncIterator[Stack]:
    """Gateway plus every worker, for the whole session."""
    gateway = Gateway(
        test_env.service_settings(
            GatewaySettings, http_port=0, grpc_port=0, relay_port=0, request_timeout_s=240
        )
    )
    await gateway.start()
    workers = [await start_worker(test_env, name, llm_settings) for name in SERVICES]
    yield Stack(gateway, workers)
    for worker in workers:
        await worker.stop()
    await gateway.stop()


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
