"""Waiting at start-up for the servers a process needs, saying what it waits for.

A process started beside a broker or database that is still coming up (``make up`` on a
cold machine, a Kubernetes pod before its dependencies) waits with capped backoff until each
answers, logging what it waits for, instead of failing half-started. Past the deadline it
gives up with a message that names the server and how long it waited.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

from exammentor.logs import get_logger

log = get_logger(__name__)

_UNREACHABLE = (OSError, TimeoutError, KafkaError, asyncpg.PostgresError)


class ServerUnreachable(RuntimeError):
    """A server the process needs did not answer within the start-up deadline."""


async def wait_until_reachable(
    what: str, probe: Callable[[], Awaitable[None]], *, deadline_s: float
) -> None:
    """Calls ``probe`` until it succeeds, backing off up to 5 s between tries.

    Raises:
        ServerUnreachable: ``probe`` still failed after ``deadline_s`` seconds.
    """

    def waiting(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning(f"waiting for {what}", attempt=state.attempt_number, error=str(error))

    try:
        async for attempt in AsyncRetrying(
            stop=stop_after_delay(deadline_s),
            wait=wait_exponential(multiplier=0.2, max=5),
            retry=retry_if_exception_type(_UNREACHABLE),
            before_sleep=waiting,
            reraise=True,
        ):
            with attempt:
                await probe()
    except _UNREACHABLE as exc:
        raise ServerUnreachable(f"{what} did not answer within {deadline_s:g} s: {exc}") from exc


async def wait_for_kafka(bootstrap_servers: str, *, deadline_s: float) -> None:
    """Waits until the Kafka cluster answers a metadata request."""

    async def probe() -> None:
        client = AIOKafkaClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=5000)
        try:
            await client.bootstrap()
        finally:
            await client.close()

    await wait_until_reachable(f"Kafka at {bootstrap_servers}", probe, deadline_s=deadline_s)


async def wait_for_database(dsn: str, *, deadline_s: float) -> None:
    """Waits until Postgres accepts a connection with ``dsn``."""

    async def probe() -> None:
        conn = await asyncpg.connect(dsn, timeout=5)
        await conn.close()

    host = dsn.rsplit("@", 1)[-1]
    await wait_until_reachable(f"Postgres at {host}", probe, deadline_s=deadline_s)
