"""Backups: a ``pg_dump`` archive and a manifest that says what the archive must restore to.

A backup is one tar file holding two members:

* ``database.dump``: ``pg_dump --format=custom`` of the whole database;
* ``manifest.json``: a :class:`BackupManifest`: the applied migrations with their checksums
  (the schema version), a row count and a content checksum per table, the roles the grants
  name, the archive's own SHA-256, when and with which tools it was made.

The rules the code keeps:

* **One snapshot.** The manifest's counts and checksums are computed in the transaction
  whose snapshot ``pg_dump`` uses (``pg_export_snapshot``), so they describe exactly the rows
  in the archive, however busy the database is.
* **Restore into an empty database only.** Restoring over existing objects would mix two
  histories; a database holding any table, view, sequence or function is refused.
* **Never a newer schema.** A backup holding a migration this code does not have (or a
  different file under the same number) is refused before anything is restored: the code
  could neither serve nor migrate it.
* **Verify, loudly.** After ``pg_restore`` (one transaction) the restored database's counts
  and checksums are computed again and compared with the manifest; any difference is an
  error naming the tables.
* **Roles.** Roles belong to the server, not to the dump. The roles the grants name (the
  services' ``exammentor_app``) are created, without a password and with the attributes
  recorded, when the target server lacks them; existing roles are left as they are. Objects
  are restored as owned by the restoring role (the target's migration role).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import IO
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from exammentor.db import Connection
from exammentor.logs import get_logger
from exammentor.ops.migrate import default_migrations_dir, load_migrations

log = get_logger(__name__)

MANIFEST_FORMAT = 1
"""Version of the manifest's shape; a manifest of a later format is refused."""
MANIFEST_MEMBER = "manifest.json"
DUMP_MEMBER = "database.dump"

# The same text for the same rows on every server and session: digests compare dumps made
# and restored under different settings.
_DIGEST_SETTINGS = (
    "SET LOCAL TimeZone = 'UTC'",
    "SET LOCAL DateStyle = 'ISO, YMD'",
    "SET LOCAL IntervalStyle = 'iso_8601'",
    "SET LOCAL extra_float_digits = 3",
    "SET LOCAL bytea_output = 'hex'",
    # Fail rather than count a subset when a policy would apply to the connecting role.
    "SET LOCAL row_security = off",
)
_USER_SCHEMAS = (
    "n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'"
)


class BackupError(RuntimeError):
    """A backup could not be made, or a restore was refused or did not verify."""


class TableDigest(BaseModel):
    """What a table holds: its row count and an order-independent checksum of its rows."""

    model_config = ConfigDict(frozen=True)

    rows: int = Field(ge=0)
    checksum: str


class AppliedMigration(BaseModel):
    """One row of ``schema_migrations`` as the backup recorded it."""

    model_config = ConfigDict(frozen=True)

    version: int = Field(ge=1)
    name: str
    checksum: str


class GrantedRole(BaseModel):
    """A role the dump's grants name, with what a restore needs to create it."""

    model_config = ConfigDict(frozen=True)

    name: str
    can_login: bool
    bypass_rls: bool


class BackupManifest(BaseModel):
    """What a backup archive holds and must restore to."""

    model_config = ConfigDict(frozen=True)

    format: int = MANIFEST_FORMAT
    created_at: datetime
    source_database: str
    migrations: list[AppliedMigration]
    tables: dict[str, TableDigest]
    roles: list[GrantedRole]
    archive_sha256: str
    tools: dict[str, str]

    @property
    def schema_version(self) -> int:
        """The newest migration applied (0 for none)."""
        return max((m.version for m in self.migrations), default=0)

    @property
    def total_rows(self) -> int:
        """Rows in every table together."""
        return sum(t.rows for t in self.tables.values())


def pg_tool(name: str) -> str:
    """The path of a PostgreSQL client program, found as ``deploy/local/postgres.sh`` does.

    ``EXAMMENTOR_PG_BIN``, else Debian's ``/usr/lib/postgresql/<EXAMMENTOR_PG_VERSION or
    15>/bin``, else ``PATH``.

    Raises:
        BackupError: the program is nowhere.
    """
    configured = os.environ.get("EXAMMENTOR_PG_BIN")
    version = os.environ.get("EXAMMENTOR_PG_VERSION", "15")
    folders = [configured] if configured else [f"/usr/lib/postgresql/{version}/bin"]
    for folder in folders:
        candidate = Path(folder) / name
        if os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise BackupError(
            f"{name} not found (EXAMMENTOR_PG_BIN, {folders[0]}, PATH): install the "
            "PostgreSQL client of the server's major version"
        )
    return found


def _libpq_target(dsn: str) -> tuple[str, dict[str, str]]:
    """``dsn`` without its password, and the environment that carries it instead.

    Keeps the password out of the client programs' command lines (visible to every user of
    the machine).
    """
    parts = urlsplit(dsn)
    env = {**os.environ}
    if parts.password is None:
        return dsn, env
    env["PGPASSWORD"] = unquote(parts.password)
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    netloc = f"{user}@{host}" if user else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)), env


async def _run_tool(args: Sequence[str], env: Mapping[str, str]) -> str:
    proc = await asyncio.create_subprocess_exec(
        *args,
        env=dict(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise BackupError(
            f"{Path(args[0]).name} failed (exit {proc.returncode}): {err.decode().strip()}"
        )
    return out.decode().strip()


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def table_columns(conn: Connection) -> dict[str, list[str]]:
    """Every ordinary table of the user schemas (``schema.table``) with its columns in order."""
    rows = await conn.fetch(
        "SELECT n.nspname || '.' || c.relname AS name, "
        "array_agg(a.attname::text ORDER BY a.attnum) AS columns "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
        f"WHERE c.relkind IN ('r', 'p') AND {_USER_SCHEMAS} "
        "GROUP BY 1 ORDER BY 1"
    )
    return {r["name"]: list(r["columns"]) for r in rows}


async def table_digests(
    conn: Connection, columns: Mapping[str, Sequence[str]] | None = None
) -> dict[str, TableDigest]:
    """Row count and content checksum of each table; call inside a transaction.

    The checksum sums two 60-bit slices of each row's MD5 (in its text form, under fixed
    session settings), so it does not depend on the rows' physical order, and it needs
    constant memory however large the table.

    Args:
        conn: A connection inside a transaction (the settings are ``SET LOCAL``).
        columns: The tables and the columns to digest; every table, every column by default
            (the upgrade tests digest the columns an older version had).

    Returns:
        ``schema.table`` -> digest.
    """
    for setting in _DIGEST_SETTINGS:
        await conn.execute(setting)
    wanted = columns if columns is not None else await table_columns(conn)
    digests: dict[str, TableDigest] = {}
    for table, cols in wanted.items():
        schema, _, name = table.partition(".")
        row = ", ".join(f"t.{_ident(c)}" for c in cols)
        record = await conn.fetchrow(
            "SELECT count(*) AS rows, "
            "coalesce(sum(('x' || substr(h, 1, 15))::bit(60)::bigint), 0)::text AS a, "
            "coalesce(sum(('x' || substr(h, 16, 15))::bit(60)::bigint), 0)::text AS b "
            f"FROM (SELECT md5(ROW({row})::text) AS h "
            f"FROM {_ident(schema)}.{_ident(name)} AS t) AS s"
        )
        assert record is not None
        text = f"{record['rows']}:{record['a']}:{record['b']}"
        digests[table] = TableDigest(
            rows=record["rows"], checksum=hashlib.sha256(text.encode()).hexdigest()
        )
    return digests


async def _granted_roles(conn: Connection) -> list[GrantedRole]:
    """Roles other than the connecting one that hold privileges on the database's objects."""
    rows = await conn.fetch(
        "WITH acl AS ("
        "  SELECT c.relacl AS acl FROM pg_class c JOIN pg_namespace n "
        f"   ON n.oid = c.relnamespace WHERE {_USER_SCHEMAS} "
        "  UNION ALL SELECT p.proacl FROM pg_proc p JOIN pg_namespace n "
        f"   ON n.oid = p.pronamespace WHERE {_USER_SCHEMAS} "
        "  UNION ALL SELECT n.nspacl FROM pg_namespace n WHERE " + _USER_SCHEMAS + ") "
        "SELECT DISTINCT r.rolname, r.rolcanlogin, r.rolbypassrls "
        "FROM acl, aclexplode(acl.acl) AS e JOIN pg_roles r ON r.oid = e.grantee "
        "WHERE acl.acl IS NOT NULL AND r.rolname <> current_user "
        "AND r.rolname NOT LIKE 'pg\\_%' AND NOT r.rolsuper ORDER BY 1"
    )
    return [GrantedRole(name=r[0], can_login=r[1], bypass_rls=r[2]) for r in rows]


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _pack(manifest: BackupManifest, dump: Path, out: Path) -> None:
    """Writes the tar beside ``dump`` and renames it to ``out``: no half-written backup."""
    manifest_path = dump.with_name(MANIFEST_MEMBER)
    manifest_path.write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
    partial = dump.with_name("backup.tar")
    with tarfile.open(partial, "w") as tar:
        tar.add(manifest_path, arcname=MANIFEST_MEMBER)
        tar.add(dump, arcname=DUMP_MEMBER)
    partial.replace(out)


async def create_backup(dsn: str, out: Path) -> BackupManifest:
    """Writes a backup of the database at ``dsn`` to the tar file ``out``.

    Args:
        dsn: The owner's connection string (the role that runs migrations).
        out: The archive to write; written beside under a temporary name, then renamed.

    Returns:
        The manifest stored in the archive.

    Raises:
        BackupError: ``pg_dump`` failed or is missing, or the database has no migrations.
    """
    pg_dump = pg_tool("pg_dump")
    target, env = _libpq_target(dsn)
    conn = await asyncpg.connect(dsn)
    out = await asyncio.to_thread(out.resolve)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            # First statement of the transaction: the exported snapshot is the one every
            # query below sees, and the one pg_dump is told to use.
            snapshot = await conn.fetchval("SELECT pg_export_snapshot()")
            applied = await conn.fetch(
                "SELECT version, name, checksum FROM schema_migrations ORDER BY version"
            )
            tables = await table_digests(conn)
            roles = await _granted_roles(conn)
            database = await conn.fetchval("SELECT current_database()")
            server = await conn.fetchval("SHOW server_version")
            with tempfile.TemporaryDirectory(dir=out.parent, prefix=".backup-") as scratch:
                dump = Path(scratch) / DUMP_MEMBER
                await _run_tool(
                    [
                        pg_dump,
                        "--format=custom",
                        "--no-password",
                        f"--snapshot={snapshot}",
                        f"--file={dump}",
                        f"--dbname={target}",
                    ],
                    env,
                )
                manifest = BackupManifest(
                    created_at=datetime.now(UTC),
                    source_database=database,
                    migrations=[AppliedMigration(**dict(r)) for r in applied],
                    tables=tables,
                    roles=roles,
                    archive_sha256=await asyncio.to_thread(_file_sha256, dump),
                    tools={
                        "exammentor": metadata.version("exammentor"),
                        "pg_dump": await _run_tool([pg_dump, "--version"], env),
                        "server": server,
                    },
                )
                await asyncio.to_thread(_pack, manifest, dump, out)
    except asyncpg.UndefinedTableError as exc:
        raise BackupError(
            f"no schema_migrations table: is this an ExamMentor database? ({exc})"
        ) from exc
    finally:
        await conn.close()
    log.info(
        "backup written",
        file=str(out),
        schema_version=manifest.schema_version,
        tables=len(tables),
        rows=manifest.total_rows,
    )
    return manifest


def _member(tar: tarfile.TarFile, name: str) -> IO[bytes]:
    try:
        member = tar.getmember(name)
    except KeyError:
        raise BackupError(f"not an ExamMentor backup: no {name} in the archive") from None
    handle = tar.extractfile(member) if member.isfile() else None
    if handle is None:
        raise BackupError(f"not an ExamMentor backup: {name} is not a file")
    return handle


def _unpack_dump(archive: Path, dump: Path) -> None:
    # Copied out member by name, never extracted: no path in the archive reaches the disk.
    with tarfile.open(archive, "r") as tar, dump.open("wb") as copy:
        shutil.copyfileobj(_member(tar, DUMP_MEMBER), copy)


def read_manifest(archive: Path) -> BackupManifest:
    """The manifest of a backup archive, validated.

    Raises:
        BackupError: not a tar with a valid manifest, or a manifest format this code does not
            read.
    """
    try:
        with tarfile.open(archive, "r") as tar:
            text = _member(tar, MANIFEST_MEMBER).read()
    except (OSError, tarfile.TarError) as exc:
        raise BackupError(f"cannot read {archive}: {exc}") from exc
    try:
        manifest = BackupManifest.model_validate_json(text)
    except ValidationError as exc:
        raise BackupError(f"{archive}: the manifest is not valid: {exc}") from exc
    if manifest.format > MANIFEST_FORMAT:
        raise BackupError(
            f"the manifest is of format {manifest.format}; this code reads up to "
            f"{MANIFEST_FORMAT}: restore with a newer release"
        )
    return manifest


def check_schema_known(manifest: BackupManifest, migrations_dir: Path | None = None) -> None:
    """Refuses a backup whose schema this code does not have.

    Raises:
        BackupError: the backup holds a migration the code lacks, or a different file under
            the same number.
    """
    known = {m.version: m for m in load_migrations(migrations_dir or default_migrations_dir())}
    head = max(known, default=0)
    newer = [m for m in manifest.migrations if m.version not in known]
    if newer:
        listed = ", ".join(f"{m.version:03d}_{m.name}" for m in newer)
        raise BackupError(
            f"the backup is at schema version {manifest.schema_version}, newer than this "
            f"code (head {head:03d}): it holds migration(s) {listed} that this code does not "
            "have. Restore it with the release that made it (or a later one)."
        )
    different = [m for m in manifest.migrations if known[m.version].checksum != m.checksum]
    if different:
        listed = ", ".join(f"{m.version:03d}_{m.name}" for m in different)
        raise BackupError(
            f"the backup's migration(s) {listed} differ from this code's files of the same "
            "number: it comes from another history; restore it with the release that made it"
        )


async def _check_empty(conn: Connection) -> None:
    objects = await conn.fetch(
        "SELECT n.nspname || '.' || c.relname AS name FROM pg_class c "
        f"JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {_USER_SCHEMAS} "
        "UNION ALL SELECT n.nspname || '.' || p.proname || '()' FROM pg_proc p "
        f"JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {_USER_SCHEMAS} ORDER BY 1"
    )
    if objects:
        database = await conn.fetchval("SELECT current_database()")
        shown = ", ".join(r["name"] for r in objects[:5])
        more = f" and {len(objects) - 5} more" if len(objects) > 5 else ""
        raise BackupError(
            f"database {database} is not empty ({len(objects)} objects: {shown}{more}); "
            "restore into a new, empty database (CREATE DATABASE ...)"
        )


async def _ensure_roles(conn: Connection, roles: Sequence[GrantedRole]) -> list[str]:
    created: list[str] = []
    for role in roles:
        if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role.name):
            continue
        # The attributes migration 001 gives exammentor_app; login and RLS bypass as recorded.
        await conn.execute(
            f"CREATE ROLE {_ident(role.name)} {'LOGIN' if role.can_login else 'NOLOGIN'} "
            f"NOSUPERUSER {'BYPASSRLS' if role.bypass_rls else 'NOBYPASSRLS'} "
            "NOCREATEDB NOCREATEROLE"
        )
        created.append(role.name)
    return created


def _differences(
    expected: Mapping[str, TableDigest], found: Mapping[str, TableDigest]
) -> list[str]:
    lines: list[str] = []
    for table in sorted(set(expected) | set(found)):
        want, got = expected.get(table), found.get(table)
        if want is None:
            lines.append(f"{table}: not in the manifest")
        elif got is None:
            lines.append(f"{table}: missing after the restore")
        elif want.rows != got.rows:
            lines.append(f"{table}: {got.rows} rows, the manifest says {want.rows}")
        elif want.checksum != got.checksum:
            lines.append(f"{table}: content checksum differs from the manifest's")
    return lines


async def restore_backup(
    archive: Path, dsn: str, migrations_dir: Path | None = None
) -> BackupManifest:
    """Restores a backup into the empty database at ``dsn`` and verifies it.

    Args:
        archive: A file written by :func:`create_backup`.
        dsn: The owner's connection string of an empty database (the restoring role owns
            what is restored).
        migrations_dir: The migrations this code knows (``migrations/`` by default).

    Returns:
        The verified manifest.

    Raises:
        BackupError: the archive is damaged or not a backup, its schema is newer than the
            code's, the database is not empty, ``pg_restore`` failed (nothing is restored),
            or the restored rows differ from the manifest (the database then holds them:
            do not use it).
    """
    manifest = read_manifest(archive)
    check_schema_known(manifest, migrations_dir)
    pg_restore = pg_tool("pg_restore")
    target, env = _libpq_target(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        await _check_empty(conn)
        with tempfile.TemporaryDirectory(prefix="exammentor-restore-") as scratch:
            dump = Path(scratch) / DUMP_MEMBER
            await asyncio.to_thread(_unpack_dump, archive, dump)
            if await asyncio.to_thread(_file_sha256, dump) != manifest.archive_sha256:
                raise BackupError(
                    f"{archive}: the database archive does not match its manifest's SHA-256 "
                    "(damaged or altered); nothing was restored"
                )
            created = await _ensure_roles(conn, manifest.roles)
            if created:
                log.warning("roles created without a password", roles=created)
            await _run_tool(
                [
                    pg_restore,
                    "--no-owner",
                    "--exit-on-error",
                    "--single-transaction",
                    "--no-password",
                    f"--dbname={target}",
                    str(dump),
                ],
                env,
            )
        await conn.execute("ANALYZE")  # statistics are not in a dump; plans need them
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            found = await table_digests(conn)
    finally:
        await conn.close()
    wrong = _differences(manifest.tables, found)
    if wrong:
        raise BackupError(
            "the restored database does not match the backup's manifest:\n  " + "\n  ".join(wrong)
        )
    log.info(
        "backup restored",
        file=str(archive),
        schema_version=manifest.schema_version,
        tables=len(found),
        rows=manifest.total_rows,
    )
    return manifest
