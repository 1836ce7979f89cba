"""A worker holds many commands at once: one session's commands stay in order, different
sessions' run side by side (also on one partition), a slow one holds only its own session,
and a crash with hundreds in hand loses none and applies none twice.

The worker is the crash tests' process (``tests.fakes.llm_worker``: the kit's real worker
with one command, ``test.ask``, that waits on the model), on topics of each test's own with
ONE partition, so every command shares it. The scripted model counts the calls it answers at
once; overlap is asserted on that count, never on time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from exammentor.contracts.envelope import CommandEnvelope
from exammentor.messaging.consumer import encode_command
from exammentor.messaging.result_relay import RelayChunk
from exammentor.messaging.topic_admin import command_topic, ensure_topics
from tests.conftest import SessionEnv
from tests.fakes.scripted_openai import Content, Delay, Reply, ScriptedOpenAI
from tests.infra import ROOT, python, unique_name
from tests.integration.conftest import RelayProbe

pytestmark = pytest.mark.integration


@dataclass
class Scene:
    """A one-partition command topic of the test's own, a student, and a worker launcher."""

    env: SessionEnv
    prefix: str
    user_id: uuid.UUID
    reply_to: str
    db: asyncpg.Connection
    producer: AIOKafkaProducer

    @property
    def topic(self) -> str:
        """The command topic the worker consumes."""
        return command_topic(self.prefix, "tutor")

    async def ask(self, question: str, session_id: uuid.UUID | None = None) -> CommandEnvelope:
        """A ``test.ask`` command with its pending request row, as the gateway makes them.
        Its key is ``session_id`` (the student's own id without one)."""
        envelope = CommandEnvelope(
            type="test.ask",
            request_id=uuid.uuid4(),
            user_id=self.user_id,
            session_id=session_id,
            reply_to=self.reply_to,
            payload={"question": question},
        )
        await self.db.execute(
            "INSERT INTO requests (id, user_id, kind) VALUES ($1, $2, 'test.ask')",
            envelope.request_id,
            self.user_id,
        )
        return envelope

    async def send(self, envelopes: list[CommandEnvelope]) -> None:
        """Publishes the commands together (one batch on the wire), keyed as the gateway does."""
        sent = [
            await self.producer.send(self.topic, encode_command(e), key=e.key) for e in envelopes
        ]
        await asyncio.gather(*sent)

    async def worker(self, llm_url: str, **extra: str) -> asyncio.subprocess.Process:
        """Starts a worker process on the scene's topic."""
        environ = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.env.servers.kafka_bootstrap,
            "KAFKA_TOPIC_PREFIX": self.prefix,
            "APP_DATABASE_URL": self.env.app_dsn,
            "DATABASE_URL": self.env.admin_dsn,
            "OPENAI_BASE_URL": llm_url,
            "OPENAI_MAX_RETRIES": "0",
            "EXAMMENTOR_SERVICE_NAME": "tutor",
            "EXAMMENTOR_LOG_LEVEL": "WARNING",
            **extra,
        }
        return await asyncio.create_subprocess_exec(
            python(), "-m", "tests.fakes.llm_worker", cwd=ROOT, env=environ
        )


@pytest.fixture
async def scene(
    test_env: SessionEnv,
    relay_probe: RelayProbe,
    admin_db: asyncpg.Connection,
    producer: AIOKafkaProducer,
) -> Scene:
    """A fresh one-partition topic and a student."""
    prefix = unique_name("conc")
    await ensure_topics(
        test_env.kafka().model_copy(update={"topic_prefix": prefix, "partitions": 1})
    )
    user_id = uuid.uuid4()
    await admin_db.execute(
        "INSERT INTO users (id, name, password_hash) VALUES ($1, $2, 'x')", user_id, prefix
    )
    return Scene(test_env, prefix, user_id, relay_probe.address, admin_db, producer)


@contextlib.asynccontextmanager
async def running(worker: asyncio.subprocess.Process) -> AsyncIterator[None]:
    """Stops the worker with SIGTERM at the end (it drains and exits cleanly)."""
    try:
        yield
    finally:
        if worker.returncode is None:
            worker.send_signal(signal.SIGTERM)
            await asyncio.wait_for(worker.wait(), 60)


class Waiters:
    """One relay waiter per command, registered before the commands are sent."""

    def __init__(self, probe: RelayProbe, envelopes: list[CommandEnvelope]) -> None:
        self._probe = probe
        self._envelopes = envelopes
        self._stack = contextlib.ExitStack()
        self.queues: dict[uuid.UUID, asyncio.Queue[RelayChunk]] = {}

    def __enter__(self) -> Waiters:
        for envelope in self._envelopes:
            rid = envelope.request_id
            self.queues[rid] = self._stack.enter_context(self._probe.hub.waiter(rid))
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    async def final(self, envelope: CommandEnvelope, timeout_s: float = 120) -> RelayChunk:
        """The command's final chunk."""
        queue = self.queues[envelope.request_id]
        (chunk,) = await self._probe.finals(queue, 1, timeout_s=timeout_s)
        return chunk

    async def all(self, timeout_s: float = 180) -> list[RelayChunk]:
        """Every command's final chunk, in the order the commands were given."""
        return await asyncio.gather(*(self.final(e, timeout_s) for e in self._envelopes))


async def _until(condition: Any, timeout_s: float = 90) -> None:
    """Polls a cheap in-memory condition of the scripted server (it runs in a thread)."""
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.05)


def _question(body: dict[str, Any]) -> str:
    return str(body["messages"][-1]["content"])


async def test_one_sessions_fifty_commands_sent_at_once_are_applied_in_order(
    scene: Scene, relay_probe: RelayProbe, admin_db: asyncpg.Connection
) -> None:
    # Every fifth answer of the session takes 0.3 s, the rest none: a worker that ran the
    # session's commands side by side would finish and commit them out of order.
    def answer(body: dict[str, Any]) -> Reply:
        question = _question(body)
        slow = question.startswith("s") and int(question[1:]) % 5 == 0
        return Delay(0.3 if slow else 0, then=Content(f"answer {question}"))

    session = uuid.uuid4()
    async with ScriptedOpenAI(default=answer) as model:
        mine = [await scene.ask(f"s{n}", session) for n in range(50)]
        # Ten other sessions' commands on the same partition, in between the session's.
        others = [await scene.ask(f"o{n}", uuid.uuid4()) for n in range(10)]
        order = [*(x for pair in zip(mine, others, strict=False) for x in pair), *mine[10:]]
        worker = await scene.worker(model.base_url)
        async with running(worker):
            with Waiters(relay_probe, mine + others) as waiters:
                await scene.send(order)
                finals = await waiters.all()
        asked = [_question(r.body) for r in model.chat_requests]
    assert [f.data for f in finals] == [
        {"answer": f"answer {e.payload['question']}"} for e in mine + others
    ]
    # The model was asked the session's questions one after another, in order ...
    assert [q for q in asked if q.startswith("s")] == [f"s{n}" for n in range(50)]
    # ... their transactions committed in that order (the inbox) ...
    inbox = await admin_db.fetch(
        "SELECT command_id FROM inbox WHERE command_id = ANY($1::uuid[]) ORDER BY applied_at",
        [e.command_id for e in mine],
    )
    assert [r["command_id"] for r in inbox] == [e.command_id for e in mine]
    # ... and their events left in that order (outbox ids follow commit order per user).
    events = await admin_db.fetch(
        "SELECT envelope->>'request_id' AS request_id FROM outbox "
        "WHERE envelope->>'session_id' = $1 ORDER BY id",
        str(session),
    )
    assert [r["request_id"] for r in events] == [str(e.request_id) for e in mine]


async def test_commands_of_different_sessions_on_one_partition_run_side_by_side(
    scene: Scene, relay_probe: RelayProbe
) -> None:
    students = 8
    async with ScriptedOpenAI(default=Delay(600)) as model:  # every call hangs
        envelopes = [await scene.ask(f"q{n}", uuid.uuid4()) for n in range(students)]
        worker = await scene.worker(model.base_url, EXAMMENTOR_SHUTDOWN_GRACE_S="1")
        async with running(worker):
            await scene.send(envelopes)
            # All of them reach the model together: none waits for another's answer.
            await _until(lambda: model.answering == students)
            assert len(model.chat_requests) == students


async def test_a_slow_command_does_not_hold_another_sessions_on_the_same_partition(
    scene: Scene, relay_probe: RelayProbe, admin_db: asyncpg.Connection
) -> None:
    # The first student's command waits on a call that does not end (as the autopilot's
    # answer waits for quiz.grade); the next ones are answered at once.
    async with ScriptedOpenAI(default=Content("quick")) as model:
        model.script(Delay(600))
        slow = await scene.ask("slow", uuid.uuid4())
        quick = [await scene.ask(f"q{n}", uuid.uuid4()) for n in range(3)]
        worker = await scene.worker(model.base_url, EXAMMENTOR_SHUTDOWN_GRACE_S="1")
        async with running(worker):
            with Waiters(relay_probe, quick) as waiters:
                await scene.send([slow])
                await _until(lambda: model.answering == 1)
                await scene.send(quick)
                finals = await waiters.all()
            # The quick ones are done while the slow one is still with the model.
            assert model.answering == 1
            status = await admin_db.fetchval(
                "SELECT status FROM requests WHERE id = $1", slow.request_id
            )
    assert [f.data for f in finals] == [{"answer": "quick"}] * 3
    assert status == "running"


async def test_sigkill_with_two_hundred_commands_in_hand_then_restart_applies_each_once(
    scene: Scene, relay_probe: RelayProbe, admin_db: asyncpg.Connection
) -> None:
    count = 200
    async with ScriptedOpenAI(default=Delay(600)) as model:
        envelopes = [await scene.ask(f"q{n}", uuid.uuid4()) for n in range(count)]
        # The model-call bound above the count, so every command in hand is in its call.
        first = await scene.worker(model.base_url, OPENAI_MAX_CONCURRENCY=str(count))
        try:
            await scene.send(envelopes)
            # All 200 are in hand at once (each waiting on the model) when the worker dies.
            await _until(lambda: model.answering == count, timeout_s=180)
        finally:
            first.send_signal(signal.SIGKILL)
            await first.wait()
        ids = [e.command_id for e in envelopes]
        assert (
            await admin_db.fetchval(
                "SELECT count(*) FROM inbox WHERE command_id = ANY($1::uuid[])", ids
            )
            == 0
        )

        model.set_default(Content("answered"))
        with Waiters(relay_probe, envelopes) as waiters:
            second = await scene.worker(model.base_url)
            async with running(second):
                finals = await waiters.all(timeout_s=240)
    assert [f.data for f in finals] == [{"answer": "answered"}] * count
    applied = await admin_db.fetch(
        "SELECT command_id, count(*) AS n FROM inbox WHERE command_id = ANY($1::uuid[]) "
        "GROUP BY command_id",
        ids,
    )
    assert sorted((r["command_id"], r["n"]) for r in applied) == sorted((i, 1) for i in ids)
    per_request = await admin_db.fetch(
        "SELECT r.status, (SELECT count(*) FROM outbox o "
        "  WHERE o.envelope->>'request_id' = r.id::text) AS events "
        "FROM requests r WHERE r.id = ANY($1::uuid[])",
        [e.request_id for e in envelopes],
    )
    assert [(r["status"], r["events"]) for r in per_request] == [("done", 1)] * count
    assert second.returncode == 0
