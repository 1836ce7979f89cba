"""OpenTelemetry context across Kafka: the W3C ``traceparent`` rides in message headers.

Each process installs a tracer provider; the gateway starts a span per request and injects
it into the command's headers, the worker continues it, and the trace id appears in logs.

Nothing exports spans unless an operator adds an exporter, so by default none is *recorded*
(sampler ``parentbased_always_off``): a span is then a trace context only (ids carried in
headers and logs), without the attributes, timestamps and locks of a recorded one.
``OTEL_TRACES_SAMPLER`` (and ``OTEL_TRACES_SAMPLER_ARG``) choose another sampler, as
OpenTelemetry's SDK reads them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import structlog
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, Sampler
from opentelemetry.trace import Span

_installed = False
_tracer = trace.get_tracer("exammentor")
"""One tracer for the process (getting one costs more than a span); a proxy until the
provider is installed, then the provider's."""


def records_spans() -> bool:
    """Whether an operator chose a sampler (``OTEL_TRACES_SAMPLER``), so spans are recorded;
    by default they are trace contexts only."""
    return bool(os.environ.get("OTEL_TRACES_SAMPLER"))


def configure_tracing(service: str) -> None:
    """Installs a tracer provider named after the service (once per process)."""
    global _installed  # noqa: PLW0603 - the provider is process-wide by OpenTelemetry's design
    if not _installed:
        # None: the SDK reads OTEL_TRACES_SAMPLER (its default records every span).
        sampler: Sampler | None = None if records_spans() else ParentBased(ALWAYS_OFF)
        trace.set_tracer_provider(
            TracerProvider(resource=Resource.create({"service.name": service}), sampler=sampler)
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
    with _tracer.start_as_current_span(name, context=ctx) as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
        with structlog.contextvars.bound_contextvars(trace_id=trace_id):
            yield span


@contextmanager
def start_span(name: str) -> Iterator[Span]:
    """A new span (child of the current one, if any); its trace id is bound to logs."""
    with _tracer.start_as_current_span(name) as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
        with structlog.contextvars.bound_contextvars(trace_id=trace_id):
            yield span
