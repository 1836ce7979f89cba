"""Prometheus metrics shared by every process (labels say which service and what kind)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

COMMANDS = Counter(
    "exammentor_commands_total",
    "Commands handled, by outcome (applied, duplicate, rejected, dead_lettered, retried)",
    ["service", "type", "outcome"],
)
COMMAND_SECONDS = Histogram(
    "exammentor_command_seconds",
    "Time from receiving a command to committing its effects",
    ["service", "type"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
OUTBOX_PUBLISHED = Counter(
    "exammentor_outbox_published_total", "Events relayed from the outbox to Kafka", ["service"]
)
OUTBOX_BACKLOG = Gauge(
    "exammentor_outbox_backlog", "Unpublished outbox rows seen by the last relay pass", ["service"]
)
LLM_TOKENS = Counter(
    "exammentor_llm_tokens_total", "LLM tokens, by purpose and kind", ["service", "purpose", "kind"]
)
LLM_CALLS = Counter(
    "exammentor_llm_calls_total", "LLM HTTP calls, by outcome", ["service", "purpose", "outcome"]
)
HTTP_REQUESTS = Counter(
    "exammentor_http_requests_total", "Gateway HTTP requests", ["route", "status"]
)
