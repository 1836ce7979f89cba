"""Postgres access: one asyncpg pool per process, transactions scoped to one user.

Services connect as ``exammentor_app``, a role that row-level security binds. Each unit of
work runs in :func:`user_transaction`, which sets ``app.user_id`` for that transaction only,
so a query can never see another user's rows even if its WHERE clause forgets them.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeAlias
from uuid import UUID

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from exammentor.json_codec import dumps

if TYPE_CHECKING:
    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]
    Pool: TypeAlias = asyncpg.Pool[asyncpg.Record]
else:  # asyncpg's classes are generic only in its stubs
    Connection = asyncpg.Connection | PoolConnectionProxy
    Pool = asyncpg.Pool
"""Connection: a connection as handlers and repos see it (pooled or direct)."""


async def _init_connection(conn: Connection) -> None:
    # jsonb in and out as Python objects, so repos never write JSON by hand.
    await conn.set_type_codec(
        "jsonb", encoder=dumps, decoder=json.loads, schema="pg_catalog", format="text"
    )
    await conn.set_type_codec(
        "json", encoder=dumps, decoder=json.loads, schema="pg_catalog", format="text"
    )


_CLEAN: set[int] = set()
"""Server pids of pooled connections a transaction block is handing back with no session
state (see :func:`_reset_connection`)."""


async def _reset_connection(conn: Connection) -> None:
    # asyncpg resets every released connection with one more round trip (UNLISTEN *, RESET
    # ALL, unlock advisory locks ...), which costs as much as the transaction's own work. A
    # connection released by user_transaction or system_transaction has nothing to reset:
    # those blocks committed, and this code keeps no session state in them (settings are
    # transaction-local, advisory locks transaction-level, LISTEN only on connections held
    # apart). Any other release is reset in full.
    if conn.get_server_pid() in _CLEAN:
        _CLEAN.discard(conn.get_server_pid())
        return
    await conn.execute(conn.get_reset_query())


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> Pool:
    """Opens a pool whose connections speak jsonb as Python objects."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_reset_connection,
        command_timeout=60,
    )
    assert pool is not None
    return pool


@asynccontextmanager
async def user_transaction(pool: Pool, user_id: UUID) -> AsyncIterator[Connection]:
    """A transaction in which row-level security sees exactly ``user_id``'s rows.

    The transaction is begun by hand rather than with ``conn.transaction()`` (which sends
    BEGIN on its own): so a block inside must not open ``conn.transaction()`` itself
    (asyncpg refuses it in a transaction begun by hand, loudly).

    Args:
        pool: The service pool (role exammentor_app).
        user_id: The user the work is done for.

    Yields:
        The connection, inside the open transaction.
    """
    # BEGIN and the setting go in one round trip (a simple-query batch), not two; the id
    # is written into the text as a UUID's canonical form, which has no quote to escape.
    uid = user_id if isinstance(user_id, UUID) else UUID(str(user_id))
    async with pool.acquire() as conn:
        await conn.execute(f"BEGIN; SELECT set_config('app.user_id', '{uid}', true)")
        try:
            yield conn
        except BaseException:
            # As asyncpg's own transaction block does; a connection that cannot roll back
            # is rolled back (or dropped) by the pool on release.
            # The block's own error is what the caller must see (an outage is told by its
            # type), not a failed rollback's.
            with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                if not conn.is_closed():
                    await conn.execute("ROLLBACK")
            raise
        await conn.execute("COMMIT")
        _CLEAN.add(conn.get_server_pid())


@asynccontextmanager
async def connection(pool: Pool) -> AsyncIterator[Connection]:
    """A pooled connection for statements run outside a transaction block that leave no
    session state (no LISTEN, no session setting or lock): handed back without the reset
    query, as the transaction blocks are. Anything else uses ``pool.acquire()``.
    """
    async with pool.acquire() as conn:
        yield conn
        if not conn.is_in_transaction():
            _CLEAN.add(conn.get_server_pid())


@asynccontextmanager
async def system_transaction(pool: Pool) -> AsyncIterator[Connection]:
    """A transaction with no user: sees only the pipeline tables (inbox, outbox ...)."""
    async with pool.acquire() as conn:
        async with conn.transaction():
            yield conn
        _CLEAN.add(conn.get_server_pid())


async def ping(pool: Pool) -> bool:
    """True when the database answers a trivial query."""
    try:
        async with pool.acquire(timeout=2) as conn:
            return bool(await conn.fetchval("SELECT 1", timeout=2) == 1)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False


def row_to_dict(row: asyncpg.Record | None) -> dict[str, Any] | None:
    """A record as a plain dict (None stays None)."""
    return dict(row) if row is not None else None
