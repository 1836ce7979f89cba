"""An integrator's consumer of ExamMentor's event feed.

    pip install exammentor-contracts aiokafka
    python examples/consume_events.py --bootstrap 127.0.0.1:9092 --prefix exammentor

Subscribes to every event topic in a consumer group of its own, checks each envelope and
its payload against the published models, skips repeats by ``event_id`` (delivery is at
least once), and commits an offset only after the event was handled. It needs nothing of
ExamMentor but ``exammentor.contracts`` (the ``exammentor-contracts`` distribution).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer
from pydantic import ValidationError

from exammentor.contracts.envelope import EventEnvelope
from exammentor.contracts.events import EVENTS, DomainEvent
from exammentor.contracts.kafka_topics import EVENT_DOMAINS, event_topic

Handler = Callable[[EventEnvelope, DomainEvent], Awaitable[None]]


def decode_event(value: bytes) -> tuple[EventEnvelope, DomainEvent] | None:
    """Decodes one record value of an event topic.

    Args:
        value: The record's value as Kafka carries it (a UTF-8 JSON envelope).

    Returns:
        The envelope and its typed payload, or None for a type or version this consumer
        does not know yet (a newer release of the services publishes it).

    Raises:
        ValidationError: The envelope or its payload does not match the contracts.
    """
    envelope = EventEnvelope.model_validate_json(value)
    model = EVENTS.get((envelope.type, envelope.version))
    if model is None:
        return None
    return envelope, model.model_validate(envelope.payload)


async def consume(
    bootstrap: str,
    prefix: str,
    group: str,
    handle: Handler,
    *,
    stop: Callable[[], bool] | None = None,
) -> int:
    """Handles events until ``stop()`` says so (forever when None).

    Returns:
        How many events were handled.
    """
    consumer = AIOKafkaConsumer(
        *(event_topic(prefix, d) for d in EVENT_DOMAINS),
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    seen: set[str] = set()  # a real integrator keeps this in its own database
    handled = 0
    await consumer.start()
    try:
        async for record in consumer:
            try:
                decoded = decode_event(record.value)
            except ValidationError as exc:
                sys.stderr.write(f"skipping a malformed event at offset {record.offset}: {exc}\n")
            else:
                # None: a type or version this consumer does not know yet, skipped.
                if decoded is not None:
                    envelope, payload = decoded
                    if str(envelope.event_id) not in seen:
                        await handle(envelope, payload)
                        seen.add(str(envelope.event_id))
                        handled += 1
            await consumer.commit()
            if stop is not None and stop():
                break
    finally:
        await consumer.stop()
    return handled


async def _print(envelope: EventEnvelope, payload: DomainEvent) -> None:
    line = {"type": envelope.type, "user": str(envelope.user_id), **payload.model_dump(mode="json")}
    sys.stdout.write(json.dumps(line) + "\n")


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--prefix", default="exammentor")
    parser.add_argument("--group", default="example-integrator")
    args = parser.parse_args()
    asyncio.run(consume(args.bootstrap, args.prefix, args.group, _print))


if __name__ == "__main__":
    main()
