"""A worker killed with SIGKILL between receiving a command and committing it: after a
restart the command is applied exactly once in effect.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from exammentor.contracts.envelope import CommandEnvelope
from exammentor.messaging.consumer import FAULT_EXIT_CODE, encode_command
from exammentor.messaging.dead_letters import ReplayError, list_dead_letters, replay_dead_letter
from exammentor.messaging.topic_admin import command_topic, ensure_topics
from tests.conftest import SessionEnv
from tests.fakes.scripted_openai import Content, Delay, ScriptedOpenAI, Status
from tests.infra import ROOT, python, unique_name
from tests.integration.conftest import RelayProbe

pytestmark = pytest.mark.integration


async def _start_worker(
    env: SessionEnv, prefix: str, llm_url: str, **extra: str
) -> asyncio.subprocess.Process:
    # The production consumer settings, as deployed.
    environ = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": env.servers.kafka_bootstrap,
        "KAFKA_TOPIC_PREFIX": prefix,
        "APP_DATABASE_URL": env.app_dsn,
        "DATABASE_URL": env.admin_dsn,
        "OPENAI_BASE_URL": llm_url,
        "OPENAI_MAX_RETRIES": "0",
        "EXAMMENTOR_SERVICE_NAME": "tutor",
        "EXAMMENTOR_LOG_LEVEL": "WARNING",
        **extra,
    }
    return await asyncio.create_subprocess_exec(
        python(), "-m", "tests.fakes.llm_worker", cwd=ROOT, env=environ
    )


async def _wait_for(condition: object, timeout_s: float = 60) -> None:
    """Polls a cheap in-memory condition of the scripted server (it runs in a thread)."""
    async with asyncio.timeout(timeout_s):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.05)


@pytest.fixture
async def scripted_llm() -> AsyncIterator[ScriptedOpenAI]:
    """A scripted model endpoint."""
    async with ScriptedOpenAI() as fake:
        yield fake


@dataclass
class Scene:
    """Topics of a test's own and a student, for one crash-test worker."""

    prefix: str
    user_id: uuid.UUID
    reply_to: str
    db: asyncpg.Connection

    @property
    def topic(self) -> str:
        """The command topic the worker consumes."""
        return command_topic(self.prefix, "tutor")

    async def ask(self, question: str) -> CommandEnvelope:
        """A ``test.ask`` command with its pending request row, as the gateway makes them."""
        envelope = CommandEnvelope(
            type="test.ask",
            request_id=uuid.uuid4(),
            user_id=self.user_id,
            reply_to=self.reply_to,
            payload={"question": question},
        )
        await self.db.execute(
            "INSERT INTO requests (id, user_id, kind) VALUES ($1, $2, 'test.ask')",
            envelope.request_id,
            self.user_id,
        )
        return envelope


@pytest.fixture
async def scene(
    test_env: SessionEnv, relay_probe: RelayProbe, admin_db: asyncpg.Connection
) -> Scene:
    """A fresh topic prefix and student."""
    prefix = unique_name("crash")
    await ensure_topics(test_env.kafka().model_copy(update={"topic_prefix": prefix}))
    user_id = uuid.uuid4()
    await admin_db.execute(
        "INSERT INTO users (id, name, password_hash) VALUES ($1, $2, 'x')", user_id, prefix
    )
    return Scene(prefix, user_id, relay_probe.address, admin_db)


async def test_sigkill_before_commit_then_restart_applies_once(
    test_env: SessionEnv,
    scene: Scene,
    scripted_llm: ScriptedOpenAI,
    producer: AIOKafkaProducer,
    relay_probe: RelayProbe,
    admin_db: asyncpg.Connection,
) -> None:
    envelope = await scene.ask("What is osmosis?")
    # The first call hangs (the worker is killed while waiting); the retry is answered.
    scripted_llm.script(Delay(600), Content("Water moving across a membrane."))

    first = await _start_worker(test_env, scene.prefix, scripted_llm.base_url)
    try:
        await producer.send_and_wait(scene.topic, encode_command(envelope), key=envelope.key)
        await _wait_for(lambda: len(scripted_llm.chat_requests) == 1)
    finally:
        first.send_signal(signal.SIGKILL)
        await first.wait()
    assert first.returncode == -signal.SIGKILL
    applied = await admin_db.fetchval(
        "SELECT count(*) FROM inbox WHERE command_id = $1", envelope.command_id
    )
    assert applied == 0, "the killed worker must not have committed"

    with relay_probe.hub.waiter(envelope.request_id) as queue:
        second = await _start_worker(test_env, scene.prefix, scripted_llm.base_url)
        try:
            (final,) = await relay_probe.finals(queue, 1, timeout_s=120)
        finally:
            second.send_signal(signal.SIGTERM)
            await second.wait()

    assert final.kind == "result"
    assert final.data == {"answer": "Water moving across a membrane."}
    assert len(scripted_llm.chat_requests) == 2
    counts = await admin_db.fetchrow(
        "SELECT (SELECT count(*) FROM inbox WHERE command_id = $1) AS inbox, "
        "(SELECT count(*) FROM outbox WHERE envelope->>'request_id' = $2) AS events, "
        "(SELECT status FROM requests WHERE id = $3) AS status",
        envelope.command_id,
        str(envelope.request_id),
        envelope.request_id,
    )
    assert dict(counts) == {"inbox": 1, "events": 1, "status": "done"}
    assert second.returncode == 0, "SIGTERM drains and exits cleanly"


async def test_sigterm_drains_the_command_in_hand_before_exiting(
    test_env: SessionEnv,
    scene: Scene,
    scripted_llm: ScriptedOpenAI,
    producer: AIOKafkaProducer,
    relay_probe: RelayProbe,
    admin_db: asyncpg.Connection,
) -> None:
    envelope = await scene.ask("Define diffusion.")
    # The model answers after 3 s: SIGTERM arrives while the handler waits for it.
    scripted_llm.script(Delay(3, then=Content("Particles spreading out.")))
    worker = await _start_worker(test_env, scene.prefix, scripted_llm.base_url)
    with relay_probe.hub.waiter(envelope.request_id) as queue:
        try:
            await producer.send_and_wait(scene.topic, encode_command(envelope), key=envelope.key)
            await _wait_for(lambda: len(scripted_llm.chat_requests) == 1)
            worker.send_signal(signal.SIGTERM)
            (final,) = await relay_probe.finals(queue, 1)
        finally:
            await asyncio.wait_for(worker.wait(), 60)
    assert final.data == {"answer": "Particles spreading out."}
    assert worker.returncode == 0
    status = await admin_db.fetchval(
        "SELECT status FROM requests WHERE id = $1", envelope.request_id
    )
    assert status == "done"
    # The drained command was committed, so nothing is left for the next consumer.
    assert len(scripted_llm.chat_requests) == 1


async def test_a_command_failing_every_attempt_is_dead_lettered_with_the_reason(
    test_env: SessionEnv,
    scene: Scene,
    scripted_llm: ScriptedOpenAI,
    producer: AIOKafkaProducer,
    relay_probe: RelayProbe,
    admin_db: asyncpg.Connection,
) -> None:
    failing = await scene.ask("Will you fail?")
    following = await scene.ask("ok?")
    # Three attempts (KAFKA_MAX_ATTEMPTS default) all meet a 500; then the model recovers.
    scripted_llm.script(Status(500), Status(500), Status(500))
    scripted_llm.set_default(Content("Yes."))
    worker = await _start_worker(test_env, scene.prefix, scripted_llm.base_url)
    try:
        with (
            relay_probe.hub.waiter(failing.request_id) as failing_queue,
            relay_probe.hub.waiter(following.request_id) as following_queue,
        ):
            for envelope in (failing, following):
                await producer.send_and_wait(
                    scene.topic, encode_command(envelope), key=envelope.key
                )
            (failed,) = await relay_probe.finals(failing_queue, 1)
            (answered,) = await relay_probe.finals(following_queue, 1)
            # The cause is gone (the model answers again): the operator replays the letter.
            (pending,) = [
                d for d in await list_dead_letters(test_env.admin_dsn) if d.topic == scene.topic
            ]
            await replay_dead_letter(test_env.admin_dsn, test_env.kafka(), pending.id)
            (replayed,) = await relay_probe.finals(failing_queue, 1)
            with pytest.raises(ReplayError, match="replayed at"):
                await replay_dead_letter(test_env.admin_dsn, test_env.kafka(), pending.id)
    finally:
        worker.send_signal(signal.SIGTERM)
        await asyncio.wait_for(worker.wait(), 60)

    assert failed.kind == "error"
    assert failed.data["code"] == "dead_lettered"
    # The exception is the operator's business (the letter below); the client gets the id.
    assert "LLMUnavailable" not in failed.data["message"]
    assert str(failing.request_id) in failed.data["message"]
    assert answered.data == {"answer": "Yes."}
    letter = await admin_db.fetchrow(
        "SELECT reason, attempts FROM dead_letters WHERE topic = $1", scene.topic
    )
    assert letter["attempts"] == 3
    assert "LLMUnavailable" in letter["reason"]
    assert pending.attempts == 3
    assert replayed.data == {"answer": "Yes."}
    request = await admin_db.fetchrow(
        "SELECT status, error FROM requests WHERE id = $1", failing.request_id
    )
    assert (request["status"], request["error"]) == ("done", None)
    assert [d.topic for d in await list_dead_letters(test_env.admin_dsn)].count(scene.topic) == 0


async def _committed_offset(env: SessionEnv, scene: Scene, partition: int) -> int:
    """The tutor group's committed offset of one partition of the scene's topic (-1: none)."""
    from aiokafka import TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=env.servers.kafka_bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(f"{scene.prefix}.tutor")
    finally:
        await admin.close()
    found = offsets.get(TopicPartition(scene.topic, partition))
    return found.offset if found is not None else -1


async def _group_stable(env: SessionEnv, group: str, members: int, timeout_s: float = 90) -> None:
    """Waits until the consumer group has ``members`` members and no rebalance in progress."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=env.servers.kafka_bootstrap)
    await admin.start()
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                (response,) = await admin.describe_consumer_groups([group])
                (_, _, state, _, _, found) = response.groups[0]
                if state == "Stable" and len(found) == members:
                    return
                await asyncio.sleep(0.2)
    finally:
        await admin.close()


async def test_sigterm_with_a_second_consumer_in_the_group_commits_before_leaving(
    test_env: SessionEnv,
    scene: Scene,
    producer: AIOKafkaProducer,
    relay_probe: RelayProbe,
) -> None:
    # Two replicas with the production consumer setting, each on a model server of its own,
    # so the server that gets the call names the replica holding the command.
    async with ScriptedOpenAI() as model_a, ScriptedOpenAI() as model_b:
        for model in (model_a, model_b):
            model.script(Delay(3, then=Content("Particles spreading out.")))
        workers = {
            model_a: await _start_worker(test_env, scene.prefix, model_a.base_url),
            model_b: await _start_worker(test_env, scene.prefix, model_b.base_url),
        }
        envelope = await scene.ask("Define diffusion.")
        try:
            # Both replicas joined (one consumer each): the command is not caught in the
            # join's rebalance, only in the one SIGTERM starts.
            await _group_stable(test_env, f"{scene.prefix}.tutor", members=2)
            with relay_probe.hub.waiter(envelope.request_id) as queue:
                sent = await producer.send_and_wait(
                    scene.topic, encode_command(envelope), key=envelope.key
                )
                await _wait_for(lambda: model_a.chat_requests or model_b.chat_requests)
                holder = model_a if model_a.chat_requests else model_b
                other = model_b if holder is model_a else model_a
                workers[holder].send_signal(signal.SIGTERM)
                (final,) = await relay_probe.finals(queue, 1)
                await asyncio.wait_for(workers[holder].wait(), 60)
            assert final.data == {"answer": "Particles spreading out."}
            assert workers[holder].returncode == 0
            # The drained replica committed the offset before its consumers left, so the
            # replica that takes its partitions over has nothing to run again.
            assert await _committed_offset(test_env, scene, sent.partition) == sent.offset + 1
            assert len(holder.chat_requests) == 1
            assert len(other.chat_requests) == 0
        finally:
            for worker in workers.values():
                if worker.returncode is None:
                    worker.send_signal(signal.SIGTERM)
                    await asyncio.wait_for(worker.wait(), 60)


async def test_a_crash_between_the_database_commit_and_the_offset_commit(
    test_env: SessionEnv,
    scene: Scene,
    scripted_llm: ScriptedOpenAI,
    producer: AIOKafkaProducer,
    relay_probe: RelayProbe,
    admin_db: asyncpg.Connection,
) -> None:
    envelope = await scene.ask("What is a mole?")
    scripted_llm.script(Content("Avogadro's number of particles."))
    with relay_probe.hub.waiter(envelope.request_id) as queue:
        first = await _start_worker(
            test_env, scene.prefix, scripted_llm.base_url, EXAMMENTOR_FAULT_AFTER_COMMIT="true"
        )
        await producer.send_and_wait(scene.topic, encode_command(envelope), key=envelope.key)
        # Killed at the fault point: the transaction is in, the offset is not.
        assert await asyncio.wait_for(first.wait(), 120) == FAULT_EXIT_CODE
        committed = await admin_db.fetchrow(
            "SELECT (SELECT count(*) FROM inbox WHERE command_id = $1) AS inbox, "
            "(SELECT status FROM requests WHERE id = $2) AS status",
            envelope.command_id,
            envelope.request_id,
        )
        assert dict(committed) == {"inbox": 1, "status": "done"}

        second = await _start_worker(test_env, scene.prefix, scripted_llm.base_url)
        try:
            # Redelivered, answered from the inbox: the waiting client gets its result.
            (final,) = await relay_probe.finals(queue, 1, timeout_s=120)
        finally:
            second.send_signal(signal.SIGTERM)
            await asyncio.wait_for(second.wait(), 60)
    assert final.kind == "result"
    assert final.data == {"answer": "Avogadro's number of particles."}
    assert len(scripted_llm.chat_requests) == 1  # the model was not asked again
    effects = await admin_db.fetchrow(
        "SELECT (SELECT count(*) FROM inbox WHERE command_id = $1) AS inbox, "
        "(SELECT count(*) FROM outbox WHERE envelope->>'request_id' = $2) AS events",
        envelope.command_id,
        str(envelope.request_id),
    )
    assert dict(effects) == {"inbox": 1, "events": 1}


async def test_an_attempt_past_the_command_deadline_fails_and_is_dead_lettered(
    test_env: SessionEnv,
    scene: Scene,
    scripted_llm: ScriptedOpenAI,
    producer: AIOKafkaProducer,
    relay_probe: RelayProbe,
    admin_db: asyncpg.Connection,
) -> None:
    envelope = await scene.ask("A question the model never answers.")
    scripted_llm.script(Delay(600))  # a hung model call
    worker = await _start_worker(
        test_env,
        scene.prefix,
        scripted_llm.base_url,
        KAFKA_COMMAND_DEADLINE_S="1",
        KAFKA_MAX_ATTEMPTS="1",
    )
    try:
        with relay_probe.hub.waiter(envelope.request_id) as queue:
            await producer.send_and_wait(scene.topic, encode_command(envelope), key=envelope.key)
            (failed,) = await relay_probe.finals(queue, 1, timeout_s=60)
    finally:
        worker.send_signal(signal.SIGTERM)
        await asyncio.wait_for(worker.wait(), 60)
    # Ended by its own deadline (a failed attempt), long before the poll interval, and not
    # waited out as if the database were down.
    assert failed.data["code"] == "dead_lettered"
    reason = await admin_db.fetchval(
        "SELECT reason FROM dead_letters WHERE topic = $1", scene.topic
    )
    assert reason.startswith("CommandDeadlineExceeded: test.ask@1 ran past 1 s")
