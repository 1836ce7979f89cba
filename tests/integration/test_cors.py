"""Browser front ends: CORS for the origins an operator configures, none by default."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import httpx
import pytest

from services.gateway.app import Gateway
from services.gateway.settings import GatewaySettings
from tests.conftest import SessionEnv
from tests.integration.conftest import Stack, register

pytestmark = pytest.mark.integration

ORIGIN = "https://study.example.org"


@pytest.fixture(scope="module")
async def cors_gateway(test_env: SessionEnv, stack: Stack) -> AsyncIterator[str]:
    """A second gateway instance, with one allowed origin, over the same workers."""
    del stack  # the workers answer this gateway's commands too
    env = dataclasses.replace(test_env)
    gateway = Gateway(
        env.service_settings(
            GatewaySettings, http_port=0, grpc_port=0, relay_port=0, cors_origins=[ORIGIN]
        )
    )
    await gateway.start()
    yield f"http://127.0.0.1:{gateway.http_port}"
    await gateway.stop()


async def test_a_configured_origin_gets_preflight_and_exposed_headers(cors_gateway: str) -> None:
    async with httpx.AsyncClient(base_url=cors_gateway, timeout=30) as http:
        preflight = await http.options(
            "/api/plan/stream-verified",
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == ORIGIN
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
        _, auth = await register(http)
        echo = await http.post(
            "/api/system/echo", json={"text": "cors"}, headers={**auth, "Origin": ORIGIN}
        )
        assert echo.status_code == 200
        assert echo.headers["access-control-allow-origin"] == ORIGIN
        assert "x-request-id" in echo.headers["access-control-expose-headers"].lower()

        stranger = await http.options(
            "/api/system/echo",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert "access-control-allow-origin" not in stranger.headers


async def test_no_origin_is_allowed_by_default(client: httpx.AsyncClient) -> None:
    reply = await client.options(
        "/api/system/echo",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in reply.headers
