"""Maintenance mode: one flag in Postgres that makes the gateway refuse writes for a while.

The rules this module keeps:

- The flag is the one row of ``maintenance`` (``migrations/008_maintenance.sql``). Only the
  owner role writes it (``exammentor maintenance on|off``); the services' role reads it.
- The gateway reads it through a :class:`MaintenanceGate`, cached for ``ttl_s`` (a second by
  default), so turning it on or off takes effect within that time, without a restart.
- While it is on, the gateway core refuses every write (commands on every transport,
  registration, session writes) with ``maintenance`` (503, ``Retry-After``); reads go on,
  and workers finish the commands they already hold.
- A flag that cannot be read (the table is missing before the migration, or the database
  does not answer) keeps the last state read, off at first: the write that follows then
  meets the same database and fails on its own terms.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from exammentor.db import Pool
from exammentor.logs import get_logger

log = get_logger(__name__)

DEFAULT_RETRY_AFTER_S = 60
DEFAULT_TTL_S = 1.0
_READ_TIMEOUT_S = 2.0

_READ = "SELECT enabled, reason, retry_after_s, changed_at, changed_by FROM maintenance"


@dataclass(frozen=True)
class MaintenanceState:
    """The flag as stored: whether writes are refused, why, and for how long to wait."""

    enabled: bool
    reason: str | None = None
    retry_after_s: int = DEFAULT_RETRY_AFTER_S
    changed_at: datetime | None = None
    changed_by: str | None = None

    def describe(self) -> str:
        """One line for an operator."""
        if not self.enabled:
            since = f" since {self.changed_at.isoformat()}" if self.changed_at else ""
            return f"maintenance: off{since}"
        why = f" ({self.reason})" if self.reason else ""
        by = f" by {self.changed_by}" if self.changed_by else ""
        when = f" since {self.changed_at.isoformat()}" if self.changed_at else ""
        return (
            f"maintenance: ON{why}{by}{when}; writes answered 503, "
            f"Retry-After {self.retry_after_s} s"
        )


OFF = MaintenanceState(enabled=False)


def _state(row: asyncpg.Record | None) -> MaintenanceState:
    if row is None:
        return OFF
    return MaintenanceState(
        enabled=row["enabled"],
        reason=row["reason"],
        retry_after_s=row["retry_after_s"],
        changed_at=row["changed_at"],
        changed_by=row["changed_by"],
    )


async def read_state(conn: asyncpg.Connection) -> MaintenanceState:
    """The flag as ``conn`` sees it (off when the table holds no row)."""
    return _state(await conn.fetchrow(_READ))


async def status(dsn: str) -> MaintenanceState:
    """The flag, read with the owner's connection string."""
    conn = await asyncpg.connect(dsn)
    try:
        return await read_state(conn)
    finally:
        await conn.close()


async def set_mode(
    dsn: str,
    enabled: bool,
    *,
    reason: str | None = None,
    retry_after_s: int = DEFAULT_RETRY_AFTER_S,
    changed_by: str | None = None,
) -> MaintenanceState:
    """Turns maintenance mode on or off (owner role); returns the stored state.

    Raises:
        ValueError: ``retry_after_s`` outside 1 to 86400 seconds.
    """
    if not 1 <= retry_after_s <= 86_400:
        raise ValueError(f"retry_after_s: {retry_after_s} is not between 1 and 86400")
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "UPDATE maintenance SET enabled = $1, reason = $2, retry_after_s = $3, "
            "changed_at = now(), changed_by = $4 WHERE singleton "
            "RETURNING enabled, reason, retry_after_s, changed_at, changed_by",
            enabled,
            reason,
            retry_after_s,
            changed_by,
        )
    finally:
        await conn.close()
    state = _state(row)
    log.info("maintenance mode set", enabled=state.enabled, reason=state.reason)
    return state


class MaintenanceGate:
    """The flag as one gateway process sees it: read at most once per ``ttl_s``."""

    def __init__(self, pool: Pool, ttl_s: float = DEFAULT_TTL_S) -> None:
        self._pool = pool
        self._ttl_s = ttl_s
        self._state = OFF
        self._read_at: float | None = None
        self._lock = asyncio.Lock()

    async def current(self) -> MaintenanceState:
        """The flag, from the cache while it is fresh."""
        if self._read_at is not None and time.monotonic() - self._read_at < self._ttl_s:
            return self._state
        async with self._lock:
            # Another caller may have refreshed it while this one waited.
            if self._read_at is not None and time.monotonic() - self._read_at < self._ttl_s:
                return self._state
            try:
                async with self._pool.acquire(timeout=_READ_TIMEOUT_S) as conn:
                    row = await conn.fetchrow(_READ, timeout=_READ_TIMEOUT_S)
                self._state = _state(row)
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                log.warning("maintenance flag unreadable; keeping the last state", error=str(exc))
            self._read_at = time.monotonic()
            return self._state
