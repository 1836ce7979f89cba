"""Numbered SQL migrations: ``NNN_name.sql`` files applied in order, each in its own
transaction, recorded with a checksum, under an advisory lock so two runners never collide.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg

from exammentor.logs import get_logger

log = get_logger(__name__)

_LOCK_KEY = 0x45584D4D  # "EXMM": one advisory lock id for every migration runner
_FILE = re.compile(r"^(\d{3,})_([a-z0-9_]+)\.sql$")


def default_migrations_dir() -> Path:
    """``migrations/`` of the source tree, or ``EXAMMENTOR_MIGRATIONS_DIR``."""
    configured = os.environ.get("EXAMMENTOR_MIGRATIONS_DIR")
    return Path(configured) if configured else Path(__file__).resolve().parents[1] / "migrations"


@dataclass(frozen=True)
class Migration:
    """One migration file."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the file's text: an edited, already applied file is refused."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True)
class MigrationState:
    """A migration and whether (and when) it was applied."""

    migration: Migration
    applied_at: datetime | None
    checksum_ok: bool


class MigrationError(RuntimeError):
    """The migrations on disk and in the database disagree, or a file failed."""


def load_migrations(directory: Path) -> list[Migration]:
    """Reads and orders the migration files; refuses gaps, duplicates and stray names."""
    found: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNN_name.sql")
        found.append(Migration(int(match[1]), match[2], path.read_text(encoding="utf-8")))
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise MigrationError(f"migration versions must run 1..N without gaps, found {versions}")
    return found


_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
  version    integer PRIMARY KEY,
  name       text NOT NULL,
  checksum   text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
)"""


async def status(dsn: str, directory: Path | None = None) -> list[MigrationState]:
    """Each migration on disk with its state in the database."""
    migrations = load_migrations(directory or default_migrations_dir())
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(_BOOKKEEPING)
        applied = {r["version"]: r for r in await conn.fetch("SELECT * FROM schema_migrations")}
    finally:
        await conn.close()
    return [
        MigrationState(
            m,
            applied[m.version]["applied_at"] if m.version in applied else None,
            m.version not in applied or applied[m.version]["checksum"] == m.checksum,
        )
        for m in migrations
    ]


async def upgrade(dsn: str, directory: Path | None = None, target: int | None = None) -> list[int]:
    """Applies every pending migration up to ``target`` (all by default).

    Returns:
        The versions applied by this call (empty when the schema was current).

    Raises:
        MigrationError: an applied file changed on disk, or a migration failed (that file's
            transaction is rolled back; earlier ones stay applied).
    """
    migrations = load_migrations(directory or default_migrations_dir())
    conn = await asyncpg.connect(dsn)
    done: list[int] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        try:
            await conn.execute(_BOOKKEEPING)
            applied = {
                r["version"]: r["checksum"]
                for r in await conn.fetch("SELECT version, checksum FROM schema_migrations")
            }
            for m in migrations:
                if m.version in applied:
                    if applied[m.version] != m.checksum:
                        raise MigrationError(
                            f"{m.version:03d}_{m.name}.sql was changed after it was applied; "
                            "write a new migration instead"
                        )
                    continue
                if target is not None and m.version > target:
                    break
                try:
                    async with conn.transaction():
                        await conn.execute(m.sql)
                        await conn.execute(
                            "INSERT INTO schema_migrations (version, name, checksum) "
                            "VALUES ($1, $2, $3)",
                            m.version,
                            m.name,
                            m.checksum,
                        )
                except asyncpg.PostgresError as exc:
                    raise MigrationError(f"{m.version:03d}_{m.name}.sql failed: {exc}") from exc
                log.info("migration applied", version=m.version, name=m.name)
                done.append(m.version)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    finally:
        await conn.close()
    return done
