"""Waiting out servers that do not answer: at start-up, and while handling commands.

- **At start-up**, a process beside a broker or database that is still coming up (``make
  up`` on a cold machine, a Kubernetes pod before its dependencies) waits with capped backoff
  until each answers, logging what it waits for, instead of failing half-started. Past the
  deadline it gives up with a message that names the server and how long it waited.
- **While running**, :func:`is_unreachable` tells an outage (the database or broker not
  answering, a timeout) from a failure that would happen again: an outage is waited out and
  retried, never counted as a failed attempt, never dead-lettered.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    LeaderNotAvailableError,
    NotEnoughReplicasAfterAppendError,
    NotEnoughReplicasError,
    NotLeaderForPartitionError,
    RequestTimedOutError,
)
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
"""What a probe at start-up may meet while a server is not there yet."""

_OUTAGE = (
    OSError,  # refused, reset, unreachable
    TimeoutError,
    asyncpg.PostgresConnectionError,  # class 08: the connection failed or broke
    asyncpg.CannotConnectNowError,  # 57P03: starting up or shutting down
    asyncpg.AdminShutdownError,  # 57P01: terminated by the administrator
    asyncpg.CrashShutdownError,  # 57P02
    asyncpg.InterfaceError,  # the connection was closed under us
    KafkaConnectionError,
    KafkaTimeoutError,
    RequestTimedOutError,
    NotEnoughReplicasError,
    NotEnoughReplicasAfterAppendError,
    NotLeaderForPartitionError,
    LeaderNotAvailableError,
)
"""Errors that mean a server is not answering right now, not that the work is wrong."""


def is_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it was raised from) is an outage of the database or broker.

    The walk stops at an error of ExamMentor's own (an ``LLMUnavailable`` raised from a
    refused connection, say): that code has already decided what the failure means.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if type(current).__module__.startswith(("exammentor.", "services.")):
            return False
        if isinstance(current, _OUTAGE):
            return True
        seen.add(id(current))
        current = current.__cause__
    return False


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
