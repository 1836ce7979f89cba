"""The policy every model call runs under: retries with jittered exponential backoff (or the
server's ``Retry-After``) on transient failures only, and one usage record per HTTP call,
failed or not."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar

import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from exammentor.llm.messages import LLMError, LLMUnavailable, LLMUsage, UsageSink
from exammentor.llm.transport import (
    CALL_FAILURES,
    Reply,
    failure_summary,
    is_transient,
    retry_after_s,
    status_of,
)
from exammentor.settings import LLMSettings

log = structlog.get_logger()

T = TypeVar("T")

Outcome = Literal["ok", "retry", "invalid", "error"]
"""How one HTTP call ended, as its usage record says."""


class CallPolicy:
    """Retries and usage records for one client's calls."""

    def __init__(self, settings: LLMSettings, usage_sink: UsageSink | None = None) -> None:
        """Builds the policy of ``settings``; ``usage_sink`` receives one record per call."""
        self.settings = settings
        self._usage_sink = usage_sink
        self._backoff = wait_exponential_jitter(
            multiplier=settings.backoff_base_s,
            max=settings.backoff_max_s,
            jitter=settings.backoff_base_s,
        )

    async def run(
        self, purpose: str, prompt_estimate: int, send: Callable[[], Awaitable[T]]
    ) -> tuple[T, float]:
        """Runs ``send`` under the retry policy, recording every failed attempt.

        Returns:
            ``send``'s result and the ``perf_counter`` time its successful attempt started.
        """
        attempts = self.settings.max_retries + 1
        retrying = AsyncRetrying(
            stop=stop_after_attempt(attempts),
            wait=self._wait,
            retry=retry_if_exception(is_transient),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    number = attempt.retry_state.attempt_number
                    started = time.perf_counter()
                    try:
                        return await send(), started
                    except CALL_FAILURES as exc:
                        retried = is_transient(exc) and number < attempts
                        await self.record(
                            purpose,
                            Reply(
                                text="",
                                finish_reason=None,
                                model=self.settings.model,
                                # The prompt was sent; a server may have spent work on it.
                                prompt_tokens=prompt_estimate,
                                completion_tokens=0,
                                latency_ms=(time.perf_counter() - started) * 1000,
                            ),
                            "retry" if retried else "error",
                        )
                        log.warning(
                            "llm.call_failed",
                            purpose=purpose,
                            attempt=number,
                            of=attempts,
                            retrying=retried,
                            error=failure_summary(exc),
                        )
                        raise
        except CALL_FAILURES as exc:
            if is_transient(exc):
                raise LLMUnavailable(
                    f"gave up after {attempts} attempt(s): {failure_summary(exc)}",
                    purpose=purpose,
                    status_code=status_of(exc),
                ) from exc
            raise LLMError(
                f"request refused: {failure_summary(exc)}",
                purpose=purpose,
                status_code=status_of(exc),
            ) from exc
        raise AssertionError("unreachable: tenacity returns or raises")  # pragma: no cover

    def _wait(self, state: RetryCallState) -> float:
        """Backoff before the next attempt: jittered exponential, or the server's hint."""
        computed: float = self._backoff(state)
        failure = state.outcome.exception() if state.outcome is not None else None
        hinted = retry_after_s(failure)
        if hinted is None:
            return computed
        return min(max(hinted, computed), self.settings.backoff_max_s)

    async def record(self, purpose: str, reply: Reply, outcome: Outcome) -> None:
        """Logs one HTTP call and hands its usage to the sink; a failing sink is logged only."""
        usage = LLMUsage(
            purpose=purpose,
            model=reply.model,
            prompt_tokens=reply.prompt_tokens,
            completion_tokens=reply.completion_tokens,
            latency_ms=round(reply.latency_ms, 3),
            outcome=outcome,
        )
        log.info(
            "llm.call",
            purpose=purpose,
            model=usage.model,
            outcome=outcome,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            latency_ms=usage.latency_ms,
        )
        if self._usage_sink is None:
            return
        try:
            await self._usage_sink(usage)
        except Exception:
            # Metering must never fail the call it meters.
            log.exception("llm.usage_sink_failed", purpose=purpose)
