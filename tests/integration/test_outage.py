"""A database outage is waited out: commands in flight while Postgres does not answer end
done once it is back, none dead-lettered, none failed, each applied once.

The outage is a proxy between one worker and Postgres that drops every connection and turns
new ones away for 10 s: the worker sees exactly what a restart of its database looks like,
and no other test's server goes down.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from exammentor import metrics
from exammentor.contracts.envelope import CommandEnvelope
from exammentor.messaging.consumer import encode_command
from exammentor.messaging.topic_admin import command_topic, dead_letter_topic, ensure_topics
from exammentor.worker import Worker
from services.planner.handlers import install_handlers
from services.planner.settings import PlannerSettings
from tests.conftest import SessionEnv
from tests.fakes.tcp_proxy import TcpProxy
from tests.infra import unique_name
from tests.integration.conftest import RelayProbe

pytestmark = pytest.mark.integration

COMMANDS = 50
OUTAGE_S = 10.0


async def _records_on(env: SessionEnv, topic: str) -> int:
    """How many records a topic holds (the sum of its partitions' end offsets)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=env.servers.kafka_bootstrap,
        group_id=f"count-{uuid.uuid4().hex[:6]}",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    return sum(ends.values())


@pytest.fixture
async def database_proxy(test_env: SessionEnv) -> AsyncIterator[tuple[TcpProxy, str]]:
    """Postgres behind a proxy; yields it and the app role's DSN through it."""
    parts = urlsplit(test_env.app_dsn)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    port = await proxy.start()
    user = parts.username or "exammentor_app"
    yield proxy, f"postgresql://{user}@127.0.0.1:{port}{parts.path}"
    await proxy.stop()


async def test_commands_in_flight_through_a_database_outage_all_end_done(
    test_env: SessionEnv,
    database_proxy: tuple[TcpProxy, str],
    producer: AIOKafkaProducer,
    relay_probe: RelayProbe,
    admin_db: asyncpg.Connection,
) -> None:
    proxy, dsn = database_proxy
    prefix = unique_name("outage")
    kafka = test_env.kafka().model_copy(update={"topic_prefix": prefix})
    await ensure_topics(kafka)
    settings = PlannerSettings(
        kafka=kafka,
        db=test_env.db().model_copy(update={"app_database_url": dsn}),
        ops_port=0,
        shutdown_grace_s=5.0,
    )
    user_id = uuid.uuid4()
    await admin_db.execute(
        "INSERT INTO users (id, name, password_hash) VALUES ($1, $2, 'x')", user_id, prefix
    )
    commands = [
        CommandEnvelope(
            type="system.echo",
            request_id=uuid.uuid4(),
            # One key per command: they spread over every partition and consumer.
            session_id=uuid.uuid4(),
            user_id=user_id,
            reply_to=relay_probe.address,
            payload={"text": f"through the outage {i}"},
        )
        for i in range(COMMANDS)
    ]
    for command in commands:
        await admin_db.execute(
            "INSERT INTO requests (id, user_id, kind) VALUES ($1, $2, 'system.echo')",
            command.request_id,
            user_id,
        )

    retried = metrics.COMMANDS.labels("planner", "system.echo", "retried")
    retried_before = retried._value.get()
    worker = Worker(settings, install_handlers)
    await worker.start()
    queues = [relay_probe.hub.waiter(c.request_id) for c in commands]
    waiting = [q.__enter__() for q in queues]
    try:
        proxy.cut()
        for command in commands:
            await producer.send_and_wait(
                command_topic(prefix, "planner"), encode_command(command), key=command.key
            )
        # The worker meets the outage (it tries to connect and is turned away) ...
        await asyncio.wait_for(proxy.turned_away.wait(), 60)
        await asyncio.sleep(OUTAGE_S)  # ... for as long as the outage lasts ...
        proxy.restore()
        # ... and every command then ends with its result.
        finals = [(await relay_probe.finals(queue, 1, timeout_s=120))[0] for queue in waiting]
    finally:
        for q in queues:
            q.__exit__(None, None, None)
        await worker.stop()

    assert [f.kind for f in finals] == ["result"] * COMMANDS
    # Waited out, not retried as failures: no attempt was spent, nothing reached the DLQ.
    assert retried._value.get() == retried_before
    assert await _records_on(test_env, dead_letter_topic(prefix, "planner")) == 0
    assert sorted(f.data["echo"] for f in finals) == sorted(c.payload["text"] for c in commands)
    ids = [c.command_id for c in commands]
    requests = [c.request_id for c in commands]
    found = await admin_db.fetchrow(
        "SELECT (SELECT count(*) FROM inbox WHERE command_id = ANY($1::uuid[])) AS applied, "
        "(SELECT count(*) FROM requests WHERE id = ANY($2::uuid[]) AND status = 'done') AS done, "
        "(SELECT count(*) FROM outbox WHERE envelope->>'user_id' = $3) AS events, "
        "(SELECT count(*) FROM dead_letters WHERE consumer = $4) AS letters",
        ids,
        requests,
        str(user_id),
        f"{prefix}.planner",
    )
    assert dict(found) == {"applied": COMMANDS, "done": COMMANDS, "events": COMMANDS, "letters": 0}
