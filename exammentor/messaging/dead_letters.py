"""Dead letters for operators: list them, and replay one once its cause is fixed.

A dead-lettered command was never applied (its inbox row was not written), so replaying
it puts the original bytes back on the source topic and the service applies it as new; a
replay of a command that meanwhile got applied is answered from the inbox, not applied twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg
from aiokafka import AIOKafkaProducer

from exammentor.messaging import pipeline
from exammentor.settings import KafkaSettings


@dataclass(frozen=True)
class DeadLetter:
    """One dead-lettered record."""

    id: int
    consumer: str
    topic: str
    partition: int
    offset: int
    reason: str
    attempts: int
    created_at: datetime
    replayed_at: datetime | None


class ReplayError(RuntimeError):
    """The letter does not exist or was replayed already."""


async def list_dead_letters(
    dsn: str, *, limit: int = 50, pending_only: bool = True
) -> list[DeadLetter]:
    """The newest dead letters (not yet replayed, by default)."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await pipeline.dead_letter_rows(conn, limit=limit, pending_only=pending_only)
    finally:
        await conn.close()
    return [DeadLetter(**dict(row)) for row in rows]


async def replay_dead_letter(dsn: str, kafka: KafkaSettings, letter_id: int) -> DeadLetter:
    """Publishes the letter's original bytes to its source topic and marks it replayed.

    Raises:
        ReplayError: No such letter, or it was replayed before.
    """
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            row = await pipeline.lock_dead_letter(conn, letter_id)
            if row is None:
                raise ReplayError(f"no dead letter {letter_id}")
            if row["replayed_at"] is not None:
                raise ReplayError(f"dead letter {letter_id} was replayed at {row['replayed_at']}")
            producer = AIOKafkaProducer(
                bootstrap_servers=kafka.bootstrap_servers, acks="all", enable_idempotence=True
            )
            await producer.start()
            try:
                # Published before the row is marked: a crash in between leaves it
                # replayable, and a second replay is harmless (the inbox dedupes).
                await producer.send_and_wait(
                    row["topic"],
                    bytes(row["value"]),
                    key=bytes(row["key"]) if row["key"] is not None else None,
                    headers=[("dlq-replay-of", str(letter_id).encode())],
                )
            finally:
                await producer.stop()
            replayed_at = await pipeline.mark_replayed(conn, letter_id)
    finally:
        await conn.close()
    fields = {k: row[k] for k in DeadLetter.__dataclass_fields__ if k != "replayed_at"}
    return DeadLetter(**fields, replayed_at=replayed_at)
