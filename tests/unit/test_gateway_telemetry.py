"""FastAPI's own OpenTelemetry layer runs only when spans are recorded.

It wraps every request and every body chunk of the gateway; with the default sampler no span
is recorded, and the layer was a fifth of the gateway's busy samples under load (py-spy on
bench/pipeline.py at 50 clients) for no output.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from exammentor.telemetry import configure_tracing
from services.gateway.http_api import create_http_app
from services.gateway.http_base import GatewayState


def _native_telemetry_on() -> bool:
    nothing: Any = SimpleNamespace()
    app = create_http_app(GatewayState(core=nothing, readiness=nothing, max_body_bytes=1))
    # FastAPI keeps the switch private; enabled() is what its __call__ asks per request.
    return bool(app._native_telemetry.enabled())


def test_the_layer_is_off_while_no_span_is_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_TRACES_SAMPLER", raising=False)
    configure_tracing("gateway-test")  # a provider is installed, as in the gateway
    assert not _native_telemetry_on()


def test_the_layer_is_on_when_an_operator_records_spans(monkeypatch: pytest.MonkeyPatch) -> None:
    configure_tracing("gateway-test")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_on")
    assert _native_telemetry_on()
