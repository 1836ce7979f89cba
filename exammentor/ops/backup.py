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
from pydantic import ValidationError

from exammentor.db import Connection
from exammentor.logs import get_logger
from exammentor.ops.backup_manifest import (
    MANIFEST_FORMAT,
    USER_SCHEMAS,
    AppliedMigration,
    BackupManifest,
    GrantedRole,
    TableDigest,
    granted_roles,
    quote_ident,
    table_digests,
)
from exammentor.ops.migrate import default_migrations_dir, load_migrations

log = get_logger(__name__)

MANIFEST_MEMBER = "manifest.json"
DUMP_MEMBER = "database.dump"


class BackupError(RuntimeError):
    """A backup could not be made, or a restore was refused or did not verify."""


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
            roles = await granted_roles(conn)
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
        f"JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {USER_SCHEMAS} "
        "UNION ALL SELECT n.nspname || '.' || p.proname || '()' FROM pg_proc p "
        f"JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {USER_SCHEMAS} ORDER BY 1"
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
            f"CREATE ROLE {quote_ident(role.name)} {'LOGIN' if role.can_login else 'NOLOGIN'} "
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
