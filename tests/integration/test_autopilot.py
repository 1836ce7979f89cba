"""The autopilot through the gateway, against stand-in tutor and quiz workers on the scripted
model (``tests/fakes/autopilot_standins.py``): a whole run with the watch stream, control
that acts at once, skipped timeouts, refusals, and one driver per run across replicas.

Each test gets a topic prefix of its own, so its workers are the only consumers there.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest

from exammentor.contracts.autopilot import client_phase
from exammentor.messaging.topic_admin import ensure_topics
from exammentor.ops import migrate
from exammentor.settings import LLMSettings, WorkerSettings
from exammentor.worker import Worker
from services.autopilot.driver import AutopilotDriver
from services.autopilot.handlers import install_handlers as autopilot_handlers
from services.autopilot.settings import AutopilotSettings
from services.gateway.app import Gateway
from services.gateway.settings import GatewaySettings
from tests.conftest import SessionEnv
from tests.fakes.autopilot_standins import CORRECT_INDEX, install_quiz, install_tutor
from tests.fakes.scripted_openai import Content, ScriptedOpenAI
from tests.infra import unique_name
from tests.upgrade.database import app_dsn, scratch_database

pytestmark = pytest.mark.integration

PLAN = {
    "exam_name": "Physics",
    "total_days": 1,
    "overview": "",
    "schedule": [
        {
            "day": 1,
            "theme": "Mechanics",
            "topics": [
                {"name": "Kinematics", "difficulty": "easy", "rationale": ""},
                {"name": "Laws of Motion", "difficulty": "medium", "rationale": ""},
            ],
            "estimated_hours": 2,
        }
    ],
    "critical_topics": [],
}


def settings_for(
    env: SessionEnv, cls: type[Any], prefix: str, llm: LLMSettings, **extra: Any
) -> Any:
    """Settings of one process of a test's own topic prefix."""
    kafka = env.kafka().model_copy(update={"topic_prefix": prefix})
    return cls(
        kafka=kafka,
        db=env.db(),
        llm=llm,
        ops_port=0,
        shutdown_grace_s=5.0,
        **extra,
    )


@dataclass
class Scene:
    """A gateway, stand-in tutor and quiz, and autopilot replicas on a prefix of their own."""

    env: SessionEnv
    prefix: str
    llm: ScriptedOpenAI
    gateway: Gateway
    workers: list[Worker[Any]] = field(default_factory=list)
    replicas: list[Worker[Any]] = field(default_factory=list)

    @property
    def llm_settings(self) -> LLMSettings:
        """The scripted model endpoint, no retries."""
        return LLMSettings(base_url=self.llm.base_url, max_retries=0)

    def autopilot_settings(self, **extra: Any) -> AutopilotSettings:
        """Short timers for tests."""
        values: dict[str, Any] = {
            "lease_ttl_s": 2.0,
            "lease_poll_s": 0.2,
            "answer_timeout_seconds": 30,
            **extra,
        }
        settings: AutopilotSettings = settings_for(
            self.env, AutopilotSettings, self.prefix, self.llm_settings, **values
        )
        return settings

    async def add_replica(self, **extra: Any) -> AutopilotDriver:
        """One more in-process autopilot replica; returns its driver."""
        worker = Worker(self.autopilot_settings(**extra), autopilot_handlers)
        await worker.start()
        self.replicas.append(worker)
        assert worker.resources is not None
        driver = worker.resources.background[0]
        assert isinstance(driver, AutopilotDriver)
        return driver

    @property
    def base_url(self) -> str:
        """The gateway's HTTP address."""
        return f"http://127.0.0.1:{self.gateway.http_port}"


@pytest.fixture
async def scripted_llm() -> AsyncIterator[ScriptedOpenAI]:
    """A scripted model endpoint answering every call with a short text."""
    async with ScriptedOpenAI() as fake:
        fake.set_default(Content("Velocity is the rate of change of position."))
        yield fake


@pytest.fixture(scope="module")
async def scene_env(test_env: SessionEnv) -> AsyncIterator[SessionEnv]:
    """The session's servers with a database of the module's own: an autopilot replica claims
    the runs of its whole database, so the session stack's (another topic prefix, the
    embedded model) must not see the scenes' runs."""
    async with scratch_database(test_env.servers.admin_dsn, "exammentor_ap_") as dsn:
        await migrate.upgrade(dsn)
        yield dataclasses.replace(test_env, admin_dsn=dsn, app_dsn=app_dsn(dsn))


@pytest.fixture
async def admin_db(scene_env: SessionEnv) -> AsyncIterator[asyncpg.Connection]:
    """An owner connection to the scenes' database (this module's, not the session's)."""
    conn = await asyncpg.connect(scene_env.admin_dsn)
    yield conn
    await conn.close()


async def _active_runs(env: SessionEnv) -> set[tuple[str, str]]:
    conn = await asyncpg.connect(env.admin_dsn)
    try:
        rows = await conn.fetch(
            "SELECT session_id, status FROM autopilot_runs WHERE status IN ('running', 'paused')"
        )
    finally:
        await conn.close()
    return {(str(r["session_id"]), r["status"]) for r in rows}


@pytest.fixture
async def scene(scene_env: SessionEnv, scripted_llm: ScriptedOpenAI) -> AsyncIterator[Scene]:
    """The scene, with no autopilot replica yet."""
    test_env = scene_env
    active_before = await _active_runs(test_env)
    prefix = unique_name("ap")
    await ensure_topics(test_env.kafka().model_copy(update={"topic_prefix": prefix}))
    gateway = Gateway(
        settings_for(
            test_env,
            GatewaySettings,
            prefix,
            LLMSettings(),
            http_port=0,
            grpc_port=0,
            relay_port=0,
            request_timeout_s=60,
        )
    )
    await gateway.start()
    found = Scene(test_env, prefix, scripted_llm, gateway)
    llm = found.llm_settings
    for name, install in (("tutor", install_tutor), ("quiz", install_quiz)):
        worker = Worker(
            settings_for(test_env, WorkerSettings, prefix, llm, service_name=name), install
        )
        await worker.start()
        found.workers.append(worker)
    yield found
    for worker in [*found.replicas, *found.workers]:
        await worker.stop()
    await gateway.stop()
    # A run a test leaves running or paused would be claimed by the next autopilot replica
    # on this database and carried on in later tests: every test ends the runs it starts.
    left = await _active_runs(test_env) - active_before
    assert not left, f"runs this test left running or paused: {sorted(left)}"


@pytest.fixture
async def http(scene: Scene) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the scene's gateway."""
    async with httpx.AsyncClient(base_url=scene.base_url, timeout=60) as client:
        yield client


async def student(http: httpx.AsyncClient) -> dict[str, str]:
    """A new user's Authorization header."""
    reply = await http.post(
        "/api/users/register",
        json={"name": f"s-{uuid.uuid4().hex[:8]}", "password": "s3cret-pass"},
    )
    assert reply.status_code == 201, reply.text
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


async def start_run(
    http: httpx.AsyncClient, auth: dict[str, str], **body: Any
) -> tuple[str, dict[str, Any]]:
    """Starts a run in a new study session; returns the session id and the reply."""
    reply = await http.post(
        "/api/autopilot/start",
        json={"study_plan": PLAN, "duration_minutes": 30, **body},
        headers=auth,
    )
    assert reply.status_code == 200, reply.text
    started = reply.json()
    return started["session_id"], started


async def status(http: httpx.AsyncClient, auth: dict[str, str], session: str) -> dict[str, Any]:
    """The run's status."""
    reply = await http.get(f"/api/autopilot/status/{session}", headers=auth)
    assert reply.status_code == 200, reply.text
    found: dict[str, Any] = reply.json()
    return found


async def until(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    session: str,
    check: Callable[[dict[str, Any]], bool],
    timeout_s: float = 60,
) -> dict[str, Any]:
    """Polls the status until ``check`` holds."""
    async with asyncio.timeout(timeout_s):
        while True:
            found = await status(http, auth, session)
            if check(found):
                return found
            await asyncio.sleep(0.1)


def waiting(found: dict[str, Any]) -> bool:
    """A question waits for an answer."""
    return bool(found["awaiting_input"])


def finished(found: dict[str, Any]) -> bool:
    """The run is over."""
    return found["status"] in ("completed", "stopped", "failed")


async def answer_all(
    http: httpx.AsyncClient, auth: dict[str, str], session: str, *, wrong_first: bool = True
) -> dict[str, Any]:
    """Answers every question until the run ends: the first one wrong, the rest right."""
    answered = 0
    while True:
        found = await until(http, auth, session, lambda s: waiting(s) or finished(s))
        if finished(found):
            return found
        question = found["current_question"]
        assert "correct_option_index" not in question
        index = (CORRECT_INDEX + 1) % 4 if (wrong_first and answered == 0) else CORRECT_INDEX
        reply = await http.post(
            f"/api/autopilot/answer/{session}",
            json={"question_id": question["id"], "answer_index": index},
            headers=auth,
        )
        assert reply.status_code == 200, reply.text
        assert reply.json() == {"status": "answer_received"}
        answered += 1


def model_calls_expected(steps: list[dict[str, Any]]) -> int:
    """Lessons and diagnoses are one model call each on the stand-ins."""
    return sum(1 for s in steps if s["action"] in ("lesson", "diagnose"))


def assert_contiguous_once(steps: list[dict[str, Any]]) -> None:
    """Steps numbered 1..n, and no driver action recorded twice."""
    assert [s["number"] for s in steps] == list(range(1, len(steps) + 1))
    actions = [s["data"]["action_id"] for s in steps if "action_id" in s["data"]]
    assert len(actions) == len(set(actions)), actions
    assert actions == sorted(actions)


async def test_a_whole_run_end_to_end_with_the_watch_stream(
    scene: Scene, http: httpx.AsyncClient, admin_db: asyncpg.Connection
) -> None:
    await scene.add_replica()
    auth = await student(http)
    session, started = await start_run(http, auth, exam_type="jee")
    assert started["status"] == "running"
    assert started["target_duration_minutes"] == 30
    assert started["run_number"] == 1

    lines: list[dict[str, Any]] = []

    async def watch() -> None:
        async with http.stream("GET", f"/api/autopilot/watch/{session}", headers=auth) as reply:
            assert reply.status_code == 200
            assert reply.headers["content-type"].startswith("application/x-ndjson")
            async for line in reply.aiter_lines():
                if line:
                    lines.append(json.loads(line))

    watcher = asyncio.create_task(watch())
    final = await answer_all(http, auth, session)
    await asyncio.wait_for(watcher, 30)

    assert final["status"] == "completed"
    assert final["topics_completed"] == ["Kinematics", "Laws of Motion"]
    steps = final["steps"]
    assert_contiguous_once(steps)
    actions = [s["action"] for s in steps]
    assert actions[0] == "start"
    assert actions[-1] == "complete"
    quizzes = actions.count("quiz")
    assert quizzes >= 2
    assert actions.count("lesson") == 2 * quizzes
    assert actions.count("answer") == 3 * quizzes
    assert actions.count("diagnose") == 1  # the one wrong answer, nothing else
    assert actions.count("update_mastery") == quizzes
    choose = [s for s in steps if s["action"] == "choose_topic"]
    assert choose[0]["data"]["topic"] == "Kinematics"
    assert choose[0]["reasoning"]
    # The watch stream: every step once, in seq order, the last one the end.
    assert [line["seq"] for line in lines] == list(range(1, len(steps) + 1))
    assert lines[-1]["status"] == "completed"
    # One model call per lesson and diagnosis: nothing repeated.
    assert len(scene.llm.chat_requests) == model_calls_expected(steps)
    events = await admin_db.fetch(
        "SELECT envelope->>'type' AS type FROM outbox WHERE envelope->>'session_id' = $1",
        session,
    )
    types = [e["type"] for e in events]
    assert types.count("autopilot.step") == len(steps)
    assert types.count("autopilot.started") == 1
    assert types.count("autopilot.completed") == 1

    # A finished session starts a fresh run; the status is the new run's.
    again = await http.post(
        f"/api/autopilot/start?session_id={session}",
        json={"study_plan": PLAN, "duration_minutes": 5},
        headers=auth,
    )
    assert again.status_code == 200, again.text
    assert again.json()["run_number"] == 2
    fresh = await status(http, auth, session)
    assert fresh["run_number"] == 2
    assert fresh["steps"][0]["action"] == "start"
    # Both topics are mastered now (the learner model remembers): run 2 ends at once.
    second = await until(http, auth, session, finished)
    assert second["status"] == "completed"
    assert "mastery" in second["end_reason"]
    # Run 1's history stays readable through the watch stream.
    history = await http.get(f"/api/autopilot/watch/{session}?run=1", headers=auth)
    old = [json.loads(line) for line in history.text.splitlines() if line]
    assert [e["step"] for e in old] == steps


async def test_pause_during_an_answer_wait_acts_at_once_and_resume_keeps_the_question(
    scene: Scene, http: httpx.AsyncClient
) -> None:
    await scene.add_replica()
    auth = await student(http)
    session, _ = await start_run(http, auth)
    before = await until(http, auth, session, waiting)
    question = before["current_question"]["id"]

    paused = await http.post(f"/api/autopilot/pause/{session}", headers=auth)
    assert paused.status_code == 200, paused.text
    assert paused.json() == {"status": "paused", "session_id": session}
    now = await status(http, auth, session)
    assert now["status"] == "paused"
    assert now["awaiting_input"] is False
    frozen = now["elapsed_seconds"]
    await asyncio.sleep(1.5)
    later = await status(http, auth, session)
    assert later["elapsed_seconds"] == frozen, "paused time is not study time"
    refused = await http.post(
        f"/api/autopilot/answer/{session}",
        json={"question_id": question, "answer_index": 1},
        headers=auth,
    )
    assert refused.status_code == 400
    assert "paused" in refused.json()["detail"]["message"]
    again = await http.post(f"/api/autopilot/pause/{session}", headers=auth)
    assert again.status_code == 400

    resumed = await http.post(f"/api/autopilot/resume/{session}", headers=auth)
    assert resumed.json() == {"status": "running", "session_id": session}
    after = await status(http, auth, session)
    assert after["current_question"]["id"] == question
    assert after["elapsed_seconds"] < frozen + 1.0

    stop = await http.post(f"/api/autopilot/stop/{session}", headers=auth)
    assert stop.json() == {"status": "stopped", "session_id": session}
    ended = await status(http, auth, session)
    assert ended["status"] == "stopped"
    assert ended["current_phase"] == "finished"
    assert ended["awaiting_input"] is False
    assert [s["action"] for s in ended["steps"]][-3:] == ["pause", "resume", "stop"]
    gone = await http.post(f"/api/autopilot/stop/{session}", headers=auth)
    assert gone.status_code == 400


async def test_a_timed_out_wait_is_recorded_as_skipped_never_graded(
    scene: Scene, http: httpx.AsyncClient
) -> None:
    await scene.add_replica(answer_timeout_seconds=1)
    auth = await student(http)
    session, _ = await start_run(http, auth)
    found = await until(
        http, auth, session, lambda s: sum(x["action"] == "skip" for x in s["steps"]) >= 3
    )
    skips = [s for s in found["steps"] if s["action"] == "skip"]
    assert all(s["data"]["answer_index"] is None for s in skips)
    assert "skipped, not graded" in skips[0]["reasoning"]
    assert not any(s["action"] == "diagnose" for s in found["steps"])
    await http.post(f"/api/autopilot/stop/{session}", headers=auth)


async def test_bad_input_is_refused_with_the_reason_and_the_run_unchanged(
    scene: Scene, http: httpx.AsyncClient
) -> None:
    await scene.add_replica()
    auth = await student(http)
    other = await student(http)
    session, _ = await start_run(http, auth)

    again = await http.post(
        f"/api/autopilot/start?session_id={session}", json={"study_plan": PLAN}, headers=auth
    )
    assert again.status_code == 400
    assert again.json()["detail"]["code"] == "autopilot_active"
    foreign = await http.post(
        f"/api/autopilot/start?session_id={session}", json={"study_plan": PLAN}, headers=other
    )
    assert foreign.status_code == 404
    assert (await http.get(f"/api/autopilot/status/{session}", headers=other)).status_code == 404
    assert (await http.post(f"/api/autopilot/pause/{session}", headers=other)).status_code == 404
    unknown = uuid.uuid4()
    assert (await http.get(f"/api/autopilot/status/{unknown}", headers=auth)).status_code == 404
    empty = {**PLAN, "schedule": []}
    no_topics = await http.post("/api/autopilot/start", json={"study_plan": empty}, headers=auth)
    assert no_topics.status_code == 422
    assert "no topics" in no_topics.json()["detail"]["message"]
    too_long = await http.post(
        "/api/autopilot/start", json={"study_plan": PLAN, "duration_minutes": 500}, headers=auth
    )
    assert too_long.status_code == 422
    assert "240" in too_long.json()["detail"]["message"]

    found = await until(http, auth, session, waiting)
    question = found["current_question"]
    cases = [
        ({"question_id": "nope", "answer_index": 1}, "not a question of this quiz"),
        ({"question_id": question["id"], "answer_index": 7}, "out of range"),
    ]
    for body, reason in cases:
        reply = await http.post(f"/api/autopilot/answer/{session}", json=body, headers=auth)
        assert reply.status_code == 400, reply.text
        assert reason in reply.json()["detail"]["message"]
    same = await status(http, auth, session)
    assert same["steps"] == found["steps"]
    assert same["current_question"] == question
    await http.post(f"/api/autopilot/stop/{session}", headers=auth)
    no_wait = await http.post(
        f"/api/autopilot/answer/{session}",
        json={"question_id": question["id"], "answer_index": 1},
        headers=auth,
    )
    assert no_wait.status_code == 400


async def test_the_original_pages_shapes_user_id_index_alone_and_quizzing(
    scene: Scene, http: httpx.AsyncClient
) -> None:
    await scene.add_replica()
    registered = await http.post(
        "/api/users/register",
        json={"name": f"s-{uuid.uuid4().hex[:8]}", "password": "s3cret-pass"},
    )
    user_id = registered.json()["user_id"]
    auth = {"Authorization": f"Bearer {registered.json()['access_token']}"}

    # The original's page sends the student's id: another's is refused, nothing started.
    foreign = await http.post(
        "/api/autopilot/start",
        json={"study_plan": PLAN, "user_id": str(uuid.uuid4())},
        headers=auth,
    )
    assert foreign.status_code == 403
    assert foreign.json()["detail"]["code"] == "user_mismatch"
    session, _ = await start_run(http, auth, user_id=user_id)

    # A waiting question is "quizzing" by the original's name; phase_detail is precise.
    found = await until(http, auth, session, waiting)
    assert (found["current_phase"], found["phase_detail"]) == ("quizzing", "awaiting_answer")
    newest = len(found["steps"])
    async with http.stream(
        "GET", f"/api/autopilot/watch/{session}?after={newest - 1}", headers=auth
    ) as stream:
        event = json.loads(await anext(stream.aiter_lines()))
    assert event["seq"] == newest
    assert event["current_phase"] == client_phase(event["step"]["phase"])
    assert event["phase_detail"] == event["step"]["phase"]

    # {answer_index} alone answers the question that waits.
    question = found["current_question"]["id"]
    reply = await http.post(
        f"/api/autopilot/answer/{session}", json={"answer_index": CORRECT_INDEX}, headers=auth
    )
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"status": "answer_received"}
    graded = await until(
        http, auth, session, lambda s: any(x["action"] == "answer" for x in s["steps"])
    )
    answer = next(x for x in graded["steps"] if x["action"] == "answer")
    assert (answer["data"]["question_id"], answer["data"]["answer_index"]) == (
        question,
        CORRECT_INDEX,
    )

    await http.post(f"/api/autopilot/stop/{session}", headers=auth)
    # No question waits: the original's 400, with a declared code and the reason.
    none = await http.post(
        f"/api/autopilot/answer/{session}", json={"answer_index": 0}, headers=auth
    )
    assert none.status_code == 400
    assert none.json()["detail"]["code"] == "answer_refused"
    assert "stopped" in none.json()["detail"]["message"]
    ended = await status(http, auth, session)
    assert not any(
        x["action"] == "answer" and x["number"] > answer["number"] for x in ended["steps"]
    )
