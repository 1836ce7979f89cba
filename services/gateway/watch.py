"""Following stored requests: one LISTEN connection per gateway instance, fanned out to the
clients that follow a request (``/api/requests/{id}/events``, an idempotent retry).

Workers notify ``exammentor_requests`` with a request's id each time it gains progress or
ends (at commit); a follower wakes on it and reads what is new from Postgres. A missed
notification (the listener reconnecting) costs at most one poll interval.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Iterator
from uuid import UUID

from exammentor.db import Connection, Pool
from exammentor.logs import get_logger
from exammentor.messaging.pipeline import REQUESTS_CHANNEL

log = get_logger(__name__)


class RequestWatch:
    """Wakes the followers of a request when a worker reports on it."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._conn: Connection | None = None
        self._followers: dict[UUID, set[asyncio.Event]] = defaultdict(set)

    async def start(self) -> None:
        """Starts listening."""
        self._conn = await self._pool.acquire()
        await self._conn.add_listener(REQUESTS_CHANNEL, self._on_notify)

    async def stop(self) -> None:
        """Stops listening and wakes every follower (they re-read and end or time out)."""
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.remove_listener(REQUESTS_CHANNEL, self._on_notify)
            await self._pool.release(self._conn)  # type: ignore[arg-type]  # from acquire()
            self._conn = None
        for events in self._followers.values():
            for event in events:
                event.set()

    def _on_notify(self, *args: object) -> None:
        payload = str(args[-1])
        with contextlib.suppress(ValueError):
            for event in self._followers.get(UUID(payload), ()):
                event.set()

    @contextlib.contextmanager
    def follower(self, request_id: UUID) -> Iterator[asyncio.Event]:
        """An event set each time ``request_id`` changes, while the block runs."""
        event = asyncio.Event()
        self._followers[request_id].add(event)
        try:
            yield event
        finally:
            self._followers[request_id].discard(event)
            if not self._followers[request_id]:
                del self._followers[request_id]
