"""Nothing stays pending forever: the gateway's sweeper sends again the commands stored with
their requests that no service has taken (the publish failed or timed out, or the gateway
died between the commit and the publish), and ends with ``expired`` the requests that no
service took after every try, or that stayed running past their deadline.

Every gateway replica sweeps; the database functions take each row once (``FOR UPDATE SKIP
LOCKED``), and a command sent twice is applied once (the service's inbox).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import timedelta

from faststream.kafka import KafkaBroker

from exammentor.contracts.envelope import CommandEnvelope
from exammentor.db import Pool
from exammentor.logs import get_logger
from exammentor.messaging.consumer import encode_command
from exammentor.messaging.pipeline import REQUESTS_CHANNEL

log = get_logger(__name__)


@dataclass(frozen=True)
class SweepPolicy:
    """When a stored command is sent again, how often, and when a request is given up."""

    republish_after_s: float = 30.0
    max_publish_attempts: int = 5
    running_deadline_s: float = 1800.0
    interval_s: float = 10.0
    batch: int = 100


class RequestSweeper:
    """Sends stored commands again and expires stuck requests, every ``interval_s``."""

    def __init__(self, pool: Pool, broker: KafkaBroker, policy: SweepPolicy) -> None:
        self._pool = pool
        self._broker = broker
        self._policy = policy
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Starts sweeping in the background."""
        self._task = asyncio.create_task(self._run(), name="request-sweeper")

    async def stop(self) -> None:
        """Stops sweeping."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._policy.interval_s)
            try:
                await self.sweep_once()
            except Exception:
                log.exception("request sweep failed; the next one tries again")

    async def sweep_once(self) -> tuple[int, int]:
        """One sweep; returns how many commands it sent again and requests it expired."""
        p = self._policy
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT id, topic, command FROM requests_to_republish($1, $2, $3)",
                timedelta(seconds=p.republish_after_s),
                p.max_publish_attempts,
                p.batch,
            )
        sent = 0
        for row in rows:
            envelope = CommandEnvelope.model_validate(row["command"])
            try:
                await self._broker.publish(
                    encode_command(envelope),
                    row["topic"],
                    key=envelope.key,
                    headers={
                        "command-type": envelope.type,
                        "command-version": str(envelope.version),
                    },
                )
            except Exception as exc:  # noqa: BLE001 - the next sweep tries again
                log.warning("stored command not sent again yet", error=repr(exc))
                break
            sent += 1
        async with self._pool.acquire() as conn:
            expired = await conn.fetch(
                "SELECT id FROM expire_requests($1, $2, $3)",
                timedelta(seconds=p.republish_after_s),
                timedelta(seconds=p.running_deadline_s),
                p.max_publish_attempts,
            )
            for row in expired:
                await conn.execute("SELECT pg_notify($1, $2)", REQUESTS_CHANNEL, str(row["id"]))
        if sent or expired:
            log.info("requests swept", sent_again=sent, expired=len(expired))
        return sent, len(expired)
