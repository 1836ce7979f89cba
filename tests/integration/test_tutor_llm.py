"""The tutor through the shared stack with the embedded model (SmolLM2): real tokens stream
through the gateway, and the image routes say clearly that this model cannot see."""

from __future__ import annotations

import base64

import httpx
import pytest

from exammentor.contracts.tutor import STREAM_EVENT, DoneEvent, TokenEvent
from tests.integration.conftest import register
from tests.integration.test_tutor_api import png_pixel

pytestmark = [pytest.mark.integration, pytest.mark.llm]


async def test_stream_with_the_embedded_model_over_http(client: httpx.AsyncClient) -> None:
    _, auth = await register(client)
    raw = await client.post(
        "/api/tutor/stream",
        json={"topic": "Newton's first law", "difficulty": "easy"},
        headers=auth,
    )
    assert raw.status_code == 200, raw.text
    assert raw.text.strip()
    typed = await client.post(
        "/api/tutor/stream?format=ndjson",
        json={"topic": "Newton's first law", "difficulty": "easy"},
        headers=auth,
    )
    events = [STREAM_EVENT.validate_json(line) for line in typed.text.splitlines()]
    assert sum(isinstance(e, TokenEvent) for e in events) > 1
    assert isinstance(events[-1], DoneEvent)
    explained = await client.post(
        "/api/tutor/explain", json={"topic": "Inertia", "difficulty": "easy"}, headers=auth
    )
    assert explained.status_code == 200, explained.text
    assert explained.json()["steps"]


async def test_the_embedded_model_cannot_see_and_says_so(client: httpx.AsyncClient) -> None:
    _, auth = await register(client)
    image = base64.b64encode(png_pixel()).decode()
    for route, body in (
        ("/api/describe-image", {"image_base64": image, "mime_type": "image/png"}),
        (
            "/api/tutor/explain-image",
            {"topic": "Colour", "image_base64": image, "mime_type": "image/png"},
        ),
    ):
        reply = await client.post(route, json=body, headers=auth)
        assert reply.status_code == 422, reply.text
        detail = reply.json()["detail"]
        assert detail["code"] == "vision_unsupported"
        assert "cannot read images" in detail["message"]
