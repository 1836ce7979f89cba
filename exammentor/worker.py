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

import asyncio
import functools
import signal
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
from exammentor.llm.client import LLMClient, LLMUsage
from exammentor.logs import configure_logging, get_logger
from exammentor.messaging import pipeline
from exammentor.messaging.consumer import CommandConsumer, CommandRouter
from exammentor.messaging.kafka import broker_ready, create_broker
from exammentor.messaging.outbox import OutboxRelay
from exammentor.messaging.result_relay import RelayChannels, RelayHub
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
    """

    def __init__(self, settings: S, install: InstallHandlers[S]) -> None:
        self.settings = settings
        self._install = install
        self.resources: WorkerResources[S] | None = None
        self.router: CommandRouter | None = None
        self.ops: HttpServer | None = None
        self.readiness: Readiness | None = None
        self._pool: Pool | None = None
        self._broker: KafkaBroker | None = None
        self._llm: LLMClient | None = None
        self._relay: OutboxRelay | None = None
        self._consumer: CommandConsumer | None = None
        self._channels = RelayChannels(settings.relay_token.get_secret_value())
        self._results: aio.Server | None = None
        self._background: list[BackgroundService] = []

    async def start(self) -> None:
        """Connects everything and starts consuming."""
        s = self.settings
        configure_tracing(s.service_name)
        await wait_for_database(s.db.app_database_url, deadline_s=s.startup_wait_s)
        await wait_for_kafka(s.kafka.bootstrap_servers, deadline_s=s.startup_wait_s)
        self._pool = pool = await create_pool(
            s.db.app_database_url, min_size=s.db.pool_min, max_size=s.db.pool_max
        )
        self._broker = broker = create_broker(s.kafka, s.service_name, s.shutdown_grace_s)
        self._llm = llm = LLMClient(s.llm, usage_sink=usage_recorder(pool, s.service_name))
        relay = await self._start_result_relay() if isinstance(s, SendsCommands) else None
        self.resources = WorkerResources(s, pool, broker, llm, relay)
        self.router = router = CommandRouter(s.service_name)
        self._install(router, self.resources)
        self._consumer = CommandConsumer(
            router=router, broker=broker, pool=pool, settings=s, channels=self._channels
        )
        await broker.start()
        # The broker first: the consumer dead-letters through its producer.
        await self._consumer.start()
        # Commands a newer gateway sent before this replica could handle them.
        await self._consumer.replay_parked()
        self._relay = OutboxRelay(
            pool,
            broker,
            s.service_name,
            missing_topics=functools.partial(missing_topics, s.kafka.bootstrap_servers),
        )
        await self._relay.start()
        for service in self.resources.background:
            await service.start()
            self._background.append(service)
        self.readiness = Readiness(
            s.service_name,
            {"database": lambda: ping(pool), "kafka": lambda: broker_ready(broker)},
        )
        self.ops = ops_server(self.readiness, s.ops_host, s.ops_port)
        await self.ops.start()
        log.info("worker started", commands=router.types, ops_port=self.ops.port)
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
        self._results = aio.server()
        relay_pb2_grpc.add_ResultRelayServicer_to_server(hub, self._results)
        port = self._results.add_insecure_port(f"{s.relay_host}:{s.relay_port}")
        await self._results.start()
        return CommandRelay(hub, s.relay_advertise or f"{s.relay_host}:{port}")

    async def stop(self) -> None:
        """Drains: stops taking commands, lets in-flight ones finish (up to the grace
        period; an unfinished one is not committed and goes to another replica), relays the
        outbox once more, then closes connections. Safe after a failed or partial start.
        """
        if self.readiness:
            self.readiness.draining = True
        while self._background:
            await self._background.pop().stop()
        broker = self._broker
        if self._consumer is not None:
            # Commands in hand finish and their offsets commit while the consumer is still
            # in the group; then it leaves, while the producer stays open for the outbox.
            await self._consumer.drain(self.settings.shutdown_grace_s)
            await self._consumer.stop()
            self._consumer = None
        if self._relay is not None:
            await self._relay.stop()
            self._relay = None
        if broker is not None:
            await broker.stop()
            self._broker = None
        await self._channels.close()
        if self._results is not None:
            await self._results.stop(None)
            self._results = None
        if self.ops is not None:
            await self.ops.stop()
            self.ops = None
        if self._llm is not None:
            await self._llm.aclose()
            self._llm = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        log.info("worker stopped")


def run_worker(settings: S, install: InstallHandlers[S]) -> None:
    """Runs a worker until SIGTERM or SIGINT, then drains and exits."""
    configure_logging(settings.service_name, settings.log_level, settings.log_format)

    async def main() -> None:
        worker = Worker(settings, install)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await worker.start()
            await stop.wait()
            log.info("shutdown requested")
        finally:
            await worker.stop()

    asyncio.run(main())
