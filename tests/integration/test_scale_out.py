"""Scaling a worker out and back in under load: a second replica joins the service's consumer
group, the partitions split between the two, both apply commands, none is applied twice, and
stopping one hands its partitions back without losing a command.

The replicas are in-process workers of the quiz service on topics of this test's own (its
own prefix), so the session's shared stack is not in their group. Their ``system.echo``
handler is slowed to stand for real work (a model call), one partition consumer each.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

from exammentor.contracts.commands import EchoPayload
from exammentor.contracts.envelope import CommandEnvelope
from exammentor.messaging.consumer import CommandContext, CommandRouter, encode_command
from exammentor.messaging.topic_admin import command_topic, ensure_topics
from exammentor.settings import KafkaSettings
from exammentor.worker import Worker, WorkerResources
from services.quiz.settings import QuizSettings
from tests.conftest import SessionEnv
from tests.integration.conftest import RelayProbe

pytestmark = pytest.mark.integration

PARTITIONS = 4
WORK_S = 0.05
"""Time each command's handler takes (stands for I/O such as a model call)."""
BURST = 40


@dataclasses.dataclass
class Replica:
    """One worker process of the service, and the commands its handler applied."""

    name: str
    worker: Worker[Any]
    applied: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)


def _counting(applied: collections.Counter[str]) -> Callable[[CommandRouter, Any], None]:
    """Handlers: the router's own ``system.echo``, slowed and counted per command."""

    def install(router: CommandRouter, _: WorkerResources[Any]) -> None:
        key = ("system.echo", 1)
        spec = router._specs[key]

        async def slow_echo(ctx: CommandContext, payload: EchoPayload) -> Any:
            await asyncio.sleep(WORK_S)
            applied[str(ctx.envelope.command_id)] += 1
            return await spec.handler(ctx, payload)

        router._specs[key] = dataclasses.replace(spec, handler=slow_echo)

    return install


@pytest.fixture
async def kafka(test_env: SessionEnv) -> KafkaSettings:
    settings = test_env.kafka().model_copy(
        update={
            "topic_prefix": f"{test_env.topic_prefix}-scale{uuid.uuid4().hex[:4]}",
            "partitions": PARTITIONS,
            "consumer_workers": 1,
        }
    )
    await ensure_topics(settings)
    return settings


@pytest.fixture
async def replicas(
    test_env: SessionEnv, kafka: KafkaSettings
) -> AsyncIterator[Callable[[str], Any]]:
    started: list[Replica] = []

    async def start(name: str) -> Replica:
        settings = test_env.service_settings(QuizSettings).model_copy(update={"kafka": kafka})
        applied: collections.Counter[str] = collections.Counter()
        worker: Worker[Any] = Worker(settings, _counting(applied))
        await worker.start()
        replica = Replica(name, worker, applied)
        started.append(replica)
        return replica

    yield start
    for replica in started:
        await replica.worker.stop()


async def _group(kafka: KafkaSettings) -> list[set[int]]:
    """The partitions each member of the quiz group holds, as the broker reports them."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    try:
        (response,) = await admin.describe_consumer_groups([f"{kafka.topic_prefix}.quiz"])
    finally:
        await admin.close()
    (group,) = response.groups
    state, members = group[2], group[5]
    if state != "Stable":
        return []
    return [
        {tp.partition for tp in ConsumerProtocolMemberAssignment.decode(m[4]).partitions()}
        for m in members
    ]


async def _until_group(kafka: KafkaSettings, members: int, within_s: float = 60) -> list[set[int]]:
    deadline = time.monotonic() + within_s
    while True:
        found = await _group(kafka)
        if len(found) == members and all(found):
            return found
        assert time.monotonic() < deadline, f"the group never settled on {members}: {found}"
        await asyncio.sleep(0.5)


async def _burst(
    kafka: KafkaSettings,
    producer: AIOKafkaProducer,
    admin_db: asyncpg.Connection,
    user_id: uuid.UUID,
    reply_to: str,
    tag: str,
) -> list[CommandEnvelope]:
    """Publishes ``BURST`` echo commands, as the gateway does (request row, then command)."""
    commands = [
        CommandEnvelope(
            type="system.echo",
            request_id=uuid.uuid4(),
            user_id=user_id,
            reply_to=reply_to,
            # Keys spread over every partition (a user's commands share one otherwise).
            payload={"text": f"{tag}-{i}"},
        )
        for i in range(BURST)
    ]
    await admin_db.executemany(
        "INSERT INTO requests (id, user_id, kind) VALUES ($1, $2, 'system.echo')",
        [(c.request_id, c.user_id) for c in commands],
    )
    topic = command_topic(kafka.topic_prefix, "quiz")
    for i, command in enumerate(commands):
        await producer.send(topic, encode_command(command), partition=i % PARTITIONS)
    await producer.flush()
    return commands


async def _all_done(
    admin_db: asyncpg.Connection, commands: list[CommandEnvelope], within_s: float = 120
) -> float:
    """Waits until every request is done; returns the seconds it took."""
    ids = [c.request_id for c in commands]
    start = deadline = time.monotonic()
    deadline += within_s
    while True:
        done = await admin_db.fetchval(
            "SELECT count(*) FROM requests WHERE id = ANY($1::uuid[]) AND status = 'done'", ids
        )
        if done == len(ids):
            return time.monotonic() - start
        failed = await admin_db.fetch(
            "SELECT id, error FROM requests WHERE id = ANY($1::uuid[]) AND status = 'failed'", ids
        )
        assert not failed, failed
        assert time.monotonic() < deadline, f"{done} of {len(ids)} requests done"
        await asyncio.sleep(0.1)


async def _new_user(admin_db: asyncpg.Connection) -> uuid.UUID:
    user_id = uuid.uuid4()
    await admin_db.execute(
        "INSERT INTO users (id, name, password_hash) VALUES ($1, $2, 'x')",
        user_id,
        f"scale-{user_id.hex[:8]}",
    )
    return user_id


async def test_a_second_replica_splits_the_partitions_and_stopping_it_loses_nothing(
    kafka: KafkaSettings,
    replicas: Callable[[str], Any],
    producer: AIOKafkaProducer,
    relay_probe: RelayProbe,
    admin_db: asyncpg.Connection,
) -> None:
    user_id = await _new_user(admin_db)
    first: Replica = await replicas("first")
    assert await _until_group(kafka, 1) == [set(range(PARTITIONS))]

    alone = await _burst(kafka, producer, admin_db, user_id, relay_probe.address, "alone")
    alone_s = await _all_done(admin_db, alone)

    # A second replica joins under load: the group rebalances and each holds a share.
    second: Replica = await replicas("second")
    together = await _burst(kafka, producer, admin_db, user_id, relay_probe.address, "two")
    shares = await _until_group(kafka, 2)
    assert sorted(len(s) for s in shares) == [PARTITIONS // 2, PARTITIONS // 2]
    assert set.union(*shares) == set(range(PARTITIONS))
    together_s = await _all_done(admin_db, together)
    more = await _burst(kafka, producer, admin_db, user_id, relay_probe.address, "more")
    more_s = await _all_done(admin_db, more)
    assert set(second.applied) & {str(c.command_id) for c in more}, "the second applied none"
    assert set(first.applied) & {str(c.command_id) for c in more}, "the first applied none"

    # Stopping one under load: it finishes what it holds, the rest goes back to the other.
    handover = await _burst(kafka, producer, admin_db, user_id, relay_probe.address, "handover")
    await asyncio.sleep(WORK_S * 4)
    await second.worker.stop()
    assert await _until_group(kafka, 1) == [set(range(PARTITIONS))]
    await _all_done(admin_db, handover)

    # Every command applied once: one inbox row each, and the handlers ran once for each.
    everything = alone + together + more + handover
    ids = [c.command_id for c in everything]
    inbox = await admin_db.fetch(
        "SELECT command_id, count(*) AS n FROM inbox WHERE command_id = ANY($1::uuid[]) "
        "GROUP BY command_id",
        ids,
    )
    assert len(inbox) == len(ids)
    assert {r["n"] for r in inbox} == {1}
    runs = first.applied + second.applied
    assert set(runs) == {str(i) for i in ids}
    assert set(runs.values()) == {1}, {k: v for k, v in runs.items() if v > 1}
    print(
        f"\none replica: {BURST / alone_s:.1f} commands/s; two: {BURST / more_s:.1f} "
        f"commands/s (while joining: {BURST / together_s:.1f}); applied by the second: "
        f"{len(second.applied)} of {len(ids)}"
    )
