"""What the upgrade, rollback and backup tests share: a Postgres server (and nothing else),
scratch databases, each version's representative data, and snapshots of a database to
compare before and after a migration.

Generic over the migrations: a new migration only adds its up file, its down file and
``tests/upgrade/data/NNN.sql``.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit
from uuid import UUID

import asyncpg

from exammentor.ops import migrate
from exammentor.ops.backup import TableDigest, pg_tool, table_columns, table_digests
from tests.infra import ROOT, docker_answers, unique_name, with_database

DATA_DIR = Path(__file__).resolve().parent / "data"
BOOKKEEPING = "public.schema_migrations"
APP_ROLE = "exammentor_app"


def migrations() -> list[migrate.Migration]:
    """The project's migrations, as the runner reads them."""
    return migrate.load_migrations(migrate.default_migrations_dir())


def head_version() -> int:
    """The newest migration's version."""
    return len(migrations())


def data_file(version: int) -> Path:
    """Where version ``version``'s representative data lives."""
    return DATA_DIR / f"{version:03d}.sql"


@contextmanager
def provide_postgres() -> Iterator[str]:
    """An owner connection string of a Postgres server, and no Kafka.

    The same sources as ``tests/infra.py``, in the same order: ``DATABASE_URL``; a
    testcontainers Postgres when a Docker engine answers; the native server of
    ``deploy/local`` (started when not running, left running).
    """
    dsn = os.environ.get("DATABASE_URL")
    if dsn:
        yield dsn
        return
    if docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:15", driver=None) as pg:
            yield pg.get_connection_url()
        return
    script = str(ROOT / "deploy/local/postgres.sh")
    subprocess.run(["bash", script, "start"], check=True)
    subprocess.run(["bash", script, "wait"], check=True)
    yield f"postgresql://postgres@127.0.0.1:{os.environ.get('PGPORT', '5433')}/postgres"


@asynccontextmanager
async def scratch_database(admin_dsn: str, prefix: str = "exammentor_upg_") -> AsyncIterator[str]:
    """A new, empty database (owner connection string), dropped afterwards."""
    name = unique_name(prefix)
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield with_database(admin_dsn, name)
    finally:
        admin = await asyncpg.connect(admin_dsn)
        try:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def app_dsn(owner_dsn: str) -> str:
    """The services' connection string (role ``exammentor_app``) of the same database."""
    return with_database(owner_dsn, urlsplit(owner_dsn).path.lstrip("/"), user=APP_ROLE)


async def fill_to(dsn: str, version: int) -> None:
    """Migrates an empty database to ``version``, loading each version's data on the way.

    Each data file is loaded at its own version (001.sql into schema 1, then 002.sql into
    schema 2 ...), as a real database accumulates rows across releases.
    """
    for v in range(1, version + 1):
        await migrate.upgrade(dsn, target=v)
        sql = data_file(v).read_text(encoding="utf-8")
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()


@dataclass(frozen=True)
class ForeignKey:
    """One foreign key: ``child(columns)`` references ``parent(parent_columns)``."""

    name: str
    child: str
    columns: tuple[str, ...]
    parent: str
    parent_columns: tuple[str, ...]


@dataclass(frozen=True)
class DatabaseSnapshot:
    """What a database holds and enforces at one moment."""

    columns: dict[str, list[str]]
    digests: dict[str, TableDigest]
    row_security: dict[str, tuple[bool, bool]]
    """Table -> (enabled, forced)."""
    policies: dict[str, int]
    foreign_keys: list[ForeignKey]
    empty_columns: list[str] = field(default_factory=list)
    """``table.column`` holding no non-null value in any row."""

    def rows(self) -> dict[str, int]:
        """Row count per table."""
        return {t: d.rows for t, d in self.digests.items()}


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _qualified(table: str) -> str:
    schema, _, name = table.partition(".")
    return f"{_q(schema)}.{_q(name)}"


async def take_snapshot(dsn: str) -> DatabaseSnapshot:
    """Tables, row digests, row-level security and foreign keys, as the owner sees them."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            columns = await table_columns(conn)
            digests = await table_digests(conn)
            security = await conn.fetch(
                "SELECT n.nspname || '.' || c.relname AS t, c.relrowsecurity, "
                "c.relforcerowsecurity, (SELECT count(*) FROM pg_policy p "
                "WHERE p.polrelid = c.oid) AS policies FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind IN ('r', 'p') AND n.nspname = 'public'"
            )
            keys = await conn.fetch(
                "SELECT c.conname, c.conrelid::regclass::text AS child, "
                "c.confrelid::regclass::text AS parent, "
                "ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, i) "
                "  JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n "
                "  ORDER BY k.i) AS cols, "
                "ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, i) "
                "  JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n "
                "  ORDER BY k.i) AS parent_cols "
                "FROM pg_constraint c WHERE c.contype = 'f' ORDER BY c.conname"
            )
            empty: list[str] = []
            for table, cols in columns.items():
                if table == BOOKKEEPING:
                    continue
                for col in cols:
                    found = await conn.fetchval(
                        f"SELECT EXISTS (SELECT FROM {_qualified(table)} "
                        f"WHERE {_q(col)} IS NOT NULL)"
                    )
                    if not found:
                        empty.append(f"{table}.{col}")
    finally:
        await conn.close()
    return DatabaseSnapshot(
        columns=columns,
        digests=digests,
        row_security={r["t"]: (r["relrowsecurity"], r["relforcerowsecurity"]) for r in security},
        policies={r["t"]: r["policies"] for r in security},
        foreign_keys=[
            ForeignKey(
                r["conname"],
                _public(r["child"]),
                tuple(r["cols"]),
                _public(r["parent"]),
                tuple(r["parent_cols"]),
            )
            for r in keys
        ],
        empty_columns=empty,
    )


def _public(regclass: str) -> str:
    # regclass text omits the schema on the search path.
    return regclass if "." in regclass else f"public.{regclass}"


async def digests_of(dsn: str, columns: Mapping[str, Sequence[str]]) -> dict[str, TableDigest]:
    """Digests of the given columns of the given tables (an older version's shape)."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            return await table_digests(conn, columns)
    finally:
        await conn.close()


async def orphans(dsn: str, keys: Sequence[ForeignKey]) -> dict[str, int]:
    """Rows that break each foreign key (all key columns set, no parent row)."""
    conn = await asyncpg.connect(dsn)
    found: dict[str, int] = {}
    try:
        for key in keys:
            match = " AND ".join(
                f"p.{_q(pc)} = c.{_q(cc)}"
                for cc, pc in zip(key.columns, key.parent_columns, strict=True)
            )
            present = " AND ".join(f"c.{_q(cc)} IS NOT NULL" for cc in key.columns)
            found[key.name] = await conn.fetchval(
                f"SELECT count(*) FROM {_qualified(key.child)} AS c WHERE {present} "
                f"AND NOT EXISTS (SELECT FROM {_qualified(key.parent)} AS p WHERE {match})"
            )
    finally:
        await conn.close()
    return found


async def user_ids(dsn: str) -> list[UUID]:
    """Every user's id, read as the owner."""
    conn = await asyncpg.connect(dsn)
    try:
        return [r["id"] for r in await conn.fetch("SELECT id FROM users ORDER BY id")]
    finally:
        await conn.close()


def schema_dump(dsn: str) -> str:
    """``pg_dump --schema-only`` of the database, without what differs between two dumps of
    the same schema (comments, blank lines, the per-dump ``\\restrict`` key).
    """
    result = subprocess.run(
        [pg_tool("pg_dump"), "--schema-only", "--no-password", f"--dbname={dsn}"],
        check=True,
        capture_output=True,
        text=True,
    )
    return "\n".join(
        line
        for line in result.stdout.splitlines()
        if line.strip()
        and not line.startswith("--")
        and not line.startswith(("\\restrict", "\\unrestrict"))
    )
