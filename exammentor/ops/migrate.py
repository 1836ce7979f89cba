"""Numbered SQL migrations: ``NNN_name.sql`` files applied in order, each in its own
transaction, recorded with a checksum, under an advisory lock so two runners never collide.

Each migration may have a down step beside it, ``NNN_name.down.sql``, which takes the schema
back to version ``NNN - 1``. The rules the runner keeps:

* **Up.** An applied file that changed on disk is refused (its checksum is recorded); the
  down file's checksum is recorded with it, when there is one.
* **Down.** ``downgrade(..., target=N)`` undoes the applied migrations above ``N``, newest
  first, each in its own transaction, under the same lock. Before anything runs it checks
  that every applied up file still matches its checksum (the files must describe the
  database), that the database holds no migration this code does not know, that every step
  to undo has a down file, and that each down file is the one recorded when its migration
  was applied. A down file edited since then is refused unless the caller accepts it
  explicitly (``allow_changed_down``): a rollback runs rarely, under pressure, and should run
  the SQL that shipped, and was tested, with the release that applied the migration.
  Migrations applied before down steps were recorded have no recorded down checksum; their
  down file is run as it is on disk.
* **Contract steps.** An up migration that destroys or renames something the previous
  release's code may still use (see :func:`destructive_statements`) must say so in its
  header with ``-- migration: contract``; a test refuses it otherwise (docs/operations.md).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

import asyncpg

from exammentor.db import Connection
from exammentor.logs import get_logger

log = get_logger(__name__)

_LOCK_KEY = 0x45584D4D  # "EXMM": one advisory lock id for every migration runner
_FILE = re.compile(r"^(\d{3,})_([a-z0-9_]+)(\.down)?\.sql$")
_CONTRACT_HEADER = re.compile(r"^--\s*migration:\s*contract\b", re.IGNORECASE)

DownStep = Literal["missing", "ready", "recorded", "changed", "unrecorded"]
"""What ``migrate status`` says of a migration's down step:

* ``missing``: no down file, the migration cannot be rolled back;
* ``ready``: a down file, for a migration not applied yet;
* ``recorded``: applied, and the down file is the one recorded then;
* ``changed``: applied, and the down file differs from the one recorded then;
* ``unrecorded``: applied before down steps were recorded; the file on disk will run.
"""


def default_migrations_dir() -> Path:
    """``migrations/`` of the source tree, or ``EXAMMENTOR_MIGRATIONS_DIR``."""
    configured = os.environ.get("EXAMMENTOR_MIGRATIONS_DIR")
    return Path(configured) if configured else Path(__file__).resolve().parents[2] / "migrations"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Migration:
    """One migration: its up file and, when there is one, its down file."""

    version: int
    name: str
    sql: str
    down_sql: str | None = None

    @property
    def checksum(self) -> str:
        """SHA-256 of the file's text: an edited, already applied file is refused."""
        return _sha256(self.sql)

    @property
    def down_checksum(self) -> str | None:
        """SHA-256 of the down file's text, None without a down file."""
        return None if self.down_sql is None else _sha256(self.down_sql)

    @property
    def filename(self) -> str:
        """The up file's name, ``NNN_name.sql``."""
        return f"{self.version:03d}_{self.name}.sql"

    @property
    def down_filename(self) -> str:
        """The name its down file has (or would have), ``NNN_name.down.sql``."""
        return f"{self.version:03d}_{self.name}.down.sql"

    @property
    def is_contract(self) -> bool:
        """True when the header comment marks the file as a contract step."""
        return any(_CONTRACT_HEADER.match(line.strip()) for line in _header_lines(self.sql))


@dataclass(frozen=True)
class MigrationState:
    """A migration and whether (and when) it was applied."""

    migration: Migration
    applied_at: datetime | None
    checksum_ok: bool
    down_step: DownStep = "missing"


class MigrationError(RuntimeError):
    """The migrations on disk and in the database disagree, or a file failed."""


def load_migrations(directory: Path) -> list[Migration]:
    """Reads and orders the migration files; refuses gaps, duplicates and stray names.

    A down file (``NNN_name.down.sql``) belongs to the up file of the same number and name;
    a down file without one is refused, an up file without one is allowed here (the project's
    tests require one for every migration in ``migrations/``).
    """
    ups: dict[int, tuple[str, str]] = {}
    downs: dict[int, tuple[str, str]] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE.match(path.name)
        if not match:
            raise MigrationError(
                f"{path.name}: migration files are named NNN_name.sql (down steps "
                "NNN_name.down.sql)"
            )
        found = downs if match[3] else ups
        version = int(match[1])
        if version in found:
            raise MigrationError(f"{path.name}: another file has version {version:03d}")
        found[version] = (match[2], path.read_text(encoding="utf-8"))
    for version, (name, _) in sorted(downs.items()):
        if ups.get(version, ("", ""))[0] != name:
            raise MigrationError(
                f"{version:03d}_{name}.down.sql has no up file {version:03d}_{name}.sql"
            )
    versions = sorted(ups)
    if versions != list(range(1, len(ups) + 1)):
        raise MigrationError(f"migration versions must run 1..N without gaps, found {versions}")
    return [
        Migration(v, ups[v][0], ups[v][1], downs[v][1] if v in downs else None) for v in versions
    ]


def _header_lines(sql: str) -> list[str]:
    """The comment lines before the first statement of a file."""
    header: list[str] = []
    for line in sql.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("--"):
            break
        header.append(stripped)
    return header


# What an expand step must not do: each pattern names a change that loses data or breaks the
# code of the release still running while the migration is applied (docs/operations.md).
_DESTRUCTIVE: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (label, re.compile(pattern, re.IGNORECASE | re.DOTALL))
    for label, pattern in (
        (
            "DROP TABLE/VIEW/FUNCTION/TYPE/SCHEMA/SEQUENCE",
            r"\bDROP\s+(?:TABLE|(?:MATERIALIZED\s+)?VIEW|FUNCTION|PROCEDURE|TYPE|DOMAIN"
            r"|SCHEMA|SEQUENCE)\b",
        ),
        # ALTER TABLE t DROP [COLUMN] c, but not DROP CONSTRAINT / DEFAULT / NOT NULL ...
        (
            "DROP COLUMN",
            r"\bALTER\s+TABLE\b.*\bDROP\s+(?!CONSTRAINT\b|DEFAULT\b|NOT\s+NULL\b|IDENTITY\b"
            r"|EXPRESSION\b)(?:COLUMN\b|\"|[a-z_])",
        ),
        ("RENAME", r"\bALTER\b.*\bRENAME\b"),
        (
            "ALTER COLUMN ... TYPE",
            r"\bALTER\s+(?:COLUMN\s+)?(?!COLUMN\b|TABLE\b)\S+\s+(?:SET\s+DATA\s+)?TYPE\b",
        ),
        (
            "SET NOT NULL",
            r"\bALTER\s+(?:COLUMN\s+)?(?!COLUMN\b|TABLE\b)\S+\s+SET\s+NOT\s+NULL\b",
        ),
        ("TRUNCATE", r"\bTRUNCATE\b"),
        ("DELETE without WHERE", r"\bDELETE\s+FROM\b(?!.*\bWHERE\b)"),
    )
)
# String literals are matched first so that a "--" inside one does not hide the rest of the
# line; they are kept (an EXECUTE 'DROP TABLE ...' still counts).
_LEXEMES = re.compile(r"'(?:[^']|'')*'|--[^\n]*|/\*.*?\*/", re.DOTALL)


def destructive_statements(sql: str) -> list[str]:
    """The statements of ``sql`` that an expand (non-contract) migration must not hold.

    Comments are ignored; the bodies of ``DO`` blocks and functions are not (an ``EXECUTE``
    of a ``DROP`` is still a drop). The check is textual and errs on the side of flagging:
    a false alarm costs a header line, a missed drop costs the running release.

    Args:
        sql: The text of an up migration.

    Returns:
        One ``"LABEL: statement"`` line per destructive statement, in file order.
    """
    found: list[str] = []
    code = _LEXEMES.sub(lambda m: m[0] if m[0].startswith("'") else " ", sql)
    for statement in code.split(";"):
        text = " ".join(statement.split())
        if not text:
            continue
        for label, pattern in _DESTRUCTIVE:
            if pattern.search(text):
                found.append(f"{label}: {text[:120]}")
                break
    return found


_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
  version    integer PRIMARY KEY,
  name       text NOT NULL,
  checksum   text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
)"""


async def _ensure_bookkeeping(conn: Connection) -> None:
    await conn.execute(_BOOKKEEPING)
    # Added after the first deployments: their table gains the column, and new tables get it
    # the same way, so every database's bookkeeping has the same shape.
    has_down = await conn.fetchval(
        "SELECT EXISTS (SELECT FROM information_schema.columns WHERE table_schema = "
        "current_schema() AND table_name = 'schema_migrations' AND column_name = "
        "'down_checksum')"
    )
    if not has_down:
        await conn.execute(
            "ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS down_checksum text"
        )


def _down_step(m: Migration, applied: asyncpg.Record | None) -> DownStep:
    if m.down_sql is None:
        return "missing"
    if applied is None:
        return "ready"
    if applied["down_checksum"] is None:
        return "unrecorded"
    return "recorded" if applied["down_checksum"] == m.down_checksum else "changed"


async def status(dsn: str, directory: Path | None = None) -> list[MigrationState]:
    """Each migration on disk with its state in the database."""
    migrations = load_migrations(directory or default_migrations_dir())
    conn = await asyncpg.connect(dsn)
    try:
        await _ensure_bookkeeping(conn)
        applied = {r["version"]: r for r in await conn.fetch("SELECT * FROM schema_migrations")}
    finally:
        await conn.close()
    return [
        MigrationState(
            m,
            applied[m.version]["applied_at"] if m.version in applied else None,
            m.version not in applied or applied[m.version]["checksum"] == m.checksum,
            _down_step(m, applied.get(m.version)),
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
            await _ensure_bookkeeping(conn)
            applied = {
                r["version"]: r["checksum"]
                for r in await conn.fetch("SELECT version, checksum FROM schema_migrations")
            }
            for m in migrations:
                if m.version in applied:
                    if applied[m.version] != m.checksum:
                        raise MigrationError(
                            f"{m.filename} was changed after it was applied; "
                            "write a new migration instead"
                        )
                    continue
                if target is not None and m.version > target:
                    break
                try:
                    async with conn.transaction():
                        await conn.execute(m.sql)
                        await conn.execute(
                            "INSERT INTO schema_migrations (version, name, checksum, "
                            "down_checksum) VALUES ($1, $2, $3, $4)",
                            m.version,
                            m.name,
                            m.checksum,
                            m.down_checksum,
                        )
                except asyncpg.PostgresError as exc:
                    raise MigrationError(f"{m.filename} failed: {exc}") from exc
                log.info("migration applied", version=m.version, name=m.name)
                done.append(m.version)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    finally:
        await conn.close()
    return done


def _check_rollback(
    migrations: list[Migration],
    applied: dict[int, asyncpg.Record],
    target: int,
    allow_changed_down: bool,
) -> list[Migration]:
    """The migrations to undo, newest first, once every rule of a rollback holds."""
    known = {m.version: m for m in migrations}
    unknown = sorted(set(applied) - set(known))
    if unknown:
        raise MigrationError(
            f"the database has migration(s) {unknown} that this code does not know; "
            "roll back with the release that applied them"
        )
    for version, row in sorted(applied.items()):
        if row["checksum"] != known[version].checksum:
            raise MigrationError(
                f"{known[version].filename} was changed after it was applied; the files on "
                "disk do not describe this database, so they cannot roll it back"
            )
    undo = [known[v] for v in sorted(applied, reverse=True) if v > target]
    without = [m.filename for m in undo if m.down_sql is None]
    if without:
        raise MigrationError(f"cannot roll back to {target}: no down step for {', '.join(without)}")
    changed = [m.down_filename for m in undo if _down_step(m, applied[m.version]) == "changed"]
    if changed and not allow_changed_down:
        raise MigrationError(
            f"{', '.join(changed)} changed after the migration was applied; run the down "
            "step of the release that applied it, or accept the edited file explicitly "
            "(--allow-changed-down)"
        )
    return undo


async def downgrade(
    dsn: str,
    directory: Path | None = None,
    *,
    target: int,
    allow_changed_down: bool = False,
) -> list[int]:
    """Undoes the applied migrations above ``target``, newest first.

    Args:
        dsn: The owner's connection string.
        directory: The migrations (``migrations/`` by default).
        target: The version to go back to; 0 removes every migration.
        allow_changed_down: Run down files that differ from the ones recorded when their
            migrations were applied (refused otherwise).

    Returns:
        The versions undone by this call, newest first (empty when already at ``target``).

    Raises:
        MigrationError: a rule of the module docstring does not hold (nothing is undone),
            or a down step failed (its transaction is rolled back; the steps undone before
            it stay undone).
    """
    if target < 0:
        raise MigrationError(f"the target version must be 0 or more, not {target}")
    migrations = load_migrations(directory or default_migrations_dir())
    conn = await asyncpg.connect(dsn)
    done: list[int] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        try:
            await _ensure_bookkeeping(conn)
            applied = {r["version"]: r for r in await conn.fetch("SELECT * FROM schema_migrations")}
            for m in _check_rollback(migrations, applied, target, allow_changed_down):
                try:
                    async with conn.transaction():
                        await conn.execute(m.down_sql or "")
                        await conn.execute(
                            "DELETE FROM schema_migrations WHERE version = $1", m.version
                        )
                except asyncpg.PostgresError as exc:
                    raise MigrationError(f"{m.down_filename} failed: {exc}") from exc
                log.info("migration rolled back", version=m.version, name=m.name)
                done.append(m.version)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    finally:
        await conn.close()
    return done
