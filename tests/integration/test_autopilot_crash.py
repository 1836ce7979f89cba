"""SIGKILL of the autopilot worker (a real subprocess) during a lesson and during an answer
wait: after a restart, and with a second replica already running, the run completes with
contiguous steps, none repeated, none lost, and no model call or command repeated. And two
replicas under a burst of 20 sessions: one driver per run.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from typing import Any

import asyncpg
import httpx
import pytest

from tests.fakes.scripted_openai import Content, Delay
from tests.infra import ROOT, python
from tests.integration import test_autopilot as base
from tests.integration.test_autopilot import (
    CORRECT_INDEX,
    Scene,
    assert_contiguous_once,
    finished,
    model_calls_expected,
    start_run,
    status,
    student,
    until,
    waiting,
)

pytestmark = pytest.mark.integration

# The scene's fixtures, shared with the autopilot's other tests.
scripted_llm = base.scripted_llm
scene = base.scene
scene_env = base.scene_env
admin_db = base.admin_db
http = base.http

LEASE_TTL_S = 2.0


async def spawn_replica(scene: Scene, name: str) -> asyncio.subprocess.Process:
    """The autopilot service as a real process (``python -m services.autopilot.app``)."""
    env = scene.env
    environ = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": env.servers.kafka_bootstrap,
        "KAFKA_TOPIC_PREFIX": scene.prefix,
        "APP_DATABASE_URL": env.app_dsn,
        "DATABASE_URL": env.admin_dsn,
        "OPENAI_BASE_URL": scene.llm.base_url,
        "EXAMMENTOR_LOG_LEVEL": "WARNING",
        "EXAMMENTOR_REPLICA_NAME": name,
        "EXAMMENTOR_LEASE_TTL_S": str(LEASE_TTL_S),
        "EXAMMENTOR_LEASE_POLL_S": "0.2",
        "EXAMMENTOR_ANSWER_TIMEOUT_SECONDS": "60",
    }
    return await asyncio.create_subprocess_exec(
        python(), "-m", "services.autopilot.app", cwd=ROOT, env=environ
    )


async def kill(process: asyncio.subprocess.Process) -> None:
    """SIGKILL, no drain."""
    process.send_signal(signal.SIGKILL)
    await process.wait()
    assert process.returncode == -signal.SIGKILL


async def lease_owner(admin_db: asyncpg.Connection, session: str) -> str | None:
    """Who holds the run's lease now."""
    owner: str | None = await admin_db.fetchval(
        "SELECT owner FROM autopilot_leases WHERE session_id = $1::uuid AND expires_at > now()",
        session,
    )
    return owner


async def answer_one(
    http: httpx.AsyncClient, auth: dict[str, str], session: str, index: int
) -> None:
    """Answers the waiting question (retrying while the run changes hands)."""
    found = await until(http, auth, session, waiting)
    reply = await http.post(
        f"/api/autopilot/answer/{session}",
        json={"question_id": found["current_question"]["id"], "answer_index": index},
        headers=auth,
    )
    assert reply.status_code == 200, reply.text


async def test_sigkill_during_a_lesson_and_during_an_answer_wait_loses_and_repeats_nothing(
    scene: Scene, http: httpx.AsyncClient, admin_db: asyncpg.Connection
) -> None:
    # The first lesson's model call takes 3 s: the replica is killed while it waits.
    scene.llm.script(Delay(3, then=Content("Displacement is a vector.")))
    first = await spawn_replica(scene, "replica-a")
    auth = await student(http)
    try:
        session, _ = await start_run(http, auth)
        async with asyncio.timeout(60):
            while len(scene.llm.chat_requests) < 1:
                await asyncio.sleep(0.05)
        assert await lease_owner(admin_db, session) == "replica-a"
    finally:
        await kill(first)
    during = await status(http, auth, session)
    assert during["current_phase"] == "teaching"
    assert not any(s["action"] == "lesson" for s in during["steps"])

    # A restart takes the run over once the dead replica's lease expired.
    second = await spawn_replica(scene, "replica-b")
    backup = None
    try:
        await answer_one(http, auth, session, (CORRECT_INDEX + 1) % 4)
        assert await lease_owner(admin_db, session) == "replica-b"
        # A second replica is already running when the driver dies in an answer wait.
        backup = await scene.add_replica(replica_name="replica-c")
        await until(http, auth, session, waiting)
    finally:
        await kill(second)
    assert await lease_owner(admin_db, session) in (None, "replica-b")

    while True:
        found = await until(http, auth, session, lambda s: waiting(s) or finished(s), 90)
        if finished(found):
            break
        await answer_one(http, auth, session, CORRECT_INDEX)
    assert found["status"] == "completed"
    assert backup is not None
    assert backup.stats.claimed >= 1

    steps = found["steps"]
    assert_contiguous_once(steps)
    actions = [s["action"] for s in steps]
    assert actions.count("lesson") == 2 * actions.count("quiz")
    # No model call repeated: one per lesson and diagnosis, the killed lesson's included.
    assert len(scene.llm.chat_requests) == model_calls_expected(steps)
    # No command applied twice: one request per action key, each applied once.
    # This student's requests only: other tests of the session share the database.
    rows = await admin_db.fetch(
        "SELECT kind, count(*) AS n FROM requests WHERE (kind LIKE 'tutor.%' OR kind LIKE "
        "'quiz.%') AND user_id = (SELECT user_id FROM study_sessions WHERE id = $1::uuid) "
        "GROUP BY kind",
        session,
    )
    kinds = {r["kind"]: r["n"] for r in rows}
    assert kinds["tutor.lesson"] == actions.count("lesson")
    assert kinds["quiz.generate"] == actions.count("quiz")
    inbox = await admin_db.fetch(
        "SELECT consumer, count(*) AS n FROM inbox WHERE consumer LIKE $1 GROUP BY consumer",
        f"{scene.prefix}.%",
    )
    applied = {r["consumer"].rsplit(".", 1)[1]: r["n"] for r in inbox}
    assert applied["tutor"] == actions.count("lesson")


async def test_two_replicas_drive_each_of_20_sessions_alone(
    scene: Scene, http: httpx.AsyncClient, admin_db: asyncpg.Connection
) -> None:
    replicas = [await scene.add_replica(replica_name=f"r{n}") for n in range(2)]
    auth = await student(http)
    sessions = [(await start_run(http, auth, duration_minutes=5))[0] for _ in range(20)]
    founds: list[dict[str, Any]] = []
    for session in sessions:
        founds.append(await until(http, auth, session, waiting, 90))
    held = [driver.held for driver in replicas]
    assert not held[0] & held[1], "a run driven by two replicas"
    assert {str(s) for s in held[0] | held[1]} == set(sessions)
    owners = Counter(
        r["owner"]
        for r in await admin_db.fetch(
            "SELECT owner FROM autopilot_leases WHERE session_id = ANY($1::uuid[])", sessions
        )
    )
    assert sum(owners.values()) == 20
    for found in founds:
        assert_contiguous_once(found["steps"])
        assert [s["action"] for s in found["steps"]] == [
            "start",
            "choose_topic",
            "lesson",
            "lesson",
            "quiz",
        ]
    for session in sessions:
        await http.post(f"/api/autopilot/stop/{session}", headers=auth)
