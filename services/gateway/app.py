"""Wires the gateway: HTTP (FastAPI), public gRPC, the internal result relay, the command
publisher, and their orderly shutdown.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from faststream.kafka import KafkaBroker
from google.protobuf.descriptor import ServiceDescriptor
from grpc import aio
from grpc_health.v1 import _async as health_aio  # the asyncio servicer (health.aio)
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from exammentor._proto import (
    autopilot_pb2,
    autopilot_pb2_grpc,
    gateway_pb2,
    gateway_pb2_grpc,
    quiz_pb2,
    quiz_pb2_grpc,
    relay_pb2_grpc,
    tutor_pb2,
    tutor_pb2_grpc,
)
from exammentor.db import create_pool, ping
from exammentor.lifecycle import Lifecycle, serve
from exammentor.logs import configure_logging, get_logger
from exammentor.messaging.dispatch import Dispatcher
from exammentor.messaging.kafka import broker_ready, create_broker
from exammentor.messaging.result_hub import RelayHub
from exammentor.ops.routes import HttpServer, Readiness
from exammentor.outages import wait_for_database, wait_for_kafka
from exammentor.telemetry import configure_tracing
from services.gateway.auth import TokenIssuer
from services.gateway.core import GatewayCore
from services.gateway.grpc_api import StudyGateway
from services.gateway.grpc_autopilot import AutopilotApi
from services.gateway.grpc_quiz import QuizApi
from services.gateway.grpc_tutor import TutorApi
from services.gateway.http_api import create_http_app
from services.gateway.http_base import GatewayState
from services.gateway.limits import AttemptLimiter
from services.gateway.settings import GatewaySettings
from services.gateway.sweeper import RequestSweeper
from services.gateway.watch import RequestWatch

log = get_logger(__name__)


@dataclass(frozen=True)
class GrpcApi:
    """One public gRPC service of the gateway: how to add it to a server, and its name."""

    add: Callable[[Any, aio.Server], None]
    servicer: Callable[[GatewayCore], Any]
    descriptor: ServiceDescriptor

    def install(self, core: GatewayCore, server: aio.Server) -> str:
        """Adds the service to ``server``; returns its full name (for reflection, health)."""
        self.add(self.servicer(core), server)
        return self.descriptor.full_name


GRPC_MAX_MESSAGE_BYTES = 32 * 1024 * 1024
"""Largest gRPC message: a 10 MiB PDF or image is about 14 MB as base64 text."""

GRPC_APIS: tuple[GrpcApi, ...] = (
    GrpcApi(
        gateway_pb2_grpc.add_StudyGatewayServicer_to_server,
        StudyGateway,
        gateway_pb2.DESCRIPTOR.services_by_name["StudyGateway"],
    ),
    GrpcApi(
        quiz_pb2_grpc.add_QuizServicer_to_server,
        QuizApi,
        quiz_pb2.DESCRIPTOR.services_by_name["Quiz"],
    ),
    GrpcApi(
        tutor_pb2_grpc.add_TutorServicer_to_server,
        TutorApi,
        tutor_pb2.DESCRIPTOR.services_by_name["Tutor"],
    ),
    GrpcApi(
        autopilot_pb2_grpc.add_AutopilotServicer_to_server,
        AutopilotApi,
        autopilot_pb2.DESCRIPTOR.services_by_name["Autopilot"],
    ),
)
"""Every public gRPC service; a domain with a proto file of its own adds its entry here."""


class Gateway:
    """One gateway instance; tests start it in-process on free ports.

    Start-up enters each part on the gateway's :class:`~exammentor.lifecycle.Lifecycle`, so
    shutdown is start-up reversed: the draining flag, gRPC health to NOT_SERVING, HTTP, the
    public gRPC server and the result relay (each finishing open calls within the grace
    period), the sweeper, the request watch, the producer, the pool.
    """

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.hub = RelayHub(settings.relay_token.get_secret_value())
        self.http_port = settings.http_port
        self.grpc_port = settings.grpc_port
        self.relay_port = settings.relay_port
        self._life = Lifecycle(settings.service_name)
        # Set by start-up; tests drive the sweeper and fault the producer through them.
        self.sweeper: RequestSweeper | None = None
        self._broker: KafkaBroker | None = None

    async def start(self) -> None:
        """Opens the pool and producer, then starts the relay, gRPC and HTTP servers."""
        s, life = self.settings, self._life
        grace = s.shutdown_grace_s
        configure_tracing(s.service_name)
        await wait_for_database(s.db.app_database_url, deadline_s=s.startup_wait_s)
        await wait_for_kafka(s.kafka.bootstrap_servers, deadline_s=s.startup_wait_s)
        pool = await create_pool(
            s.db.app_database_url, min_size=s.db.pool_min, max_size=s.db.pool_max
        )
        life.on_stop(pool.close)
        self._broker = broker = create_broker(s.kafka, s.service_name, grace)
        await life.enter(broker.start, broker.stop)

        # The relay first: its address goes into every command.
        relay = aio.server()
        relay_pb2_grpc.add_ResultRelayServicer_to_server(self.hub, relay)
        self.relay_port = relay.add_insecure_port(f"{s.relay_host}:{s.relay_port}")
        await life.enter(relay.start, functools.partial(relay.stop, grace))
        reply_to = s.relay_advertise or f"{s.relay_host}:{self.relay_port}"

        tokens = TokenIssuer(s.jwt_secret.get_secret_value(), s.token_ttl_s)
        dispatcher = Dispatcher(
            pool,
            broker,
            self.hub,
            s.kafka.topic_prefix,
            reply_to,
            publish_timeout_s=s.publish_timeout_s,
        )
        watch = RequestWatch(pool)
        await life.enter(watch.start, watch.stop)
        self.sweeper = sweeper = RequestSweeper(pool, broker, s.sweep)
        await life.enter(sweeper.start, sweeper.stop)
        readiness = Readiness(
            s.service_name,
            {"database": lambda: ping(pool), "kafka": lambda: broker_ready(broker)},
        )
        core = GatewayCore(
            pool,
            dispatcher,
            tokens,
            s.request_timeout_s,
            limiter=AttemptLimiter(s.login_limits),
            watch=watch,
        )
        # Material and images travel as base64 in messages: room for the tutor's largest file.
        grpc_server = aio.server(
            options=[
                ("grpc.max_receive_message_length", GRPC_MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", GRPC_MAX_MESSAGE_BYTES),
            ]
        )
        names = [api.install(core, grpc_server) for api in GRPC_APIS]
        # Standard health and reflection: grpcurl and load balancers need no proto files.
        health = health_aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health, grpc_server)
        health_name = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
        reflection.enable_server_reflection(
            (*names, health_name, reflection.SERVICE_NAME), grpc_server
        )
        self.grpc_port = grpc_server.add_insecure_port(f"{s.grpc_host}:{s.grpc_port}")
        await life.enter(grpc_server.start, functools.partial(grpc_server.stop, grace))
        for name in ("", *names):
            await health.set(name, health_pb2.HealthCheckResponse.SERVING)

        state = GatewayState(
            core=core,
            readiness=readiness,
            max_body_bytes=s.max_body_bytes,
            cors_origins=tuple(s.cors_origins),
            web_dir=s.web_dir,
        )
        http = HttpServer(create_http_app(state), s.http_host, s.http_port)
        await life.enter(http.start, http.stop)
        self.http_port = http.port
        life.on_stop(health.enter_graceful_shutdown)

        def draining() -> None:
            readiness.draining = True

        life.on_stop(draining)  # the first step of shutdown
        log.info(
            "gateway started",
            http_port=self.http_port,
            grpc_port=self.grpc_port,
            relay=reply_to,
        )
        if s.generated_secrets:
            log.warning(
                "secrets not set: this run made random ones; its tokens die with the process "
                "and only workers in this process can relay results (set them in production)",
                unset=s.generated_secrets,
            )

    async def stop(self) -> None:
        """Stops taking requests, lets open ones finish (grace period), then closes. Safe
        after a failed or partial start, and when called again."""
        await self._life.close()
        log.info("gateway stopped")


def main() -> None:
    """Entry point of ``exammentor-gateway``."""
    settings = GatewaySettings()
    configure_logging(settings.service_name, settings.log_level, settings.log_format)
    serve(Gateway(settings))


if __name__ == "__main__":
    main()
