"""OpenTelemetry context across Kafka: the W3C ``traceparent`` rides in message headers.

Each process installs a tracer provider; the gateway starts a span per request and injects
it into the command's headers, the worker continues it, and the trace id appears in logs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import structlog
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Span

_installed = False


def configure_tracing(service: str) -> None:
    """Installs a tracer provider named after the service (once per process)."""
    global _installed  # noqa: PLW0603 - the provider is process-wide by OpenTelemetry's design
    if not _installed:
        trace.set_tracer_provider(
            TracerProvider(resource=Resource.create({"service.name": service}))
        )
        _installed = True


def inject_headers() -> dict[str, str]:
    """The current trace context as message headers."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


@contextmanager
def span_from_headers(name: str, headers: Mapping[str, str]) -> Iterator[Span]:
    """A span continuing the trace carried by ``headers``; its trace id is bound to logs."""
    ctx = propagate.extract(dict(headers))
    with trace.get_tracer("exammentor").start_as_current_span(name, context=ctx) as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
        with structlog.contextvars.bound_contextvars(trace_id=trace_id):
            yield span


@contextmanager
def start_span(name: str) -> Iterator[Span]:
    """A new span (child of the current one, if any); its trace id is bound to logs."""
    with trace.get_tracer("exammentor").start_as_current_span(name) as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
        with structlog.contextvars.bound_contextvars(trace_id=trace_id):
            yield span
