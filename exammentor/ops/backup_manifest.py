"""What a backup records of a database: its tables' row counts and checksums, its migrations
and the roles its grants name, computed the same way when a backup is made, when it is
restored and when an upgrade test compares a database before and after.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from exammentor.db import Connection

MANIFEST_FORMAT = 1
"""Version of the manifest's shape; a manifest of a later format is refused."""

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
USER_SCHEMAS = (
    "n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'"
)


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


def quote_ident(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


async def table_columns(conn: Connection) -> dict[str, list[str]]:
    """Every ordinary table of the user schemas (``schema.table``) with its columns in order."""
    rows = await conn.fetch(
        "SELECT n.nspname || '.' || c.relname AS name, "
        "array_agg(a.attname::text ORDER BY a.attnum) AS columns "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
        f"WHERE c.relkind IN ('r', 'p') AND {USER_SCHEMAS} "
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
        row = ", ".join(f"t.{quote_ident(c)}" for c in cols)
        record = await conn.fetchrow(
            "SELECT count(*) AS rows, "
            "coalesce(sum(('x' || substr(h, 1, 15))::bit(60)::bigint), 0)::text AS a, "
            "coalesce(sum(('x' || substr(h, 16, 15))::bit(60)::bigint), 0)::text AS b "
            f"FROM (SELECT md5(ROW({row})::text) AS h "
            f"FROM {quote_ident(schema)}.{quote_ident(name)} AS t) AS s"
        )
        assert record is not None
        text = f"{record['rows']}:{record['a']}:{record['b']}"
        digests[table] = TableDigest(
            rows=record["rows"], checksum=hashlib.sha256(text.encode()).hexdigest()
        )
    return digests


async def granted_roles(conn: Connection) -> list[GrantedRole]:
    """Roles other than the connecting one that hold privileges on the database's objects."""
    rows = await conn.fetch(
        "WITH acl AS ("
        "  SELECT c.relacl AS acl FROM pg_class c JOIN pg_namespace n "
        f"   ON n.oid = c.relnamespace WHERE {USER_SCHEMAS} "
        "  UNION ALL SELECT p.proacl FROM pg_proc p JOIN pg_namespace n "
        f"   ON n.oid = p.pronamespace WHERE {USER_SCHEMAS} "
        "  UNION ALL SELECT n.nspacl FROM pg_namespace n WHERE " + USER_SCHEMAS + ") "
        "SELECT DISTINCT r.rolname, r.rolcanlogin, r.rolbypassrls "
        "FROM acl, aclexplode(acl.acl) AS e JOIN pg_roles r ON r.oid = e.grantee "
        "WHERE acl.acl IS NOT NULL AND r.rolname <> current_user "
        "AND r.rolname NOT LIKE 'pg\\_%' AND NOT r.rolsuper ORDER BY 1"
    )
    return [GrantedRole(name=r[0], can_login=r[1], bypass_rls=r[2]) for r in rows]
