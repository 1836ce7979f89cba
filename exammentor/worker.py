"""Running a worker service: the one place that wires pool, broker, consumer, outbox relay,
result relay, LLM client and the ops server, and takes them down in order on SIGTERM.

A service's ``app.py`` only says which commands it handles::

    def main() -> None:
        run_worker(PlannerSettings(), build_router)
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog
from faststream.kafka import KafkaBroker

from exammentor import metrics
from exammentor.commands import CommandConsumer, CommandRouter
from exammentor.db import Pool, create_pool, ping
from exammentor.kafka import broker_ready, create_broker
from exammentor.llm import LLMClient, LLMUsage
from exammentor.logs import configure_logging, get_logger
from exammentor.ops import HttpServer, Readiness, ops_server
from exammentor.outbox import OutboxRelay
from exammentor.relay import RelayChannels
from exammentor.settings import ServiceSettings
from exammentor.telemetry import configure_tracing

log = get_logger(__name__)


@dataclass
class WorkerResources:
    """What a service's handlers may use."""

    settings: ServiceSettings
    pool: Pool
    broker: KafkaBroker
    llm: LLMClient


def usage_recorder(pool: Pool, service: str) -> Callable[[LLMUsage], Any]:
    """An LLM usage sink that stores every call (for cost reports) and counts tokens."""

    async def record(usage: LLMUsage) -> None:
        ids = structlog.contextvars.get_contextvars()
        metrics.LLM_CALLS.labels(service, usage.purpose, usage.outcome).inc()
        metrics.LLM_TOKENS.labels(service, usage.purpose, "prompt").inc(usage.prompt_tokens)
        metrics.LLM_TOKENS.labels(service, usage.purpose, "completion").inc(usage.completion_tokens)
        try:
            async with pool.acquire() as conn:
                await conn.execute(
                    "INSERT INTO llm_usage (service, purpose, model, prompt_tokens, "
                    "completion_tokens, latency_ms, outcome, user_id, request_id) "
                    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8::text::uuid, $9::text::uuid)",
                    service,
                    usage.purpose,
                    usage.model,
                    usage.prompt_tokens,
                    usage.completion_tokens,
                    usage.latency_ms,
                    usage.outcome,
                    ids.get("user_id"),
                    ids.get("request_id"),
                )
        except (OSError, asyncpg.PostgresError):
            log.exception("could not store LLM usage")

    return record


class Worker:
    """A running worker service; :meth:`start` and :meth:`stop` are also used by tests to
    run services in-process against the real broker and database.
    """

    def __init__(
        self,
        settings: ServiceSettings,
        build_router: Callable[[WorkerResources], CommandRouter],
    ) -> None:
        self.settings = settings
        self._build_router = build_router
        self.resources: WorkerResources | None = None
        self.ops: HttpServer | None = None
        self.readiness: Readiness | None = None
        self._relay: OutboxRelay | None = None
        self._channels = RelayChannels()

    async def start(self) -> None:
        """Connects everything and starts consuming."""
        s = self.settings
        configure_tracing(s.service_name)
        pool = await create_pool(
            s.db.app_database_url, min_size=s.db.pool_min, max_size=s.db.pool_max
        )
        broker = create_broker(s.kafka, f"{s.service_name}", s.shutdown_grace_s)
        llm = LLMClient(s.llm, usage_sink=usage_recorder(pool, s.service_name))
        self.resources = WorkerResources(s, pool, broker, llm)
        router = self._build_router(self.resources)
        CommandConsumer(
            router=router, broker=broker, pool=pool, settings=s, channels=self._channels
        ).subscribe()
        await broker.start()
        self._relay = OutboxRelay(pool, broker, s.service_name)
        await self._relay.start()
        self.readiness = Readiness(
            s.service_name,
            {"database": lambda: ping(pool), "kafka": lambda: broker_ready(broker)},
        )
        self.ops = ops_server(self.readiness, s.ops_host, s.ops_port)
        await self.ops.start()
        log.info("worker started", commands=router.types, ops_port=self.ops.port)

    async def stop(self) -> None:
        """Drains: stops taking commands, lets in-flight ones finish (up to the grace
        period; an unfinished one is not committed and goes to another replica), relays the
        outbox once more, then closes connections.
        """
        if self.readiness:
            self.readiness.draining = True
        res = self.resources
        if res is not None:
            # Subscribers first: each waits for its in-flight handler (up to the grace
            # period), so the outbox can be drained while the producer is still open.
            await asyncio.gather(*(sub.stop() for sub in res.broker.subscribers))
        if self._relay is not None:
            await self._relay.stop()
            await self._relay.relay_once()
        if res is not None:
            await res.broker.stop()
        await self._channels.close()
        if self.ops is not None:
            await self.ops.stop()
        if res is not None:
            await res.llm.aclose()
            await res.pool.close()
        log.info("worker stopped")


def run_worker(
    settings: ServiceSettings, build_router: Callable[[WorkerResources], CommandRouter]
) -> None:
    """Runs a worker until SIGTERM or SIGINT, then drains and exits."""
    configure_logging(settings.service_name, settings.log_level, settings.log_format)

    async def main() -> None:
        worker = Worker(settings, build_router)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await worker.start()
        await stop.wait()
        log.info("shutdown requested")
        await worker.stop()

    asyncio.run(main())
