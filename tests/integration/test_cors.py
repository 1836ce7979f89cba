"""Browser front ends: CORS for the origins an operator configures, none by default; every
preflight answered (allowed, or 403 ``cors_refused`` naming what is not), never a bare 405."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from services.gateway.settings import GatewaySettings
from tests.conftest import SessionEnv
from tests.integration.conftest import Stack, register, start_stack

pytestmark = pytest.mark.integration

ORIGIN = "https://study.example.org"


@pytest.fixture(scope="module")
async def cors_gateway(test_env: SessionEnv, stack: Stack) -> AsyncIterator[str]:
    """A second gateway instance, with one allowed origin, over the same workers."""
    del stack  # the workers answer this gateway's commands too
    async with start_stack(
        test_env, [], own_topics=False, gateway={"cors_origins": [ORIGIN]}
    ) as cors:
        yield cors.base_url


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


BROWSER_PREFLIGHT = {
    "Origin": ORIGIN,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization,content-type",
}
"""What a browser sends before a fetch with a bearer token and a JSON body."""


@pytest.mark.parametrize(
    "path",
    [
        "/api/autopilot/start",
        "/api/autopilot/status/00000000-0000-0000-0000-000000000001",
        "/api/quiz/persistence",
        "/api/session/00000000-0000-0000-0000-000000000001/save",
        "/api/users/login",
        "/api/tutor/stream",
        "/health",
        "/no/such/route",
    ],
)
async def test_a_browser_preflight_is_answered_on_every_path(cors_gateway: str, path: str) -> None:
    async with httpx.AsyncClient(base_url=cors_gateway, timeout=30) as http:
        reply = await http.options(path, headers=BROWSER_PREFLIGHT)
    assert reply.status_code == 200, reply.text
    assert reply.headers["access-control-allow-origin"] == ORIGIN
    allowed = {h.strip().lower() for h in reply.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "idempotency-key"} <= allowed
    assert {"GET", "POST", "DELETE"} <= {
        m.strip() for m in reply.headers["access-control-allow-methods"].split(",")
    }


async def test_a_refused_preflight_names_what_is_not_allowed(cors_gateway: str) -> None:
    async with httpx.AsyncClient(base_url=cors_gateway, timeout=30) as http:
        header = await http.options(
            "/api/quiz/generate",
            headers={**BROWSER_PREFLIGHT, "Access-Control-Request-Headers": "x-tracking-id"},
        )
        method = await http.options(
            "/api/quiz/generate",
            headers={**BROWSER_PREFLIGHT, "Access-Control-Request-Method": "PATCH"},
        )
    assert header.status_code == 403
    assert header.json()["detail"]["code"] == "cors_refused"
    assert "x-tracking-id" in header.json()["detail"]["message"]
    assert method.status_code == 403
    assert "PATCH" in method.json()["detail"]["message"]


async def test_no_origin_is_allowed_by_default(client: httpx.AsyncClient) -> None:
    reply = await client.options(
        "/api/system/echo",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in reply.headers
    # Answered, not a bare 405: the refusal says where origins are allowed.
    assert reply.status_code == 403
    detail = reply.json()["detail"]
    assert detail["code"] == "cors_refused"
    assert ORIGIN in detail["message"]
    assert "EXAMMENTOR_CORS_ORIGINS" in detail["message"]


@pytest.mark.parametrize(
    ("value", "origins"),
    [
        ("http://localhost:3000", ["http://localhost:3000"]),
        ("http://localhost:3000, https://study.example.org", ["http://localhost:3000", ORIGIN]),
        (f'["{ORIGIN}"]', [ORIGIN]),
        ("", []),
    ],
)
def test_origins_are_read_as_a_comma_list_or_json(
    monkeypatch: pytest.MonkeyPatch, value: str, origins: list[str]
) -> None:
    monkeypatch.setenv("EXAMMENTOR_CORS_ORIGINS", value)
    assert GatewaySettings().cors_origins == origins
