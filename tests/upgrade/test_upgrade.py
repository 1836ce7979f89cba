"""Upgrades from every schema version to the head, on the real Postgres.

For each version N: a database migrated to N holds the representative data of versions
1..N (``data/NNN.sql``, each loaded at its own version), is upgraded to the head, and then
keeps every row, its foreign keys and its row-level security, and the services' role still
reads every row the way the services do (``SET LOCAL app.user_id`` per transaction).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest

from exammentor.contracts.plan import StudyPlan
from exammentor.db import create_pool, system_transaction, user_transaction
from exammentor.ops import migrate
from tests.upgrade.database import (
    BOOKKEEPING,
    DatabaseSnapshot,
    app_dsn,
    data_file,
    digests_of,
    fill_to,
    head_version,
    migrations,
    orphans,
    scratch_database,
    take_snapshot,
    user_ids,
)

VERSIONS = [m.version for m in migrations()]

RETIRED_TABLES: dict[str, int] = {}
"""Tables a contract migration dropped on purpose -> that migration's version. Empty: no
migration has dropped a table yet."""


@dataclass(frozen=True)
class UpgradeRun:
    """A database filled at ``version`` and then upgraded to the head."""

    version: int
    dsn: str
    before: DatabaseSnapshot
    after: DatabaseSnapshot
    applied: list[int]

    @property
    def contract_after(self) -> bool:
        """A contract migration ran during the upgrade (content may change on purpose)."""
        return any(m.is_contract for m in migrations() if m.version > self.version)


@pytest.fixture(scope="module", params=VERSIONS, ids=lambda v: f"from-{v:03d}")
async def upgrade_run(postgres: str, request: pytest.FixtureRequest) -> AsyncIterator[UpgradeRun]:
    """One database per version, filled and upgraded once for the tests below."""
    version: int = request.param
    async with scratch_database(postgres) as dsn:
        await fill_to(dsn, version)
        before = await take_snapshot(dsn)
        applied = await migrate.upgrade(dsn)
        yield UpgradeRun(version, dsn, before, await take_snapshot(dsn), applied)


pytestmark = pytest.mark.integration


def _owner(row: asyncpg.Record) -> object:
    # A user's own rows carry user_id; the users table itself is keyed by id.
    values = dict(row)
    return values["user_id"] if "user_id" in values else values["id"]


def test_the_upgrade_applies_every_later_migration(upgrade_run: UpgradeRun) -> None:
    assert upgrade_run.applied == list(range(upgrade_run.version + 1, head_version() + 1))


def test_the_data_of_each_version_fills_every_table_and_column(upgrade_run: UpgradeRun) -> None:
    before = upgrade_run.before
    empty_tables = [t for t, n in before.rows().items() if n == 0 and t != BOOKKEEPING]
    name = data_file(upgrade_run.version).name
    assert empty_tables == [], f"no rows in {empty_tables} at this version: add some to {name}"
    assert before.empty_columns == [], (
        f"columns never set at this version: {before.empty_columns}; give them values in "
        f"tests/upgrade/data (the version that added them)"
    )


def test_upgrading_keeps_every_row(upgrade_run: UpgradeRun) -> None:
    before, after = upgrade_run.before.rows(), upgrade_run.after.rows()
    before.pop(BOOKKEEPING)
    retired = {t for t, v in RETIRED_TABLES.items() if v > upgrade_run.version}
    kept = {t: n for t, n in before.items() if t not in retired}
    assert {t: after.get(t) for t in kept} == kept


async def test_upgrading_leaves_the_old_columns_content_unchanged(
    upgrade_run: UpgradeRun,
) -> None:
    if upgrade_run.contract_after:
        pytest.skip("a contract migration follows: it may rewrite old columns on purpose")
    old = {
        t: cols
        for t, cols in upgrade_run.before.columns.items()
        if t != BOOKKEEPING and t not in RETIRED_TABLES
    }
    expected = {t: d for t, d in upgrade_run.before.digests.items() if t in old}
    assert await digests_of(upgrade_run.dsn, old) == expected


async def test_upgrading_keeps_foreign_keys_and_no_row_breaks_them(
    upgrade_run: UpgradeRun,
) -> None:
    after_keys = {k.name for k in upgrade_run.after.foreign_keys}
    if not upgrade_run.contract_after:
        assert {k.name for k in upgrade_run.before.foreign_keys} <= after_keys
    broken = await orphans(upgrade_run.dsn, upgrade_run.after.foreign_keys)
    assert {k: n for k, n in broken.items() if n} == {}


def test_upgrading_keeps_row_level_security_where_it_was(upgrade_run: UpgradeRun) -> None:
    before, after = upgrade_run.before, upgrade_run.after
    for table, (enabled, forced) in before.row_security.items():
        if table in RETIRED_TABLES:
            continue
        now_enabled, now_forced = after.row_security[table]
        assert now_enabled or not enabled, f"{table}: row-level security was turned off"
        assert now_forced or not forced, f"{table}: row-level security is no longer forced"
        if now_enabled:
            assert after.policies[table] > 0, f"{table}: row-level security without a policy"
    assert any(enabled for enabled, _ in after.row_security.values())


async def test_the_services_role_reads_every_old_row_per_user(upgrade_run: UpgradeRun) -> None:
    """Each RLS table: the rows the users see, summed, are all its rows, and each user sees
    only rows of their own; the pipeline tables read outside any user; the bookkeeping not.
    """
    after = upgrade_run.after
    owner_rows = after.rows()
    users = await user_ids(upgrade_run.dsn)
    assert len(users) >= 2
    pool = await create_pool(app_dsn(upgrade_run.dsn), max_size=2)
    try:
        for table, (enabled, _) in sorted(after.row_security.items()):
            if table == BOOKKEEPING:
                async with system_transaction(pool) as conn:
                    with pytest.raises(asyncpg.InsufficientPrivilegeError):
                        await conn.fetch(f"SELECT * FROM {table}")
                continue
            if not enabled:
                async with system_transaction(pool) as conn:
                    rows = await conn.fetch(f"SELECT * FROM {table}")
                assert len(rows) == owner_rows[table], table
                continue
            seen = 0
            for user in users:
                async with user_transaction(pool, user) as conn:
                    rows = await conn.fetch(f"SELECT * FROM {table}")
                owners = {_owner(r) for r in rows}
                assert owners <= {user}, f"{table}: {user} sees rows of {owners - {user}}"
                seen += len(rows)
            # A pipeline table (owner or system, migrations/006) is read whole outside any
            # user, and its rows of no user only there; a user table shows nothing there.
            async with system_transaction(pool) as conn:
                system_rows = await conn.fetch(f"SELECT * FROM {table}")
            assert len(system_rows) in (0, owner_rows[table]), f"{table}: system sees a part"
            unowned = sum(1 for r in system_rows if dict(r).get("user_id") is None)
            assert seen + unowned == owner_rows[table], f"{table}: users see {seen} of its rows"
    finally:
        await pool.close()


async def test_stored_plans_still_parse_as_the_current_plan_contract(
    upgrade_run: UpgradeRun,
) -> None:
    pool = await create_pool(app_dsn(upgrade_run.dsn), max_size=2)
    plans: list[StudyPlan] = []
    try:
        for user in await user_ids(upgrade_run.dsn):
            async with user_transaction(pool, user) as conn:
                for row in await conn.fetch("SELECT plan FROM study_plans"):
                    plans.append(StudyPlan.model_validate(row["plan"]))
        async with system_transaction(pool) as conn:
            for row in await conn.fetch("SELECT plan FROM plan_cache"):
                plans.append(StudyPlan.model_validate(row["plan"]))
    finally:
        await pool.close()
    assert (
        len(plans)
        == upgrade_run.after.rows()["public.study_plans"]
        + (upgrade_run.after.rows()["public.plan_cache"])
    )
