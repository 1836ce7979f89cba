"""Prometheus metrics shared by every process (labels say which service and what kind)."""

from __future__ import annotations

from aiokafka import TopicPartition
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
HTTP_REQUEST_SECONDS = Histogram(
    "exammentor_http_request_seconds",
    "Gateway HTTP request time, to the response's start (a stream's first bytes), by route",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
CONSUMER_LAG = Gauge(
    "exammentor_consumer_lag",
    "Records of a command partition not yet taken by this service's consumers, as of the "
    "last record taken from it (the partition's highwater minus the next offset)",
    ["service", "partition"],
)


def observe_consumer_lag(service: str, consumer: object, record: object) -> None:
    """Sets :data:`CONSUMER_LAG` for ``record``'s partition from the consumer's fetch
    position: aiokafka knows the partition's highwater from its last fetch, so this costs no
    request. A consumer or record without that information (a test double) is skipped.

    Args:
        service: The worker service consuming.
        consumer: The aiokafka consumer that fetched the record (``KafkaMessage.consumer``).
        record: The ``ConsumerRecord`` taken (``KafkaMessage.raw_message``).
    """
    topic = getattr(record, "topic", None)
    partition = getattr(record, "partition", None)
    offset = getattr(record, "offset", None)
    # getattr, not isinstance against the Protocol: a runtime-checkable Protocol's check
    # walks its members on every call, a cost paid for every record.
    highwater_of = getattr(consumer, "highwater", None)
    if not callable(highwater_of) or not isinstance(topic, str):
        return
    if not isinstance(partition, int) or not isinstance(offset, int):
        return
    highwater = highwater_of(TopicPartition(topic, partition))
    if highwater is None:
        return
    CONSUMER_LAG.labels(service, str(partition)).set(max(highwater - offset - 1, 0))
