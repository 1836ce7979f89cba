"""Migrations and row-level security, on the real Postgres."""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from exammentor.db import create_pool, user_transaction
from exammentor.ops import migrate
from exammentor.ops.usage import usage_report
from tests.conftest import SessionEnv
from tests.infra import ROOT, python, unique_name, with_database

pytestmark = pytest.mark.integration


async def _fresh_database(env: SessionEnv) -> str:
    name = unique_name("exammentor_mig_")
    admin = await asyncpg.connect(env.servers.admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return with_database(env.servers.admin_dsn, name)


async def _drop(env: SessionEnv, dsn: str) -> None:
    admin = await asyncpg.connect(env.servers.admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE "{dsn.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        await admin.close()


async def test_two_runners_at_once_apply_each_migration_once(test_env: SessionEnv) -> None:
    dsn = await _fresh_database(test_env)
    try:
        first, second = await asyncio.gather(migrate.upgrade(dsn), migrate.upgrade(dsn))
        expected = [m.version for m in migrate.load_migrations(migrate.default_migrations_dir())]
        # The advisory lock serialises them: one applies everything, the other nothing.
        assert sorted([first, second]) == [[], expected]
        states = await migrate.status(dsn)
        assert all(st.applied_at is not None and st.checksum_ok for st in states)
        assert await migrate.upgrade(dsn) == []
    finally:
        await _drop(test_env, dsn)


async def test_an_applied_migration_edited_on_disk_is_refused(
    test_env: SessionEnv, tmp_path: Path
) -> None:
    dsn = await _fresh_database(test_env)
    try:
        (tmp_path / "001_first.sql").write_text("CREATE TABLE a (id int);")
        assert await migrate.upgrade(dsn, tmp_path) == [1]
        (tmp_path / "001_first.sql").write_text("CREATE TABLE a (id bigint);")
        with pytest.raises(migrate.MigrationError, match="changed after it was applied"):
            await migrate.upgrade(dsn, tmp_path)
        assert [st.checksum_ok for st in await migrate.status(dsn, tmp_path)] == [False]
    finally:
        await _drop(test_env, dsn)


async def test_a_failing_migration_rolls_back_alone(test_env: SessionEnv, tmp_path: Path) -> None:
    dsn = await _fresh_database(test_env)
    try:
        (tmp_path / "001_good.sql").write_text("CREATE TABLE good (id int);")
        (tmp_path / "002_bad.sql").write_text("CREATE TABLE half (id int); SELECT 1/0;")
        with pytest.raises(migrate.MigrationError, match=r"002_bad\.sql failed"):
            await migrate.upgrade(dsn, tmp_path)
        conn = await asyncpg.connect(dsn)
        try:
            tables = {
                r["tablename"]
                for r in await conn.fetch(
                    "SELECT tablename FROM pg_tables WHERE schemaname='public'"
                )
            }
        finally:
            await conn.close()
        assert "good" in tables
        assert "half" not in tables
        assert [st.applied_at is not None for st in await migrate.status(dsn, tmp_path)] == [
            True,
            False,
        ]
    finally:
        await _drop(test_env, dsn)


def test_migration_files_are_numbered_without_gaps(tmp_path: Path) -> None:
    (tmp_path / "001_a.sql").write_text("SELECT 1;")
    (tmp_path / "003_c.sql").write_text("SELECT 1;")
    with pytest.raises(migrate.MigrationError, match="without gaps"):
        migrate.load_migrations(tmp_path)


async def test_row_level_security_hides_other_users_rows(test_env: SessionEnv) -> None:
    pool = await create_pool(test_env.app_dsn)
    alice, bob = uuid.uuid4(), uuid.uuid4()
    try:
        for user in (alice, bob):
            async with user_transaction(pool, user) as conn:
                await conn.execute(
                    "INSERT INTO users (id, name, password_hash) VALUES ($1, $2, 'x')",
                    user,
                    f"rls-{user.hex[:8]}",
                )
                await conn.execute(
                    "INSERT INTO requests (id, user_id, kind) VALUES ($1, $2, 'k')",
                    uuid.uuid4(),
                    user,
                )
        async with user_transaction(pool, alice) as conn:
            # No WHERE clause: the policy alone limits what the service role sees.
            owners = {r["user_id"] for r in await conn.fetch("SELECT user_id FROM requests")}
            users = {r["id"] for r in await conn.fetch("SELECT id FROM users")}
            assert owners == {alice}
            assert users == {alice}
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(
                    "INSERT INTO requests (id, user_id, kind) VALUES ($1, $2, 'k')",
                    uuid.uuid4(),
                    bob,
                )
        async with pool.acquire() as conn:
            # Outside a user transaction nothing of any user is visible.
            assert await conn.fetchval("SELECT count(*) FROM requests") == 0
            can_bypass = await conn.fetchval(
                "SELECT rolbypassrls OR rolsuper FROM pg_roles WHERE rolname = current_user"
            )
            assert can_bypass is False
    finally:
        await pool.close()


async def test_the_operator_command_reports_migrations_and_dead_letters(
    test_env: SessionEnv,
) -> None:
    env = {**os.environ, "DATABASE_URL": test_env.admin_dsn}

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

    code, out = await run("migrate", "status")
    assert code == 0
    names = [m.name for m in migrate.load_migrations(migrate.default_migrations_dir())]
    for line, name in zip(out.splitlines(), names, strict=True):
        assert name in line
        assert "applied" in line
    code, out = await run("migrate", "up")
    assert (code, out.strip()) == (0, "schema is current")
    code, out = await run("dead-letters", "replay", "999999999")
    assert (code, out.strip()) == (1, "no dead letter 999999999")


async def test_the_usage_report_sums_model_calls_and_prices_them(
    test_env: SessionEnv, admin_db: asyncpg.Connection
) -> None:
    service = unique_name("svc")[:10]
    rows = [
        (service, "plan.route", 100, 20, "ok"),
        (service, "plan.route", 100, 0, "retry"),
        (service, "plan.overview", 300, 50, "ok"),
    ]
    for svc, purpose, prompt, completion, outcome in rows:
        await admin_db.execute(
            "INSERT INTO llm_usage (service, purpose, model, prompt_tokens, completion_tokens, "
            "latency_ms, outcome) VALUES ($1, $2, 'm', $3, $4, 10, $5)",
            svc,
            purpose,
            prompt,
            completion,
            outcome,
        )
    report = [
        u
        for u in await usage_report(test_env.admin_dsn, timedelta(hours=1))
        if u.service == service
    ]
    assert [
        (u.purpose, u.calls, u.failed_calls, u.prompt_tokens, u.completion_tokens) for u in report
    ] == [
        ("plan.overview", 1, 0, 300, 50),
        ("plan.route", 2, 1, 200, 20),
    ]
    assert report[0].cost(prompt_per_1k=1.0, completion_per_1k=2.0) == 0.4
    # The cost procedure of docs/operations.md, as an operator runs it.
    proc = await asyncio.create_subprocess_exec(
        python(),
        "-m",
        "exammentor.ops.cli",
        "usage",
        "--hours",
        "1",
        "--prompt-price",
        "1",
        "--completion-price",
        "2",
        env={**os.environ, "DATABASE_URL": test_env.admin_dsn},
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    ours = [line.split() for line in out.decode().splitlines() if line.startswith(service)]
    assert ours == [
        [service, "plan.overview", "1", "0", "300", "50", "10", "0.4000"],
        [service, "plan.route", "2", "1", "200", "20", "10", "0.2400"],
    ]
