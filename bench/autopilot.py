"""Autopilot benchmark: how many concurrent runs one replica drives before step latency
doubles, and how long a killed replica's runs take to resume on another.

Real Kafka and Postgres (as the tests find them), stand-in tutor and quiz workers on the
scripted model (``tests/fakes``), one in-process autopilot replica. Runs are started by
storing them as ``autopilot.start`` does; with a 1 s answer timeout they loop on their own
(lessons, quiz, skipped answers, mastery update, next topic). Step latency is per tutor or
quiz action: from the action being read to its step stored (command, relay, write).

    .venv/bin/python bench/autopilot.py [--levels 1,4,8,16,32] [--window 8]

The levels double from 1 with 8 between 4 and 16, where one replica's latency has been seen
to double; the line after the table names the level that doubled it and the last that did not.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import secrets
import signal
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from exammentor.contracts.autopilot import AutopilotStartRequest
from exammentor.db import create_pool, user_transaction
from exammentor.logs import configure_logging
from exammentor.messaging.topic_admin import ensure_topics
from exammentor.ops import migrate
from exammentor.settings import DatabaseSettings, KafkaSettings, LLMSettings, WorkerSettings
from exammentor.worker import Worker
from services.autopilot import repo
from services.autopilot.domain import AutopilotPolicy, start_run
from services.autopilot.driver import AutopilotDriver
from services.autopilot.handlers import install_handlers
from services.autopilot.settings import AutopilotSettings
from tests.fakes.autopilot_standins import install_quiz, install_tutor
from tests.fakes.scripted_openai import Content, ScriptedOpenAI
from tests.infra import ROOT, provide_servers, unique_name, with_database

PLAN = {
    "exam_name": "Bench",
    "overview": "",
    "total_days": 1,
    "schedule": [
        {
            "day": 1,
            "theme": "t",
            "topics": [
                {"name": f"Topic {n}", "difficulty": "easy", "rationale": ""} for n in range(4)
            ],
            "estimated_hours": 4,
        }
    ],
    "critical_topics": [],
}


async def start_runs(
    pool: Any, admin: asyncpg.Connection, user: uuid.UUID, count: int
) -> list[uuid.UUID]:
    """``count`` running runs of new sessions of ``user``, stored as autopilot.start does."""
    request = AutopilotStartRequest.model_validate({"study_plan": PLAN, "duration_minutes": 240})
    policy = AutopilotPolicy(answer_timeout_seconds=1)
    sessions = []
    for _ in range(count):
        session = uuid.uuid4()
        await admin.execute(
            "INSERT INTO study_sessions (id, user_id) VALUES ($1, $2)", session, user
        )
        now = dt.datetime.now(dt.UTC)
        run = start_run(request, session_id=session, now=now, policy=policy)
        async with user_transaction(pool, user) as conn:
            await repo.insert_run(conn, run, user, now)
        sessions.append(session)
    return sessions


async def stop_runs(admin: asyncpg.Connection, sessions: list[uuid.UUID]) -> None:
    """Ends the runs by removing their leases (no driver takes them again)."""
    await admin.execute("DELETE FROM autopilot_leases WHERE session_id = ANY($1::uuid[])", sessions)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--levels", default="1,4,8,16,32,64")
    parser.add_argument("--window", type=float, default=8.0)
    parser.add_argument("--takeover-sessions", type=int, default=20)
    args = parser.parse_args()
    configure_logging("bench", "ERROR", "console")
    # One relay token for this process's workers and the replica process the takeover kills
    # (left unset, each process makes a random one and refuses the others' results).
    os.environ.setdefault("EXAMMENTOR_RELAY_TOKEN", secrets.token_urlsafe(32))
    with provide_servers() as servers:
        async with ScriptedOpenAI() as llm_server:
            await run_bench(servers, llm_server, args)


async def run_bench(servers: Any, llm_server: ScriptedOpenAI, args: argparse.Namespace) -> None:
    """The measurements, against running servers."""
    if True:
        llm_server.set_default(Content("A short lesson."))
        database = unique_name("bench_autopilot_")
        admin = await asyncpg.connect(servers.admin_dsn)
        await admin.execute(f'CREATE DATABASE "{database}"')
        await admin.close()
        admin_dsn = with_database(servers.admin_dsn, database)
        app_dsn = with_database(servers.admin_dsn, database, user="exammentor_app")
        await migrate.upgrade(admin_dsn)
        prefix = unique_name("bap")
        kafka = KafkaSettings(
            bootstrap_servers=servers.kafka_bootstrap, topic_prefix=prefix, partitions=6
        )
        await ensure_topics(kafka)
        db = DatabaseSettings(database_url=admin_dsn, app_database_url=app_dsn, pool_max=10)
        llm = LLMSettings(base_url=llm_server.base_url, max_retries=0)
        common: dict[str, Any] = {"kafka": kafka, "db": db, "llm": llm, "ops_port": 0}
        standins = [
            Worker(WorkerSettings(service_name=name, **common), install)
            for name, install in (("tutor", install_tutor), ("quiz", install_quiz))
        ]
        for worker in standins:
            await worker.start()
        replica = Worker(
            AutopilotSettings(lease_ttl_s=2, lease_poll_s=0.2, replica_name="bench-a", **common),
            install_handlers,
        )
        await replica.start()
        assert replica.resources is not None
        driver = replica.resources.background[0]
        assert isinstance(driver, AutopilotDriver)
        pool = await create_pool(app_dsn, max_size=4)
        admin = await asyncpg.connect(admin_dsn)
        user = uuid.uuid4()
        await admin.execute(
            "INSERT INTO users (id, name, password_hash) VALUES ($1, $2, 'x')", user, "bench"
        )
        try:
            print(f"{'runs':>5} {'steps/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'vs 1 run':>9}")
            baseline = None
            last_under = 0
            for level in [int(x) for x in args.levels.split(",")]:
                sessions = await start_runs(pool, admin, user, level)
                await asyncio.sleep(1.0)  # claims and the first steps
                driver.stats.step_latencies_ms.clear()
                steps_before = driver.stats.steps
                await asyncio.sleep(args.window)
                lat = sorted(driver.stats.step_latencies_ms)
                steps = driver.stats.steps - steps_before
                await stop_runs(admin, sessions)
                await asyncio.sleep(2.5)  # their tasks stop at their next write
                if not lat:
                    print(f"{level:>5} no steps")
                    continue
                p50 = statistics.median(lat)
                p95 = lat[int(0.95 * (len(lat) - 1))]
                baseline = baseline or p50
                print(
                    f"{level:>5} {steps / args.window:>8.1f} {p50:>8.1f} {p95:>8.1f} "
                    f"{p50 / baseline:>8.2f}x"
                )
                if p50 >= 2 * baseline:
                    below = f" (under 2x at {last_under})" if last_under else ""
                    print(f"step latency doubled at {level} concurrent runs{below}")
                    break
                last_under = level
            else:
                print(f"step latency did not double up to {last_under} concurrent runs")

            # Takeover: a replica process drives the runs, is SIGKILLed, and this one (with
            # its lease loop running) takes them over when the leases expire.
            await replica.stop()
            environ = {
                **os.environ,
                "KAFKA_BOOTSTRAP_SERVERS": servers.kafka_bootstrap,
                "KAFKA_TOPIC_PREFIX": prefix,
                "APP_DATABASE_URL": app_dsn,
                "DATABASE_URL": admin_dsn,
                "OPENAI_BASE_URL": llm_server.base_url,
                "EXAMMENTOR_LOG_LEVEL": "ERROR",
                "EXAMMENTOR_REPLICA_NAME": "bench-killed",
                "EXAMMENTOR_LEASE_TTL_S": "2",
                "EXAMMENTOR_LEASE_POLL_S": "0.2",
            }
            victim = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "services.autopilot.app", cwd=ROOT, env=environ
            )
            count = args.takeover_sessions
            sessions = await start_runs(pool, admin, user, count)
            async with asyncio.timeout(60):
                while (  # noqa: ASYNC110 - polls the database
                    await admin.fetchval(
                        "SELECT count(*) FROM autopilot_leases WHERE owner = 'bench-killed' "
                        "AND session_id = ANY($1::uuid[])",
                        sessions,
                    )
                    < count
                ):
                    await asyncio.sleep(0.05)
            await asyncio.sleep(2.0)
            steps_at_kill = {
                r["session_id"]: r["steps_count"]
                for r in await admin.fetch(
                    "SELECT session_id, steps_count FROM autopilot_runs "
                    "WHERE session_id = ANY($1::uuid[])",
                    sessions,
                )
            }
            victim.send_signal(signal.SIGKILL)
            await victim.wait()
            killed = time.perf_counter()
            heir = Worker(
                AutopilotSettings(
                    lease_ttl_s=2, lease_poll_s=0.2, replica_name="bench-b", **common
                ),
                install_handlers,
            )
            await heir.start()
            resumed: dict[uuid.UUID, float] = {}
            async with asyncio.timeout(120):
                while len(resumed) < count:
                    rows = await admin.fetch(
                        "SELECT session_id, steps_count FROM autopilot_runs "
                        "WHERE session_id = ANY($1::uuid[])",
                        sessions,
                    )
                    for r in rows:
                        if r["session_id"] not in resumed and (
                            r["steps_count"] > steps_at_kill[r["session_id"]]
                        ):
                            resumed[r["session_id"]] = time.perf_counter() - killed
                    await asyncio.sleep(0.05)
            waits = sorted(resumed.values())
            print(
                f"takeover of {count} runs after SIGKILL (lease ttl 2 s, poll 0.2 s): "
                f"first step on the other replica after p50 {statistics.median(waits):.2f} s, "
                f"max {waits[-1]:.2f} s"
            )
            await stop_runs(admin, sessions)
            await heir.stop()
        finally:
            await pool.close()
            for worker in standins:
                await worker.stop()
            await admin.close()
            admin = await asyncpg.connect(servers.admin_dsn)
            await admin.execute(f'DROP DATABASE "{database}" WITH (FORCE)')
            await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
