"""The transaction blocks of ``exammentor.db``: one user's rows, committed or rolled back
whole, and a pooled connection handed back with no trace of the block (they skip asyncpg's
reset query, so this is what makes that safe); any other use of a pooled connection is
still reset in full."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from exammentor.db import (
    Connection,
    Pool,
    connection,
    create_pool,
    system_transaction,
    user_transaction,
)
from exammentor.messaging import pipeline
from tests.conftest import SessionEnv
from tests.infra import unique_name

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool(test_env: SessionEnv) -> AsyncIterator[Pool]:
    # One connection: every block below gets the connection the one before handed back.
    made = await create_pool(test_env.app_dsn, min_size=1, max_size=1)
    yield made
    await made.close()


async def insert_user(conn: Connection, user_id: uuid.UUID) -> None:
    await conn.execute(
        "INSERT INTO users (id, name, password_hash) VALUES ($1, $2, 'x')",
        user_id,
        unique_name("db-"),
    )


async def add_user(pool: Pool) -> uuid.UUID:
    user_id = uuid.uuid4()
    async with user_transaction(pool, user_id) as conn:
        await insert_user(conn, user_id)
    return user_id


async def session_after(pool: Pool) -> tuple[bool, str | None]:
    """Whether the next holder of the connection finds a transaction open, and app.user_id."""
    async with pool.acquire() as conn:
        return conn.is_in_transaction(), await conn.fetchval(
            "SELECT nullif(current_setting('app.user_id', true), '')"
        )


async def test_a_user_transaction_sees_its_user_only_and_leaves_the_connection_clean(
    pool: Pool,
) -> None:
    alice, bob = await add_user(pool), await add_user(pool)

    async with user_transaction(pool, alice) as conn:
        setting = await conn.fetchval("SELECT current_setting('app.user_id')")
        seen = {row["id"] for row in await conn.fetch("SELECT id FROM users")}

    assert setting == str(alice)
    assert seen == {alice}
    assert bob not in seen
    assert await session_after(pool) == (False, None)


async def test_an_error_in_a_user_transaction_rolls_back_all_of_it(pool: Pool) -> None:
    user_id = uuid.uuid4()

    async def insert_then_fail() -> None:
        async with user_transaction(pool, user_id) as conn:
            await insert_user(conn, user_id)
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        await insert_then_fail()

    assert await session_after(pool) == (False, None)
    async with user_transaction(pool, user_id) as conn:
        assert await conn.fetchval("SELECT count(*) FROM users WHERE id = $1", user_id) == 0


async def test_a_failed_statement_surfaces_as_itself_and_the_block_rolls_back(
    pool: Pool,
) -> None:
    user_id = await add_user(pool)

    async def divide_by_zero() -> None:
        async with user_transaction(pool, user_id) as conn:
            await conn.execute("SELECT 1 / 0")

    with pytest.raises(asyncpg.DivisionByZeroError):
        await divide_by_zero()

    assert await session_after(pool) == (False, None)


async def test_a_system_transaction_commits_and_leaves_the_connection_clean(pool: Pool) -> None:
    async with system_transaction(pool) as conn:
        assert conn.is_in_transaction()

    assert await session_after(pool) == (False, None)


async def test_a_plain_acquire_is_still_reset_in_full(pool: Pool) -> None:
    # Session state (a session-level setting, a LISTEN) left by a holder that is not a
    # transaction block: the full reset clears it before the next holder.
    async with pool.acquire() as conn:
        await conn.execute("SELECT set_config('app.user_id', $1, false)", str(uuid.uuid4()))
        await conn.execute("LISTEN db_probe")

    assert await session_after(pool) == (False, None)
    async with pool.acquire() as conn:
        listening = await conn.fetchval("SELECT count(*) FROM pg_listening_channels()")
    assert listening == 0


async def test_a_connection_block_leaves_the_connection_clean(pool: Pool) -> None:
    async with connection(pool) as conn:
        assert await conn.fetchval("SELECT 1") == 1

    assert await session_after(pool) == (False, None)


async def test_a_connection_block_left_in_a_transaction_is_rolled_back_and_reset(
    pool: Pool,
) -> None:
    # A holder that broke the block's rule (a transaction left open) is not taken at its
    # word: the pool rolls it back and resets the connection in full.
    async with connection(pool) as conn:
        await conn.execute("SELECT set_config('app.user_id', $1, false)", str(uuid.uuid4()))
        await conn.execute("BEGIN")

    assert await session_after(pool) == (False, None)


async def test_the_server_functions_leave_the_connection_clean_and_keep_to_their_user(
    pool: Pool,
) -> None:
    """request_create, command_start and command_finish (migrations/009) set app.user_id
    (and command_start synchronous_commit) for their own transaction only, and see only
    their user's requests; start_attempt refuses a connection inside a transaction."""
    alice, bob = await add_user(pool), await add_user(pool)
    request_id, command_id = uuid.uuid4(), uuid.uuid4()

    async with connection(pool) as conn:
        made = await pipeline.create_request(conn, request_id, alice, "system.echo", {"t": 1})
    assert made.new
    assert made.request_id == request_id
    assert await session_after(pool) == (False, None)
    async with connection(pool) as conn:
        with pytest.raises(LookupError):  # alice's id is never bob's to reuse
            await pipeline.create_request(conn, request_id, bob, "system.echo", {"t": 2})

    async with pool.acquire() as conn, conn.transaction():
        with pytest.raises(RuntimeError, match="a transaction of its own"):
            await pipeline.start_attempt(conn, "c", command_id, request_id, alice)
    async with connection(pool) as conn:
        assert await pipeline.start_attempt(conn, "c", command_id, request_id, alice) == (
            False,
            0,
        )
        # Its transaction's commit does not wait for the disk; the next one's does.
        assert (
            await conn.fetchval(
                "SELECT current_setting('synchronous_commit') FROM command_start($1, $2, $3, $4)",
                "c",
                uuid.uuid4(),
                request_id,
                alice,
            )
            == "off"
        )
        assert await conn.fetchval("SHOW synchronous_commit") == "on"
    assert await session_after(pool) == (False, None)

    async with connection(pool) as conn:
        # bob's finish takes the command's inbox row but cannot touch alice's request.
        assert await pipeline.finish_attempt(conn, "c", command_id, bob, request_id, result={})
        assert (
            await pipeline.finish_attempt(conn, "c", command_id, alice, request_id, result={"x": 1})
            is False
        )  # the inbox has the command: applied once, whoever asks
    async with user_transaction(pool, alice) as conn:
        stored = await pipeline.get_request(conn, request_id)
    assert stored is not None
    assert (stored.status, stored.result) == ("running", None)
    assert await session_after(pool) == (False, None)
