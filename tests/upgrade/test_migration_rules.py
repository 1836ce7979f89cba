"""The rules every migration file keeps, checked without a database: a down step and a data
file for each migration, no destructive statement outside a contract step, and server
functions that notify on the channels the code listens to.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exammentor.messaging.outbox import CHANNEL as OUTBOX_CHANNEL
from exammentor.messaging.pipeline import REQUESTS_CHANNEL
from exammentor.ops import migrate
from tests.upgrade.database import data_file, migrations

MIGRATIONS = migrations()


def _id(m: migrate.Migration) -> str:
    return m.filename


@pytest.mark.parametrize("migration", MIGRATIONS, ids=_id)
def test_every_migration_has_a_down_step(migration: migrate.Migration) -> None:
    assert migration.down_sql is not None, (
        f"{migration.filename} has no down step: write migrations/{migration.down_filename} "
        "(it must take the schema back to the previous version; see docs/operations.md)"
    )
    assert migration.down_sql.strip(), f"{migration.down_filename} is empty"


@pytest.mark.parametrize("migration", MIGRATIONS, ids=_id)
def test_every_migration_has_a_data_file(migration: migrate.Migration) -> None:
    path = data_file(migration.version)
    assert path.is_file(), (
        f"{migration.filename} has no representative data: write tests/upgrade/data/"
        f"{path.name} (rows for what the migration adds, loaded at version "
        f"{migration.version})"
    )
    assert path.read_text(encoding="utf-8").strip(), f"{path.name} is empty"


def test_no_data_file_is_left_without_its_migration() -> None:
    files = sorted(p.name for p in data_file(1).parent.glob("*.sql"))
    assert files == [data_file(m.version).name for m in MIGRATIONS]


@pytest.mark.parametrize("migration", MIGRATIONS, ids=_id)
def test_an_expand_migration_holds_no_destructive_statement(
    migration: migrate.Migration,
) -> None:
    if migration.is_contract:
        pytest.skip("a contract step: destructive statements are its purpose")
    assert migrate.destructive_statements(migration.sql) == [], (
        f"{migration.filename} destroys or renames what the running release may use; "
        "split it (expand now, contract a release later) or mark it '-- migration: contract'"
    )


DESTRUCTIVE = [
    ("DROP TABLE quizzes;", "DROP TABLE"),
    ("drop table if exists quizzes cascade;", "DROP TABLE"),
    ("DROP VIEW plan_overview;", "DROP TABLE"),
    ("DROP FUNCTION auth_credentials(text);", "DROP TABLE"),
    ("ALTER TABLE users DROP COLUMN email;", "DROP COLUMN"),
    ("ALTER TABLE users DROP email;", "DROP COLUMN"),
    ('ALTER TABLE users DROP IF EXISTS "email";', "DROP COLUMN"),
    ("ALTER TABLE users ADD COLUMN nick text, DROP COLUMN email;", "DROP COLUMN"),
    ("ALTER TABLE users RENAME COLUMN email TO mail;", "RENAME"),
    ("ALTER TABLE users RENAME TO people;", "RENAME"),
    ("ALTER TABLE topics ALTER COLUMN mastery_score TYPE bigint;", "ALTER COLUMN ... TYPE"),
    ("ALTER TABLE topics ALTER mastery_score SET DATA TYPE real;", "ALTER COLUMN ... TYPE"),
    ("ALTER TABLE users ALTER COLUMN email SET NOT NULL;", "SET NOT NULL"),
    ("TRUNCATE inbox;", "TRUNCATE"),
    ("DELETE FROM plan_cache;", "DELETE without WHERE"),
    ("DO $$ BEGIN EXECUTE 'DROP TABLE inbox'; END $$;", "DROP TABLE"),
    ("INSERT INTO t VALUES ('a -- b'); DROP TABLE t;", "DROP TABLE"),
]
HARMLESS = [
    "CREATE TABLE answers (id uuid PRIMARY KEY, body text NOT NULL);",
    "ALTER TABLE users ADD COLUMN nick text;",
    "ALTER TABLE users ADD COLUMN type text;",
    "ALTER TABLE users ALTER COLUMN type SET DEFAULT 'x';",
    "ALTER TABLE users ALTER COLUMN email DROP NOT NULL;",
    "ALTER TABLE users ALTER COLUMN email DROP DEFAULT;",
    "ALTER TABLE users DROP CONSTRAINT users_email_key;",
    "DROP INDEX quizzes_user_topic_idx;",
    "CREATE INDEX CONCURRENTLY users_email_idx ON users (email);",
    "DELETE FROM plan_cache WHERE expires_at < now();",
    "UPDATE users SET nick = name WHERE nick IS NULL;",
    "-- DROP TABLE users; is what we must never do\nSELECT 1;",
    "/* ALTER TABLE users DROP COLUMN email; */ SELECT 1;",
    "ALTER TABLE users ENABLE ROW LEVEL SECURITY;",
    "REVOKE ALL ON schema_migrations FROM exammentor_app;",
]


@pytest.mark.parametrize(("sql", "label"), DESTRUCTIVE)
def test_a_destructive_statement_is_flagged_with_what_it_does(sql: str, label: str) -> None:
    found = migrate.destructive_statements(sql)
    assert len(found) == 1
    assert found[0].startswith(label)


@pytest.mark.parametrize("sql", HARMLESS)
def test_an_expand_statement_is_not_flagged(sql: str) -> None:
    assert migrate.destructive_statements(sql) == []


# Identifiers as migrations write them; the detector's own keywords are left out (a column
# named "truncate" is flagged on purpose: the check errs on the side of flagging).
_KEYWORDS = {"drop", "rename", "type", "truncate", "delete", "alter", "table", "column", "set"}
identifiers = st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True).filter(
    lambda name: name not in _KEYWORDS
)


@given(table=identifiers, column=identifiers)
def test_adding_is_never_flagged_and_dropping_always_is(table: str, column: str) -> None:
    assert migrate.destructive_statements(f"ALTER TABLE {table} ADD COLUMN {column} text;") == []
    assert migrate.destructive_statements(f"CREATE INDEX ON {table} ({column});") == []
    assert len(migrate.destructive_statements(f"ALTER TABLE {table} DROP COLUMN {column};")) == 1
    assert len(migrate.destructive_statements(f"DROP TABLE {table};")) == 1


@pytest.mark.parametrize("body", [sql for sql, _ in DESTRUCTIVE if "'" not in sql])
def test_a_commented_out_statement_is_not_flagged(body: str) -> None:
    commented = "\n".join(f"-- {line}" for line in body.splitlines())
    assert migrate.destructive_statements(commented + "\nSELECT 1;") == []
    assert migrate.destructive_statements(f"/* {body} */ SELECT 1;") == []


def test_the_contract_marker_is_read_from_the_header_only() -> None:
    contract = migrate.Migration(3, "x", "-- Drop the old column.\n-- migration: contract\nX;")
    assert contract.is_contract
    later = migrate.Migration(3, "x", "SELECT 1;\n-- migration: contract\n")
    assert not later.is_contract
    assert not migrate.Migration(3, "x", "-- migration: expand\nSELECT 1;").is_contract


def _write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def test_a_down_file_is_paired_with_its_up_file(tmp_path: Path) -> None:
    found = migrate.load_migrations(
        _write(
            tmp_path,
            {
                "001_a.sql": "CREATE TABLE a ();",
                "001_a.down.sql": "DROP TABLE a;",
                "002_b.sql": "CREATE TABLE b ();",
            },
        )
    )
    assert [(m.filename, m.down_sql) for m in found] == [
        ("001_a.sql", "DROP TABLE a;"),
        ("002_b.sql", None),
    ]
    assert found[0].down_checksum is not None
    assert found[1].down_checksum is None


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"001_a.sql": "", "001_b.down.sql": ""}, "has no up file"),
        ({"001_a.sql": "", "002_b.down.sql": ""}, "has no up file"),
        ({"001_a.sql": "", "001_b.sql": ""}, "another file has version 001"),
        ({"001_a.sql": "", "001_a.undo.sql": ""}, "named NNN_name.sql"),
    ],
)
def test_stray_migration_files_are_refused(
    tmp_path: Path, files: dict[str, str], message: str
) -> None:
    with pytest.raises(migrate.MigrationError, match=message):
        migrate.load_migrations(_write(tmp_path, files))


def test_the_server_functions_notify_on_the_channels_the_code_listens_to() -> None:
    sql = next(m.sql for m in MIGRATIONS if m.name == "one_round_trip")
    channels = set(re.findall(r"pg_notify\('([a-z_]+)'", sql))
    assert channels == {REQUESTS_CHANNEL, OUTBOX_CHANNEL}
