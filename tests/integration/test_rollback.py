"""Rollback: each migration's down step, on the real Postgres (and no Kafka).

Every down step takes the schema back to exactly the previous version (compared with
``pg_dump --schema-only`` of a database migrated up to that version), up -> down -> up gives
the head schema again, data written before an upgrade survives the round trip, and the
rules of ``migrate down`` (lock, checksums, missing or edited down files) hold.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from exammentor.ops import migrate
from tests.infra import ROOT, python
from tests.upgrade.database import (
    BOOKKEEPING,
    digests_of,
    fill_to,
    head_version,
    provide_postgres,
    schema_dump,
    scratch_database,
    take_snapshot,
)

pytestmark = pytest.mark.integration

HEAD = head_version()


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """An owner connection string of a Postgres server (no Kafka is started)."""
    with provide_postgres() as dsn:
        yield dsn


@pytest.fixture(scope="module")
async def schema_at(postgres: str) -> dict[int, str]:
    """The normalised schema dump of a database migrated up to each version 0..head."""
    dumps: dict[int, str] = {}
    async with scratch_database(postgres) as dsn:
        for version in range(HEAD + 1):
            await migrate.upgrade(dsn, target=version)
            dumps[version] = schema_dump(dsn)
    assert len(set(dumps.values())) == HEAD + 1, "two versions have the same schema"
    return dumps


@pytest.mark.parametrize("target", range(HEAD), ids=lambda v: f"to-{v:03d}")
async def test_down_then_up_gives_each_version_then_the_head_schema_again(
    postgres: str, schema_at: dict[int, str], target: int
) -> None:
    async with scratch_database(postgres) as dsn:
        await migrate.upgrade(dsn)
        assert schema_dump(dsn) == schema_at[HEAD]
        undone = await migrate.downgrade(dsn, target=target)
        assert undone == list(range(HEAD, target, -1))
        assert schema_dump(dsn) == schema_at[target]
        assert await migrate.upgrade(dsn) == list(range(target + 1, HEAD + 1))
        assert schema_dump(dsn) == schema_at[HEAD]


@pytest.mark.parametrize("version", range(1, HEAD), ids=lambda v: f"at-{v:03d}")
async def test_data_written_before_an_upgrade_survives_the_round_trip(
    postgres: str, version: int
) -> None:
    async with scratch_database(postgres) as dsn:
        await fill_to(dsn, version)
        before = await take_snapshot(dsn)
        # The columns of this version: what a rollback to it must give back intact.
        columns = {t: c for t, c in before.columns.items() if t != BOOKKEEPING}
        written = {t: d for t, d in before.digests.items() if t in columns}
        assert sum(d.rows for d in written.values()) > 0

        await migrate.upgrade(dsn)
        assert await digests_of(dsn, columns) == written
        await migrate.downgrade(dsn, target=version)
        assert await digests_of(dsn, columns) == written
        assert (await take_snapshot(dsn)).columns == before.columns
        await migrate.upgrade(dsn)
        assert await digests_of(dsn, columns) == written


def _migrations(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


async def _tables(dsn: str) -> set[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await conn.close()
    return {r["tablename"] for r in rows}


TWO_STEPS = {
    "001_a.sql": "CREATE TABLE a (id int);",
    "001_a.down.sql": "DROP TABLE a;",
    "002_b.sql": "CREATE TABLE b (id int);",
    "002_b.down.sql": "DROP TABLE b;",
}


async def test_two_down_runners_at_once_undo_each_step_once(postgres: str, tmp_path: Path) -> None:
    folder = _migrations(tmp_path, TWO_STEPS)
    async with scratch_database(postgres) as dsn:
        await migrate.upgrade(dsn, folder)
        first, second = await asyncio.gather(
            migrate.downgrade(dsn, folder, target=0), migrate.downgrade(dsn, folder, target=0)
        )
        # The advisory lock serialises them: one undoes both steps, the other finds nothing.
        assert sorted([first, second]) == [[], [2, 1]]
        assert await _tables(dsn) == {"schema_migrations"}


async def test_a_step_without_a_down_file_is_refused_before_anything_runs(
    postgres: str, tmp_path: Path
) -> None:
    folder = _migrations(tmp_path, {**TWO_STEPS, "003_c.sql": "CREATE TABLE c (id int);"})
    async with scratch_database(postgres) as dsn:
        await migrate.upgrade(dsn, folder)
        with pytest.raises(migrate.MigrationError, match=r"no down step for 003_c\.sql"):
            await migrate.downgrade(dsn, folder, target=1)
        assert await _tables(dsn) == {"schema_migrations", "a", "b", "c"}
        # Versions above the gap's reach still roll back.
        (folder / "003_c.down.sql").write_text("DROP TABLE c;")
        assert await migrate.downgrade(dsn, folder, target=1) == [3, 2]


async def test_an_up_file_changed_after_applying_blocks_the_rollback(
    postgres: str, tmp_path: Path
) -> None:
    folder = _migrations(tmp_path, TWO_STEPS)
    async with scratch_database(postgres) as dsn:
        await migrate.upgrade(dsn, folder)
        (folder / "001_a.sql").write_text("CREATE TABLE a (id bigint);")
        with pytest.raises(migrate.MigrationError, match=r"001_a\.sql was changed"):
            await migrate.downgrade(dsn, folder, target=1)
        assert await _tables(dsn) == {"schema_migrations", "a", "b"}


async def test_a_down_file_edited_after_applying_runs_only_when_accepted(
    postgres: str, tmp_path: Path
) -> None:
    folder = _migrations(tmp_path, TWO_STEPS)
    async with scratch_database(postgres) as dsn:
        await migrate.upgrade(dsn, folder)
        assert [st.down_step for st in await migrate.status(dsn, folder)] == [
            "recorded",
            "recorded",
        ]
        (folder / "002_b.down.sql").write_text("DROP TABLE IF EXISTS b;")
        assert [st.down_step for st in await migrate.status(dsn, folder)] == [
            "recorded",
            "changed",
        ]
        with pytest.raises(migrate.MigrationError, match=r"002_b\.down\.sql changed"):
            await migrate.downgrade(dsn, folder, target=1)
        assert "b" in await _tables(dsn)
        assert await migrate.downgrade(dsn, folder, target=1, allow_changed_down=True) == [2]
        assert await _tables(dsn) == {"schema_migrations", "a"}


async def test_a_database_newer_than_the_code_is_not_rolled_back(
    postgres: str, tmp_path: Path
) -> None:
    newer, older = tmp_path / "newer", tmp_path / "older"
    newer.mkdir()
    older.mkdir()
    _migrations(newer, TWO_STEPS)
    _migrations(older, {k: v for k, v in TWO_STEPS.items() if k.startswith("001")})
    async with scratch_database(postgres) as dsn:
        await migrate.upgrade(dsn, newer)
        with pytest.raises(migrate.MigrationError, match=r"migration\(s\) \[2\].*does not know"):
            await migrate.downgrade(dsn, older, target=0)
        assert await _tables(dsn) == {"schema_migrations", "a", "b"}


async def test_a_failing_down_step_rolls_back_alone(postgres: str, tmp_path: Path) -> None:
    folder = _migrations(
        tmp_path,
        {**TWO_STEPS, "001_a.down.sql": "DROP TABLE a; SELECT 1/0;"},
    )
    async with scratch_database(postgres) as dsn:
        await migrate.upgrade(dsn, folder)
        with pytest.raises(migrate.MigrationError, match=r"001_a\.down\.sql failed"):
            await migrate.downgrade(dsn, folder, target=0)
        # Step 2 was undone and stays undone; step 1's transaction left everything as it was.
        assert await _tables(dsn) == {"schema_migrations", "a"}
        assert [st.applied_at is not None for st in await migrate.status(dsn, folder)] == [
            True,
            False,
        ]


async def test_a_migration_applied_before_down_steps_were_recorded_rolls_back(
    postgres: str, tmp_path: Path
) -> None:
    folder = _migrations(tmp_path, TWO_STEPS)
    async with scratch_database(postgres) as dsn:
        await migrate.upgrade(dsn, folder)
        conn = await asyncpg.connect(dsn)
        try:
            # What a database migrated by an older runner looks like.
            await conn.execute("UPDATE schema_migrations SET down_checksum = NULL")
        finally:
            await conn.close()
        assert [st.down_step for st in await migrate.status(dsn, folder)] == [
            "unrecorded",
            "unrecorded",
        ]
        assert await migrate.downgrade(dsn, folder, target=0) == [2, 1]


async def test_the_operator_command_rolls_back_and_shows_down_steps(postgres: str) -> None:
    async with scratch_database(postgres) as dsn:
        env = {**os.environ, "DATABASE_URL": dsn}

        async def run(*args: str) -> tuple[int, str]:
            proc = await asyncio.create_subprocess_exec(
                python(),
                "-m",
                "exammentor.ops.cli",
                *args,
                env=env,
                cwd=ROOT,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, _ = await proc.communicate()
            return proc.returncode or 0, out.decode()

        assert (await run("migrate", "up"))[0] == 0
        code, out = await run("migrate", "status")
        assert code == 0
        assert all("applied" in line and "down: yes" in line for line in out.splitlines())
        code, out = await run("migrate", "down")
        assert (code, out.strip()) == (
            2,
            "down needs the version to go back to: exammentor migrate down --to N",
        )
        code, out = await run("migrate", "down", "--to", str(HEAD - 1))
        assert (code, out.strip()) == (0, f"rolled back: {HEAD}")
        code, out = await run("migrate", "status")
        assert "pending" in out.splitlines()[HEAD - 1]
        code, out = await run("migrate", "down", "--to", str(HEAD - 1))
        assert (code, out.strip()) == (
            0,
            f"schema is at {HEAD - 1} or older: nothing to roll back",
        )
        assert (await run("migrate", "up"))[1].strip() == f"applied: {HEAD}"
