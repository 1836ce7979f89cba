"""Running a worker service: the one place that wires pool, broker, consumer, outbox relay,
result relay, LLM client and the ops server, and takes them down in order on SIGTERM.

A service's ``app.py`` only names its settings and the function that registers its
handlers::

    def main() -> None:
        run_worker(PlannerSettings(), install_handlers)

The worker is generic over the service's settings class, so handlers get the service's own
settings, read once from the environment at start-up. The service's name is stated once, in
its settings class (``service_name``); topic, consumer group, metrics labels and the commands
it may handle all follow from it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

import asyncpg
import structlog
from faststream.kafka import KafkaBroker
from grpc import aio

from exammentor import metrics
from exammentor._proto import relay_pb2_grpc
from exammentor.db import Pool, create_pool, ping
from exammentor.lifecycle import Lifecycle, serve
from exammentor.llm.client import LLMClient
from exammentor.llm.messages import LLMUsage
from exammentor.logs import configure_logging, get_logger
from exammentor.messaging import pipeline
from exammentor.messaging.consumer import CommandConsumer
from exammentor.messaging.handling import CommandRouter
from exammentor.messaging.kafka import broker_ready, create_broker
from exammentor.messaging.outbox import OutboxRelay
from exammentor.messaging.result_hub import RelayHub
from exammentor.messaging.result_relay import RelayChannels
from exammentor.messaging.topic_admin import missing_topics
from exammentor.ops.routes import HttpServer, Readiness, ops_server
from exammentor.outages import wait_for_database, wait_for_kafka
from exammentor.settings import WorkerSettings
from exammentor.telemetry import configure_tracing

log = get_logger(__name__)


S = TypeVar("S", bound=WorkerSettings)


@runtime_checkable
class SendsCommands(Protocol):
    """Settings of a worker that sends commands to other services (the autopilot): its
    worker runs a result relay of its own, where those services stream their answers."""

    relay_host: str
    relay_port: int
    relay_advertise: str | None


class BackgroundService(Protocol):
    """Work a service runs beside its consumer (the autopilot's driver): started after the
    broker, stopped before the consumer drains."""

    async def start(self) -> None:
        """Starts the work."""

    async def stop(self) -> None:
        """Stops it; what is unfinished is left for another replica."""


@dataclass
class CommandRelay:
    """The relay of a worker that sends commands: who waits on which request, and the
    address that goes into each command's ``reply_to``."""

    hub: RelayHub
    reply_to: str


@dataclass
class WorkerResources(Generic[S]):
    """What a service's handlers may use."""

    settings: S
    pool: Pool
    broker: KafkaBroker
    llm: LLMClient
    relay: CommandRelay | None = None
    """Only for settings that are :class:`SendsCommands`; None otherwise."""
    background: list[BackgroundService] = field(default_factory=list)
    """Filled by ``install``; run for the worker's lifetime."""


InstallHandlers = Callable[[CommandRouter, WorkerResources[S]], None]
"""Registers a service's handlers on its router (``services/<name>/handlers.py``)."""


def usage_recorder(pool: Pool, service: str) -> Callable[[LLMUsage], Any]:
    """An LLM usage sink that stores every call (for cost reports) and counts tokens."""

    async def record(usage: LLMUsage) -> None:
        ids = structlog.contextvars.get_contextvars()
        metrics.LLM_CALLS.labels(service, usage.purpose, usage.outcome).inc()
        metrics.LLM_TOKENS.labels(service, usage.purpose, "prompt").inc(usage.prompt_tokens)
        metrics.LLM_TOKENS.labels(service, usage.purpose, "completion").inc(usage.completion_tokens)
        try:
            async with pool.acquire() as conn:
                await pipeline.record_model_usage(
                    conn,
                    service=service,
                    purpose=usage.purpose,
                    model=usage.model,
                    prompt_tokens=usage.prompt_tokens,
                    completion_tokens=usage.completion_tokens,
                    latency_ms=usage.latency_ms,
                    outcome=usage.outcome,
                    user_id=ids.get("user_id"),
                    request_id=ids.get("request_id"),
                )
        except (OSError, asyncpg.PostgresError):
            log.exception("could not store LLM usage")

    return record


class Worker(Generic[S]):
    """A running worker service; :meth:`start` and :meth:`stop` are also used by tests to
    run services in-process against the real broker and database. :meth:`stop` undoes
    whatever :meth:`start` got done, also after a start that failed half-way.

    Start-up enters each part on the worker's :class:`~exammentor.lifecycle.Lifecycle`, so
    shutdown is start-up reversed: the draining flag, background work, the consumer (stops
    taking commands, drains those in hand), the outbox relay (a last pass over what they
    wrote), the producer, the result relay's channels and server, the ops server, the model
    client, the pool.
    """

    def __init__(self, settings: S, install: InstallHandlers[S]) -> None:
        self.settings = settings
        self._install = install
        self._life = Lifecycle(settings.service_name)
        self.resources: WorkerResources[S] | None = None
        """Set once start-up reached the handlers."""
        self.router: CommandRouter | None = None
        self.ops: HttpServer | None = None
        self.readiness: Readiness | None = None

    async def start(self) -> None:
        """Connects everything and starts consuming."""
        s, life = self.settings, self._life
        configure_tracing(s.service_name)
        await wait_for_database(s.db.app_database_url, deadline_s=s.startup_wait_s)
        await wait_for_kafka(s.kafka.bootstrap_servers, deadline_s=s.startup_wait_s)
        pool = await create_pool(
            s.db.app_database_url, min_size=s.db.pool_min, max_size=s.db.pool_max
        )
        life.on_stop(pool.close)
        llm = LLMClient(s.llm, usage_sink=usage_recorder(pool, s.service_name))
        life.on_stop(llm.aclose)
        broker = create_broker(s.kafka, s.service_name, s.shutdown_grace_s)
        self.readiness = readiness = Readiness(
            s.service_name,
            {"database": lambda: ping(pool), "kafka": lambda: broker_ready(broker)},
        )
        # Made here, so it closes after the drain and /ready says "draining" till then;
        # it serves last, so /ready answers only once the worker consumes.
        self.ops = ops = ops_server(readiness, s.ops_host, s.ops_port)
        life.on_stop(ops.stop)
        relay = await self._start_result_relay() if isinstance(s, SendsCommands) else None
        channels = RelayChannels(s.relay_token.get_secret_value())
        life.on_stop(channels.close)
        self.resources = resources = WorkerResources(s, pool, broker, llm, relay)
        self.router = router = CommandRouter(s.service_name)
        self._install(router, resources)
        consumer = CommandConsumer(
            router=router, broker=broker, pool=pool, settings=s, channels=channels
        )
        # The broker before the consumer: the consumer dead-letters through its producer,
        # which stays open after the consumer left, for the outbox relay's last pass.
        await life.enter(broker.start, broker.stop)
        outbox = OutboxRelay(
            pool,
            broker,
            s.service_name,
            missing_topics=functools.partial(missing_topics, s.kafka.bootstrap_servers),
        )
        # Before the consumer, so it stops after the drain: the events of the commands
        # drained leave in its last pass.
        await life.enter(outbox.start, outbox.stop)

        async def drain() -> None:
            # Commands in hand finish and their offsets commit while the consumer is still
            # in the group; then it leaves.
            await consumer.drain(s.shutdown_grace_s)
            await consumer.stop()

        await life.enter(consumer.start, drain)
        # Commands a newer gateway sent before this replica could handle them.
        await consumer.replay_parked()
        for service in resources.background:
            await life.enter(service.start, service.stop)

        def draining() -> None:
            readiness.draining = True

        life.on_stop(draining)  # the first step of shutdown
        await ops.start()
        log.info("worker started", commands=router.types, ops_port=ops.port)
        if s.generated_secrets:
            log.warning(
                "no relay token set: this run made a random one, so a gateway in another "
                "process refuses this worker's results (they are still stored)",
                unset=s.generated_secrets,
            )

    async def _start_result_relay(self) -> CommandRelay:
        """The result relay of a worker that sends commands (see :class:`SendsCommands`)."""
        s = self.settings
        assert isinstance(s, SendsCommands)
        hub = RelayHub(s.relay_token.get_secret_value())
        server = aio.server()
        relay_pb2_grpc.add_ResultRelayServicer_to_server(hub, server)
        port = server.add_insecure_port(f"{s.relay_host}:{s.relay_port}")
        await self._life.enter(server.start, functools.partial(server.stop, None))
        return CommandRelay(hub, s.relay_advertise or f"{s.relay_host}:{port}")

    async def stop(self) -> None:
        """Drains: stops taking commands, lets in-flight ones finish (up to the grace
        period; an unfinished one is not committed and goes to another replica), relays the
        outbox once more, then closes connections. Safe after a failed or partial start,
        and when called again.
        """
        await self._life.close()
        log.info("worker stopped")


def run_worker(settings: S, install: InstallHandlers[S]) -> None:
    """Runs a worker until SIGTERM or SIGINT, then drains and exits."""
    configure_logging(settings.service_name, settings.log_level, settings.log_format)
    serve(Worker(settings, install))
