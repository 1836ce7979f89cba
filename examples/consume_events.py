"""An integrator's consumer of ExamMentor's event feed.

    python examples/consume_events.py --bootstrap 127.0.0.1:9092 --prefix exammentor

Subscribes to every event topic in a consumer group of its own, checks each envelope and
its payload against the published models, skips repeats by ``event_id`` (delivery is at
least once), and commits an offset only after the event was handled.
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
from exammentor.topics import EVENT_DOMAINS, event_topic

Handler = Callable[[EventEnvelope, DomainEvent], Awaitable[None]]


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
                envelope = EventEnvelope.model_validate_json(record.value)
                model = EVENTS.get((envelope.type, envelope.version))
                if model is None:
                    continue  # a type or version this consumer does not know yet
                payload = model.model_validate(envelope.payload)
            except ValidationError as exc:
                sys.stderr.write(f"skipping a malformed event at offset {record.offset}: {exc}\n")
            else:
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
