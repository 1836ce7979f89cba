"""Backup and restore, on the real Postgres (and no Kafka): a backup of a database holding
every version's representative data restores into a new database with the same rows, the
same schema and the same grants; damaged, tampered, newer-schema backups and non-empty
targets are refused.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import tarfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from exammentor.db import create_pool, system_transaction, user_transaction
from exammentor.ops import backup, migrate
from tests.infra import ROOT, python, unique_name
from tests.upgrade.database import (
    app_dsn,
    fill_to,
    head_version,
    provide_postgres,
    schema_dump,
    scratch_database,
    take_snapshot,
    user_ids,
)

pytestmark = pytest.mark.integration

HEAD = head_version()


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """An owner connection string of a Postgres server (no Kafka is started)."""
    with provide_postgres() as dsn:
        yield dsn


@pytest.fixture(scope="module")
async def source(postgres: str) -> AsyncIterator[str]:
    """A database at the head holding the data of every version."""
    async with scratch_database(postgres, "exammentor_bak_") as dsn:
        await fill_to(dsn, HEAD)
        yield dsn


@pytest.fixture(scope="module")
async def archive(
    source: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, backup.BackupManifest]:
    """One backup of ``source``, shared by the tests that only read it."""
    path = tmp_path_factory.mktemp("backup") / "exammentor.tar"
    return path, await backup.create_backup(source, path)


@pytest.fixture
async def empty_database(postgres: str) -> AsyncIterator[str]:
    """A new, empty database to restore into."""
    async with scratch_database(postgres, "exammentor_rst_") as dsn:
        yield dsn


def _rewritten(
    original: Path,
    out: Path,
    manifest: Callable[[dict[str, Any]], None] | None = None,
    dump: Callable[[bytes], bytes] | None = None,
) -> Path:
    """A copy of a backup with its manifest or its dump altered."""
    with tarfile.open(original) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    if manifest is not None:
        data = json.loads(members[backup.MANIFEST_MEMBER])
        manifest(data)
        members[backup.MANIFEST_MEMBER] = json.dumps(data).encode()
    if dump is not None:
        members[backup.DUMP_MEMBER] = dump(members[backup.DUMP_MEMBER])
    with tarfile.open(out, "w") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return out


async def _object_count(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public'"
            )
        )
    finally:
        await conn.close()


async def test_a_restored_backup_has_the_same_rows_schema_and_checksums(
    source: str, archive: tuple[Path, backup.BackupManifest], empty_database: str
) -> None:
    path, made = archive
    restored = await backup.restore_backup(path, empty_database)
    assert restored == made
    original, copy = await take_snapshot(source), await take_snapshot(empty_database)
    assert copy.digests == original.digests == made.tables
    assert made.total_rows > 0
    assert all(d.rows > 0 for t, d in made.tables.items() if t != "public.schema_migrations")
    assert copy.row_security == original.row_security
    assert schema_dump(empty_database) == schema_dump(source)
    # The restored database is at the head: migrate up has nothing to do.
    assert await migrate.upgrade(empty_database) == []


async def test_the_manifest_records_schema_roles_and_tools(
    source: str, archive: tuple[Path, backup.BackupManifest]
) -> None:
    path, made = archive
    assert backup.read_manifest(path) == made
    code = migrate.load_migrations(migrate.default_migrations_dir())
    assert [(m.version, m.name, m.checksum) for m in made.migrations] == [
        (m.version, m.name, m.checksum) for m in code
    ]
    assert made.schema_version == HEAD
    assert backup.GrantedRole(name="exammentor_app", can_login=True, bypass_rls=False) in (
        made.roles
    )
    assert made.tools["pg_dump"].startswith("pg_dump (PostgreSQL)")
    assert made.source_database == source.rsplit("/", 1)[1]


async def test_the_services_role_reads_the_restored_rows_under_row_level_security(
    archive: tuple[Path, backup.BackupManifest], empty_database: str
) -> None:
    path, made = archive
    await backup.restore_backup(path, empty_database)
    users = await user_ids(empty_database)
    assert len(users) >= 2
    pool = await create_pool(app_dsn(empty_database), max_size=2)
    try:
        seen = 0
        for user in users:
            async with user_transaction(pool, user) as conn:
                plans = await conn.fetch("SELECT user_id FROM study_plans")
                assert {r["user_id"] for r in plans} <= {user}
                seen += len(plans)
                assert await conn.fetchval("SELECT count(*) FROM users") == 1
        assert seen == made.tables["public.study_plans"].rows
        async with system_transaction(pool) as conn:
            assert await conn.fetchval("SELECT count(*) FROM users") == 0
            assert (
                await conn.fetchval("SELECT count(*) FROM outbox")
                == made.tables["public.outbox"].rows
            )
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.fetch("SELECT * FROM schema_migrations")
    finally:
        await pool.close()


async def test_a_tampered_manifest_fails_the_verification(
    archive: tuple[Path, backup.BackupManifest], empty_database: str, tmp_path: Path
) -> None:
    def tamper(data: dict[str, Any]) -> None:
        data["tables"]["public.users"]["rows"] += 1
        data["tables"]["public.quizzes"]["checksum"] = "0" * 64

    forged = _rewritten(archive[0], tmp_path / "forged.tar", manifest=tamper)
    with pytest.raises(backup.BackupError, match="does not match the backup's manifest") as err:
        await backup.restore_backup(forged, empty_database)
    assert "public.users: 3 rows, the manifest says 4" in str(err.value)
    assert "public.quizzes: content checksum differs" in str(err.value)


async def test_a_damaged_archive_is_refused_before_restoring(
    archive: tuple[Path, backup.BackupManifest], empty_database: str, tmp_path: Path
) -> None:
    damaged = _rewritten(archive[0], tmp_path / "damaged.tar", dump=lambda b: b[:-100] + bytes(100))
    with pytest.raises(backup.BackupError, match="does not match its manifest's SHA-256"):
        await backup.restore_backup(damaged, empty_database)
    assert await _object_count(empty_database) == 0


async def test_a_backup_from_another_migration_history_is_refused(
    archive: tuple[Path, backup.BackupManifest], empty_database: str, tmp_path: Path
) -> None:
    def rewrite_history(data: dict[str, Any]) -> None:
        data["migrations"][0]["checksum"] = "f" * 64

    other = _rewritten(archive[0], tmp_path / "other.tar", manifest=rewrite_history)
    with pytest.raises(backup.BackupError, match=r"001_schema_v1 differ from this code"):
        await backup.restore_backup(other, empty_database)
    assert await _object_count(empty_database) == 0


async def test_restoring_into_a_database_that_is_not_empty_is_refused(
    archive: tuple[Path, backup.BackupManifest], empty_database: str
) -> None:
    conn = await asyncpg.connect(empty_database)
    try:
        await conn.execute("CREATE TABLE leftover (id int)")
    finally:
        await conn.close()
    with pytest.raises(backup.BackupError, match=r"is not empty \(1 objects: public\.leftover\)"):
        await backup.restore_backup(archive[0], empty_database)


def _future_migrations(folder: Path, sql: str) -> Path:
    """The project's migrations plus one more, as a later release would have them."""
    folder.mkdir()
    for path in migrate.default_migrations_dir().glob("*.sql"):
        shutil.copy(path, folder / path.name)
    (folder / f"{HEAD + 1:03d}_future.sql").write_text(sql)
    (folder / f"{HEAD + 1:03d}_future.down.sql").write_text("SELECT 1;")
    return folder


async def test_a_backup_of_a_newer_schema_is_refused(
    postgres: str, empty_database: str, tmp_path: Path
) -> None:
    future = _future_migrations(tmp_path / "future", "CREATE TABLE future (id int);")
    async with scratch_database(postgres, "exammentor_new_") as dsn:
        await migrate.upgrade(dsn, future)
        newer = tmp_path / "newer.tar"
        await backup.create_backup(dsn, newer)
    with pytest.raises(
        backup.BackupError,
        match=rf"schema version {HEAD + 1}, newer than this code \(head {HEAD:03d}\).*"
        rf"{HEAD + 1:03d}_future",
    ):
        await backup.restore_backup(newer, empty_database)
    assert await _object_count(empty_database) == 0


async def test_a_role_the_grants_name_is_created_when_the_server_lacks_it(
    postgres: str, empty_database: str, tmp_path: Path
) -> None:
    role = unique_name("exammentor_report_")
    future = _future_migrations(
        tmp_path / "future",
        f'CREATE ROLE "{role}" NOLOGIN; GRANT SELECT ON plan_cache TO "{role}";',
    )
    admin = await asyncpg.connect(postgres)
    try:
        async with scratch_database(postgres, "exammentor_role_") as dsn:
            await migrate.upgrade(dsn, future)
            path = tmp_path / "roles.tar"
            made = await backup.create_backup(dsn, path)
        assert backup.GrantedRole(name=role, can_login=False, bypass_rls=False) in made.roles
        await admin.execute(f'DROP ROLE "{role}"')  # as on a new server
        await backup.restore_backup(path, empty_database, future)
        conn = await asyncpg.connect(empty_database)
        try:
            assert await conn.fetchval(
                "SELECT has_table_privilege($1, 'plan_cache', 'SELECT')", role
            )
        finally:
            await conn.close()
    finally:
        # The role is the server's: leave none behind (its grants first, then the role).
        conn = await asyncpg.connect(empty_database)
        try:
            if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
                await conn.execute(f'DROP OWNED BY "{role}"')
        finally:
            await conn.close()
        await admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        await admin.close()


async def test_the_operator_command_backs_up_and_restores(
    source: str, postgres: str, tmp_path: Path
) -> None:
    env = {**os.environ, "DATABASE_URL": source}

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

    out_file = tmp_path / "cli.tar"
    code, out = await run("backup", "create", "--out", str(out_file))
    assert code == 0, out
    assert out.startswith(f"wrote {out_file}: schema version {HEAD}, ")
    async with scratch_database(postgres, "exammentor_cli_") as target:
        code, out = await run("backup", "restore", str(out_file), "--database-url", target)
        assert code == 0, out
        assert out.startswith(f"restored {out_file}: schema version {HEAD}, ")
        code, out = await run("backup", "restore", str(out_file), "--database-url", target)
        assert code == 1
        assert out.startswith("backup: database ")
        assert "is not empty" in out
    code, out = await run("backup", "restore", str(out_file))
    assert (code, out.strip()) == (
        2,
        "restore needs a backup file and --database-url of an empty database",
    )
