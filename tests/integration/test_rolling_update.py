"""A rolling update with mixed versions: commands of a version the running worker does not
know yet are parked (not failed, not lost), and applied once by the upgraded worker when it
starts. And every command family keeps its earlier versions beside a newer one."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from exammentor.contracts.commands import Command, EchoPayload, EchoResult
from exammentor.contracts.envelope import CommandEnvelope
from exammentor.messaging.consumer import (
    PARKED,
    CommandContext,
    CommandRouter,
    Outcome,
    encode_command,
)
from exammentor.messaging.topic_admin import command_topic, ensure_topics
from exammentor.worker import Worker, WorkerResources
from services.planner.handlers import install_handlers
from services.planner.settings import PlannerSettings
from tests.conftest import SessionEnv
from tests.infra import unique_name
from tests.integration.conftest import RelayProbe

pytestmark = pytest.mark.integration

ECHO_V2: Command[EchoPayload, EchoResult] = Command(
    "system.echo", 2, "planner", EchoPayload, EchoResult, summary="The next release's echo."
)
COMMANDS = 8


def install_next_release(
    router: CommandRouter, resources: WorkerResources[PlannerSettings]
) -> None:
    """The planner as the next release ships it: everything it had, plus echo v2."""
    install_handlers(router, resources)

    @router.handle(ECHO_V2)
    async def _echo_v2(ctx: CommandContext, payload: EchoPayload) -> Outcome[EchoResult]:
        return Outcome(result=EchoResult(echo=payload.text.upper(), service=ctx.service))


async def test_commands_of_a_newer_version_wait_for_the_upgrade_and_apply_once(
    test_env: SessionEnv,
    producer: AIOKafkaProducer,
    relay_probe: RelayProbe,
    admin_db: asyncpg.Connection,
) -> None:
    prefix = unique_name("roll")
    kafka = test_env.kafka().model_copy(update={"topic_prefix": prefix})
    await ensure_topics(kafka)

    def settings() -> PlannerSettings:
        return PlannerSettings(kafka=kafka, db=test_env.db(), ops_port=0, shutdown_grace_s=5)

    user_id = uuid.uuid4()
    await admin_db.execute(
        "INSERT INTO users (id, name, password_hash) VALUES ($1, $2, 'x')", user_id, prefix
    )
    commands = [
        CommandEnvelope(
            type="system.echo",
            version=2,
            request_id=uuid.uuid4(),
            user_id=user_id,
            reply_to=relay_probe.address,
            payload={"text": f"newer {i}"},
        )
        for i in range(COMMANDS)
    ]
    for command in commands:
        await admin_db.execute(
            "INSERT INTO requests (id, user_id, kind) VALUES ($1, $2, 'system.echo')",
            command.request_id,
            user_id,
        )

    # The old release runs while a newer gateway already sends echo v2.
    old = Worker(settings(), install_handlers)
    await old.start()
    with relay_probe.hub.waiter(commands[-1].request_id) as last_queue:
        # A v1 echo after them shows the old worker has read past the v2 ones.
        marker = CommandEnvelope(
            type="system.echo",
            request_id=uuid.uuid4(),
            user_id=user_id,
            reply_to=relay_probe.address,
            payload={"text": "v1 still works"},
        )
        await admin_db.execute(
            "INSERT INTO requests (id, user_id, kind) VALUES ($1, $2, 'system.echo')",
            marker.request_id,
            user_id,
        )
        with relay_probe.hub.waiter(marker.request_id) as marker_queue:
            for command in [*commands, marker]:
                # One key: one partition, in order, so the marker comes after every v2.
                await producer.send_and_wait(
                    command_topic(prefix, "planner"), encode_command(command), key=b"one"
                )
            (marker_final,) = await relay_probe.finals(marker_queue, 1)
        assert marker_final.data == {"echo": "v1 still works", "service": "planner"}
        await old.stop()
        parked: list[Any] = await admin_db.fetch(
            "SELECT reason FROM dead_letters WHERE consumer = $1", f"{prefix}.planner"
        )
        assert len(parked) == COMMANDS
        assert all(r["reason"].startswith(PARKED) for r in parked)
        statuses = await admin_db.fetch(
            "SELECT status FROM requests WHERE id = ANY($1::uuid[])",
            [c.request_id for c in commands],
        )
        assert {r["status"] for r in statuses} == {"pending"}  # waiting, not failed
        assert last_queue.empty()  # the client was not told anything went wrong

        # The upgraded release starts (the migrations are the same) and takes them over.
        new = Worker(settings(), install_next_release)
        await new.start()
        try:
            (last,) = await relay_probe.finals(last_queue, 1, timeout_s=60)
        finally:
            await new.stop()
    assert last.data == {"echo": f"NEWER {COMMANDS - 1}", "service": "planner"}
    done = await admin_db.fetchrow(
        "SELECT (SELECT count(*) FROM requests WHERE id = ANY($1::uuid[]) AND status = 'done') "
        "AS done, (SELECT count(*) FROM inbox WHERE command_id = ANY($2::uuid[])) AS applied, "
        "(SELECT count(*) FROM dead_letters WHERE consumer = $3 AND replayed_at IS NULL) "
        "AS waiting",
        [c.request_id for c in commands],
        [c.command_id for c in commands],
        f"{prefix}.planner",
    )
    assert dict(done) == {"done": COMMANDS, "applied": COMMANDS, "waiting": 0}
