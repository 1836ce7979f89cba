"""A restored backup, served: what an operator does after losing a database, end to end.

A gateway and the planner, tutor and quiz workers store a student's plan, tutor chat and
answered quiz in a database of their own. The operator's commands (``exammentor backup
create``, then ``exammentor backup restore`` into a new database) move it; the original
database is dropped. A new gateway and planner on the restored database, on a topic prefix
of their own, then serve it: the student logs in with the same password and reads exactly
what they had, over HTTP and over gRPC; a student registered after the restore sees none of
it and can plan their own (the services' role, its grants, the sequences and the outbox
came back with the rows).

On the scripted model server, down (a plan is made without the model): the test is about
the data, not the prose.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import grpc
import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from google.protobuf.message import Message
from grpc import aio

from exammentor._proto import (
    gateway_pb2,
    gateway_pb2_grpc,
    quiz_pb2,
    quiz_pb2_grpc,
    tutor_pb2,
    tutor_pb2_grpc,
)
from exammentor.messaging.topic_admin import ensure_topics, event_topic
from exammentor.ops import backup, migrate
from exammentor.settings import LLMSettings
from exammentor.worker import Worker
from services.gateway.app import Gateway
from services.gateway.settings import GatewaySettings
from tests.conftest import SessionEnv
from tests.fakes.scripted_openai import ScriptedOpenAI, Status
from tests.infra import ROOT, python, unique_name
from tests.integration.conftest import Stack, register, start_worker
from tests.upgrade.database import app_dsn, scratch_database

pytestmark = pytest.mark.integration

PASSWORD = "s3cret-pass"
CHAT_TOPIC = "optics"
QUIZ_TOPIC = "geo-1"
QUESTION = {
    "id": "q1",
    "text": "What is the capital of Chile?",
    "options": ["Santiago", "Valparaiso", "Concepcion", "Antofagasta"],
    "correct_option_index": 0,
    "explanation": "Santiago is the capital.",
    "concept_tested": "capitals",
}


@dataclasses.dataclass(frozen=True)
class StudentView:
    """Everything a student reads back: the HTTP bodies and the gRPC messages."""

    http: dict[str, Any]
    grpc: dict[str, Message]


@dataclasses.dataclass(frozen=True)
class RestoredStack:
    """The stack serving the restored database, and what the student saw before the backup."""

    stack: Stack
    env: SessionEnv
    student_name: str
    student_id: str
    plan_id: str
    before: StudentView


def _on_database(test_env: SessionEnv, owner_dsn: str, prefix: str) -> SessionEnv:
    """The session's servers, pointed at another database and a topic prefix of its own."""
    return dataclasses.replace(
        test_env,
        admin_dsn=owner_dsn,
        app_dsn=app_dsn(owner_dsn),
        topic_prefix=unique_name(prefix),
    )


@asynccontextmanager
async def _serving(
    env: SessionEnv, llm: LLMSettings, services: Sequence[str]
) -> AsyncIterator[Stack]:
    """A gateway and the named workers on ``env``, stopped on the way out."""
    await ensure_topics(env.kafka())
    gateway = Gateway(
        env.service_settings(
            GatewaySettings, http_port=0, grpc_port=0, relay_port=0, request_timeout_s=60
        )
    )
    await gateway.start()
    workers: list[Worker[Any]] = []
    try:
        for name in services:
            workers.append(await start_worker(env, name, llm))
        yield Stack(gateway, workers)
    finally:
        for worker in workers:
            await worker.stop()
        await gateway.stop()


async def _operator(*args: str, database_url: str) -> str:
    """``exammentor ARGS`` as a separate process, as the operator runs it; its output."""
    proc = await asyncio.create_subprocess_exec(
        python(),
        "-m",
        "exammentor.ops.cli",
        *args,
        env={**os.environ, "DATABASE_URL": database_url},
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, (out + err).decode()
    return out.decode()


def _bearer(auth: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return (("authorization", auth["Authorization"]),)


def _ok(reply: httpx.Response) -> Any:
    assert reply.status_code == 200, reply.text
    return reply.json()


async def _plan(http: httpx.AsyncClient, auth: dict[str, str], goal: str) -> str:
    """A verified plan stored through the planner; its id."""
    body = _ok(
        await http.post(
            "/api/plan/generate-verified-with-history",
            json={"syllabus_text": "1. Grammar\n2. Essays\n3. Comprehension", "goal": goal},
            headers=auth,
        )
    )
    assert body["verification_summary"]["is_valid"] is True
    return str(body["plan_id"])


async def _study(http: httpx.AsyncClient, auth: dict[str, str], user_id: str) -> str:
    """A plan, a tutor chat and a quiz answered right, each written through its worker."""
    plan_id = await _plan(http, auth, "English in a week")
    chat = {
        "topic_id": CHAT_TOPIC,
        "user_id": user_id,
        "messages": [
            {"role": "user", "content": "What is refraction?"},
            {"role": "ai", "content": "Light bending at a boundary."},
        ],
        "explanation": "# Refraction\nLight bends.",
    }
    _ok(await http.post("/api/tutor/chat", json=chat, headers=auth))
    _ok(
        await http.post(
            "/api/quiz/persistence",
            json={"user_id": "me", "topic_id": QUIZ_TOPIC, "questions": [QUESTION]},
            headers=auth,
        )
    )
    saved = _ok(
        await http.get(
            "/api/quiz/persistence", params={"user_id": "me", "topic_id": QUIZ_TOPIC}, headers=auth
        )
    )
    graded = _ok(
        await http.post(
            "/api/quiz/evaluate",
            json={"question_id": saved["questions"][0]["id"], "student_answer_index": 0},
            headers=auth,
        )
    )
    assert graded["is_correct"] is True
    return plan_id


async def _view(
    http: httpx.AsyncClient, channel: aio.Channel, auth: dict[str, str], plan_id: str
) -> StudentView:
    """What the student reads: their plans, chat, saved quiz, mastery and requests."""
    metadata = _bearer(auth)
    gateway = gateway_pb2_grpc.StudyGatewayStub(channel)
    tutor = tutor_pb2_grpc.TutorStub(channel)
    quiz = quiz_pb2_grpc.QuizStub(channel)
    reads = {
        "plans": ("/api/plans", {}),
        "plan": (f"/api/plans/{plan_id}", {}),
        "chat": ("/api/tutor/chat", {"topic_id": CHAT_TOPIC}),
        "quiz": ("/api/quiz/persistence", {"user_id": "me", "topic_id": QUIZ_TOPIC}),
        "mastery": ("/api/learner/mastery", {}),
        "requests": ("/api/requests", {}),
    }
    bodies = {
        name: _ok(await http.get(path, params=params, headers=auth))
        for name, (path, params) in reads.items()
    }
    messages: dict[str, Message] = {
        "plans": await gateway.ListPlans(gateway_pb2.PlanListRequest(), metadata=metadata),
        "plan": await gateway.GetPlan(gateway_pb2.PlanRef(plan_id=plan_id), metadata=metadata),
        "chat": await tutor.GetChat(tutor_pb2.ChatQuery(topic_id=CHAT_TOPIC), metadata=metadata),
        "quiz": await quiz.GetSavedQuiz(
            quiz_pb2.SavedQuizQuery(user_id="me", topic_id=QUIZ_TOPIC), metadata=metadata
        ),
        "mastery": await quiz.GetMastery(quiz_pb2.LearnerMasteryRequest(), metadata=metadata),
        "requests": await gateway.ListRequests(gateway_pb2.RequestListRequest(), metadata=metadata),
    }
    return StudentView(bodies, messages)


def _grpc_address(stack: Stack) -> str:
    return f"127.0.0.1:{stack.gateway.grpc_port}"


@pytest.fixture(scope="module")
async def restored(
    test_env: SessionEnv, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RestoredStack]:
    """The student's data written, backed up, its database dropped, restored and served."""
    admin = test_env.servers.admin_dsn
    archive = tmp_path_factory.mktemp("restore-served") / "exammentor.tar"
    name = f"student-{uuid.uuid4().hex[:8]}"
    async with ScriptedOpenAI(default=Status(503, message="down")) as model:
        llm = LLMSettings(
            base_url=model.base_url,
            max_retries=1,
            repair_attempts=1,
            timeout_s=5,
            backoff_base_s=0.01,
            backoff_max_s=0.05,
        )
        async with scratch_database(admin, "exammentor_srv_") as source:
            await migrate.upgrade(source)
            env = _on_database(test_env, source, "srv")
            async with (
                _serving(env, llm, ["planner", "tutor", "quiz"]) as stack,
                httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http,
                aio.insecure_channel(_grpc_address(stack)) as channel,
            ):
                token = await http.post(
                    "/api/users/register", json={"name": name, "password": PASSWORD}
                )
                assert token.status_code == 201, token.text
                student_id = token.json()["user_id"]
                auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
                plan_id = await _study(http, auth, student_id)
                before = await _view(http, channel, auth, plan_id)
            out = await _operator("backup", "create", "--out", str(archive), database_url=source)
            assert out.startswith(f"wrote {archive}: ")
        # Outbox rows in the backup: a restored id sequence behind them would refuse the
        # next event (see the second test).
        assert backup.read_manifest(archive).tables["public.outbox"].rows > 0
        # The original database is gone: whatever is served below comes from the archive.
        async with scratch_database(admin, "exammentor_rst_") as target:
            out = await _operator(
                "backup", "restore", str(archive), "--database-url", target, database_url=target
            )
            assert out.startswith(f"restored {archive}: ")
            env = _on_database(test_env, target, "rst")
            async with _serving(env, llm, ["planner"]) as stack:
                yield RestoredStack(stack, env, name, student_id, plan_id, before)


@pytest.fixture
async def http(restored: RestoredStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=restored.stack.base_url, timeout=60) as client:
        yield client


@pytest.fixture
async def channel(restored: RestoredStack) -> AsyncIterator[aio.Channel]:
    async with aio.insecure_channel(_grpc_address(restored.stack)) as opened:
        yield opened


async def test_the_student_logs_in_and_reads_exactly_what_they_had(
    restored: RestoredStack, http: httpx.AsyncClient, channel: aio.Channel
) -> None:
    credentials = {"name": restored.student_name, "password": PASSWORD}
    wrong = await http.post("/api/users/login", json={**credentials, "password": "not-it-1"})
    assert wrong.status_code == 401, wrong.text
    token = _ok(await http.post("/api/users/login", json=credentials))
    assert token["user_id"] == restored.student_id
    over_grpc = await gateway_pb2_grpc.StudyGatewayStub(channel).Login(
        gateway_pb2.Credentials(**credentials)
    )
    assert over_grpc.user_id == restored.student_id

    auth = {"Authorization": f"Bearer {token['access_token']}"}
    after = await _view(http, channel, auth, restored.plan_id)
    assert after.http == restored.before.http
    assert after.grpc == restored.before.grpc
    # What was compared holds the data, not empty answers.
    assert [p["plan_id"] for p in after.http["plans"]["plans"]] == [restored.plan_id]
    assert len(after.http["chat"]["messages"]) == 2
    assert after.http["quiz"]["questions"][0]["answered"] is True
    assert sorted(r["kind"] for r in after.http["requests"]["requests"]) == [
        "plan.generate",
        "quiz.grade",
        "quiz.save",
        "tutor.chat.save",
    ]
    grpc_auth = {"Authorization": f"Bearer {over_grpc.access_token}"}
    assert _ok(await http.get("/api/plans", headers=grpc_auth)) == after.http["plans"]


async def test_a_student_registered_after_the_restore_sees_none_of_it_and_plans_their_own(
    restored: RestoredStack, http: httpx.AsyncClient, channel: aio.Channel
) -> None:
    _, other = await register(http)
    assert _ok(await http.get("/api/plans", headers=other)) == {"plans": []}
    hidden = await http.get(f"/api/plans/{restored.plan_id}", headers=other)
    assert hidden.status_code == 404, hidden.text
    chat = _ok(await http.get("/api/tutor/chat", params={"topic_id": CHAT_TOPIC}, headers=other))
    assert chat == {"messages": [], "explanation": None}
    quiz = _ok(
        await http.get(
            "/api/quiz/persistence", params={"user_id": "me", "topic_id": QUIZ_TOPIC}, headers=other
        )
    )
    assert quiz is None  # nothing saved, as the original answered (docs/compatibility.md)
    assert _ok(await http.get("/api/requests", headers=other)) == {"requests": []}
    stub = gateway_pb2_grpc.StudyGatewayStub(channel)
    listed = await stub.ListPlans(gateway_pb2.PlanListRequest(), metadata=_bearer(other))
    assert list(listed.plans) == []
    with pytest.raises(aio.AioRpcError) as missing:
        await stub.GetPlan(gateway_pb2.PlanRef(plan_id=restored.plan_id), metadata=_bearer(other))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND

    # A write through the planner: the services' role writes, the outbox's id sequence is
    # past the restored rows (the fixture checked there were some), and the events leave
    # on the restored stack's topic.
    consumer = AIOKafkaConsumer(
        event_topic(restored.env.topic_prefix, "plan"),
        bootstrap_servers=restored.env.servers.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        plan_id = await _plan(http, other, "English after the restore")
        announced: set[str] = set()
        async with asyncio.timeout(30):
            while announced != {"plan.generated", "plan.verified"}:
                envelope = json.loads((await consumer.getone()).value)
                if envelope["payload"].get("plan_id") == plan_id:
                    announced.add(envelope["type"])
    finally:
        await consumer.stop()
    mine = _ok(await http.get("/api/plans", headers=other))
    assert [p["plan_id"] for p in mine["plans"]] == [plan_id]
    assert plan_id != restored.plan_id
    # ... and it is theirs alone: the restored student's plans are unchanged.
    student = _ok(
        await http.post(
            "/api/users/login", json={"name": restored.student_name, "password": PASSWORD}
        )
    )
    theirs = _ok(
        await http.get("/api/plans", headers={"Authorization": f"Bearer {student['access_token']}"})
    )
    assert theirs == restored.before.http["plans"]
