"""Start-up and shutdown against servers that are not there yet (or never come).

A process started before Kafka answers waits, saying what it waits for, and starts once the
broker is there (the cold start that once failed ``make demo``); one whose broker never
comes gives up with a message naming it and stops cleanly, leaving nothing open (pytest
turns an unclosed client into an error).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from exammentor.outages import ServerUnreachable
from exammentor.settings import KafkaSettings
from exammentor.worker import Worker
from services.gateway.app import Gateway
from services.gateway.settings import GatewaySettings
from services.planner.handlers import install_handlers
from services.planner.settings import PlannerSettings
from tests.conftest import SessionEnv
from tests.fakes.tcp_proxy import TcpProxy
from tests.infra import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
async def late_broker(test_env: SessionEnv) -> AsyncIterator[tuple[TcpProxy, int]]:
    """Kafka behind a proxy that turns clients away until the test opens it."""
    broker = TcpProxy.to(test_env.servers.kafka_bootstrap, open_=False)
    port = await broker.start()
    yield broker, port
    await broker.stop()


async def test_a_gateway_started_before_kafka_waits_and_then_serves(
    test_env: SessionEnv, late_broker: tuple[TcpProxy, int]
) -> None:
    broker, port = late_broker
    kafka = test_env.kafka().model_copy(update={"bootstrap_servers": f"127.0.0.1:{port}"})
    gateway = Gateway(
        test_env.service_settings(GatewaySettings, http_port=0, grpc_port=0, relay_port=0)
    )
    gateway.settings = gateway.settings.model_copy(update={"kafka": kafka})
    starting = asyncio.create_task(gateway.start())
    try:
        await asyncio.wait_for(broker.turned_away.wait(), 30)  # it tried and was turned away
        assert not starting.done()  # ... and is still waiting, not failed
        broker.restore()
        await asyncio.wait_for(starting, 60)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.http_port}") as http:
            ready = await http.get("/ready")
        assert ready.status_code == 200, ready.text
    finally:
        if not starting.done():
            starting.cancel()
        await gateway.stop()


async def test_a_worker_whose_broker_never_comes_gives_up_by_name_and_stops_cleanly(
    test_env: SessionEnv,
) -> None:
    address = f"127.0.0.1:{free_port()}"
    settings = PlannerSettings(
        kafka=KafkaSettings(bootstrap_servers=address),
        db=test_env.db(),
        ops_port=0,
        startup_wait_s=1.0,
    )
    worker = Worker(settings, install_handlers)
    with pytest.raises(ServerUnreachable, match=f"Kafka at {address} did not answer within 1 s"):
        await worker.start()
    await worker.stop()
    await worker.stop()


async def test_a_gateway_whose_database_never_comes_gives_up_and_stops_cleanly(
    test_env: SessionEnv,
) -> None:
    nowhere = f"postgresql://exammentor_app@127.0.0.1:{free_port()}/nothing"
    settings = test_env.service_settings(
        GatewaySettings, http_port=0, grpc_port=0, relay_port=0, startup_wait_s=1.0
    )
    settings = settings.model_copy(
        update={"db": settings.db.model_copy(update={"app_database_url": nowhere})}
    )
    gateway = Gateway(settings)
    with pytest.raises(ServerUnreachable, match=r"Postgres at 127\.0\.0\.1"):
        await gateway.start()
    await gateway.stop()
