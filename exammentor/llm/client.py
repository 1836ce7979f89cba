"""The one LLM client every service uses: OpenAI-compatible chat, retried, validated, metered.

Every model call in ExamMentor goes through :class:`LLMClient`, on the ``openai`` SDK against
whatever OpenAI-compatible endpoint :class:`~exammentor.settings.LLMSettings` names (the
embedded llama.cpp server by default). The client adds what every caller needs the same way:

- **Retries** with exponential backoff and jitter on 429, 408, 5xx, timeouts and connection
  errors (``Retry-After`` honoured up to the backoff cap); other 4xx fail at once. The SDK's
  own retries are off so that one policy, and one usage record per HTTP call, holds.
- **Structured output**: :meth:`LLMClient.structured` asks for JSON matching a pydantic
  model (``response_format`` of type ``json_schema``), validates it, runs an optional
  semantic check, and sends the bad output and its errors back for repair a bounded number
  of times. Models are weak (the embedded one especially), so nothing unvalidated escapes.
- **Streaming**: :meth:`LLMClient.stream_text` yields text deltas, and
  :meth:`LLMClient.stream_parts` the deltas that arrived together (one read of the body) as
  one list, so a caller pays its per-step work once per read rather than once per token; a
  failure is retried only while nothing has been yielded, because a caller cannot take back
  text it has relayed. The stream's events are read raw (:class:`~exammentor.llm.transport.
  SseReader`), not as the SDK's pydantic chunks.
- **Usage**: each HTTP call, failed or not, becomes one :class:`LLMUsage` for the usage sink
  (metrics, cost accounting), with the server's token counts or an estimate.
- **A bound on calls at once** per process (``OPENAI_MAX_CONCURRENCY``), shared by every
  command kind: a call waits for a slot before its HTTP request and frees it when the answer
  (or the stream) ends; backoff between retries holds none. Unset, it follows the server's
  slot count where the server tells it (llama.cpp's ``/props``, on this host), else
  :data:`DEFAULT_MAX_CONCURRENCY`. A waiting call holds its command's session only: no
  partition (the consumer runs other sessions) and no database connection (handlers call the
  model outside their transaction).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import aclosing
from typing import TypeVar

import httpx2
import structlog
from openai import AsyncOpenAI, DefaultAioHttpClient, DefaultAsyncHttpxClient, omit

# The SDK's own pool limits, in the HTTP library it bundles (its Limits type, not httpx's).
from openai._constants import DEFAULT_CONNECTION_LIMITS
from openai.types.chat import (
    ChatCompletion,
)
from openai.types.shared_params.response_format_json_schema import ResponseFormatJSONSchema
from pydantic import BaseModel

from exammentor.llm.call_policy import CallPolicy, Outcome
from exammentor.llm.messages import (
    ChatMessage,
    LLMInvalidOutput,
    LLMUnavailable,
    Message,
    UsageSink,
    estimate_prompt,
    estimate_tokens,
)
from exammentor.llm.sampling import GREEDY, Sampling, SamplingArgs
from exammentor.llm.structured import (
    InvalidOutputError,
    parse_output,
    repair_prompt,
    schema_name,
)
from exammentor.llm.transport import (
    CALL_FAILURES,
    DEFAULT_MAX_CONCURRENCY,
    IDLE_CONNECTION_S,
    OpenedStream,
    Reply,
    SseReader,
    failure_summary,
    server_slots,
    status_of,
    to_sdk,
)
from exammentor.settings import LLMSettings

log = structlog.get_logger()

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


class LLMClient:
    """Chat completions with retries, validation, repair and usage records.

    One instance per process is enough (it holds a connection pool); it is safe to use from
    concurrent tasks. Close it with :meth:`aclose` or ``async with``.
    """

    def __init__(self, settings: LLMSettings, usage_sink: UsageSink | None = None) -> None:
        """Builds the client; no connection is made until the first call.

        Args:
            settings: Endpoint, model, timeout and retry policy.
            usage_sink: Receives one :class:`LLMUsage` per HTTP call.
        """
        self.settings = settings
        # Servers (uvicorn, vLLM, llama.cpp) close idle connections after 5 s, as the pools
        # would keep them: a call sent just then went out on a closing connection and cost a
        # retry and its backoff. Drop idle connections well before.
        limits = dataclasses.replace(DEFAULT_CONNECTION_LIMITS, keepalive_expiry=IDLE_CONNECTION_S)
        self._client = self._sdk(DefaultAsyncHttpxClient(limits=limits))
        # Streams go over the SDK's aiohttp transport: its C parser and pool cost about a
        # third of the default transport's CPU per stream, which under hundreds of streams is
        # most of a tutor process's time (bench/tutor.py). Whole answers keep the default
        # transport: it reads the error a server sends before taking all of a large body (an
        # image to a model that cannot see), where aiohttp only reports the body it could not
        # write.
        self._streams = self._sdk(DefaultAioHttpClient(limits=limits))
        self._policy = CallPolicy(settings, usage_sink)
        self._slots: asyncio.Semaphore | None = None
        self._limit = 0
        self._slots_sized = asyncio.Lock()

    async def concurrency(self) -> int:
        """Model calls this client makes at once (sized on first use; see the module)."""
        await self._call_slots()
        return self._limit

    async def _call_slots(self) -> asyncio.Semaphore:
        if self._slots is not None:
            return self._slots
        async with self._slots_sized:
            if self._slots is None:
                limit = self.settings.max_concurrency
                if limit is None and self.settings.is_on_this_host:
                    limit = await server_slots(self.settings.base_url)
                limit = limit or DEFAULT_MAX_CONCURRENCY
                log.info("llm.concurrency", limit=limit, base_url=self.settings.base_url)
                self._limit = limit
                self._slots = asyncio.Semaphore(limit)
        return self._slots

    async def __aenter__(self) -> LLMClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _sdk(self, http_client: httpx2.AsyncClient) -> AsyncOpenAI:
        return AsyncOpenAI(
            base_url=self.settings.base_url,
            api_key=self.settings.api_key.get_secret_value(),
            timeout=self.settings.timeout_s,
            max_retries=0,  # our tenacity policy retries; the SDK's would double it
            http_client=http_client,
        )

    async def aclose(self) -> None:
        """Closes the connection pools."""
        await self._client.close()
        await self._streams.close()

    async def structured(
        self,
        *,
        messages: Sequence[Message],
        schema: type[M],
        purpose: str,
        max_tokens: int = 512,
        sampling: Sampling = GREEDY,
        validate: Callable[[M], None] | None = None,
        repairs: int | None = None,
    ) -> M:
        """Asks for JSON matching ``schema`` and returns it validated.

        Invalid output (not JSON, failing the schema, or rejected by ``validate``) is sent
        back with its errors for correction, up to ``settings.repair_attempts`` times.
        The schema goes out as ``M.model_json_schema()`` with ``strict: true``: llama.cpp
        and vLLM constrain decoding with it; OpenAI itself accepts strict schemas only when
        every object sets ``additionalProperties: false`` and lists all its properties as
        required (``model_config = ConfigDict(extra="forbid")`` and no defaults).

        Args:
            messages: The conversation; it should say what to answer, the schema is added.
            schema: Pydantic model the answer must match.
            purpose: Short name of the call for logs and usage records.
            max_tokens: Cap on generated tokens per call.
            sampling: How the first round samples; repair rounds sample more freely
                (:meth:`Sampling.for_round`), so they do not repeat the same answer.
            validate: Semantic check of a schema-valid answer; raises ``ValueError`` with a
                message the model can act on.
            repairs: Repair rounds for this call (``None``: ``settings.repair_attempts``); a
                caller with a fallback of its own may want none.

        Returns:
            The validated model instance.

        Raises:
            LLMInvalidOutput: The output was still invalid after the last repair round.
            LLMUnavailable: The endpoint kept failing.
            LLMError: The endpoint refused the request.
        """
        schema_json = schema.model_json_schema()
        response_format: ResponseFormatJSONSchema = {
            "type": "json_schema",
            "json_schema": {"name": schema_name(schema), "schema": schema_json, "strict": True},
        }
        conversation = list(messages)
        rounds = (self.settings.repair_attempts if repairs is None else repairs) + 1
        errors: list[str] = []
        output = ""
        for round_no in range(1, rounds + 1):
            reply = await self._complete(
                purpose=purpose,
                messages=conversation,
                max_tokens=max_tokens,
                sampling=sampling.for_round(round_no),
                response_format=response_format,
            )
            try:
                result = parse_output(reply.text, schema, validate, reply.finish_reason)
            except InvalidOutputError as invalid:
                errors, output = invalid.errors, reply.text
                await self._policy.record(purpose, reply, "invalid")
                log.warning(
                    "llm.invalid_output",
                    purpose=purpose,
                    round=round_no,
                    of=rounds,
                    errors=errors,
                    output=output[:500],
                )
                conversation = [
                    *messages,
                    {"role": "assistant", "content": output},
                    {"role": "user", "content": repair_prompt(errors, schema_json)},
                ]
                continue
            await self._policy.record(purpose, reply, "ok")
            return result
        raise LLMInvalidOutput(
            f"output invalid after {rounds} attempt(s): {'; '.join(errors)}",
            purpose=purpose,
            errors=errors,
            output=output,
        )

    async def text(
        self,
        *,
        messages: Sequence[Message],
        purpose: str,
        max_tokens: int = 512,
        sampling: Sampling = GREEDY,
    ) -> str:
        """Returns a free-text answer.

        Args:
            messages: The conversation.
            purpose: Short name of the call for logs and usage records.
            max_tokens: Cap on generated tokens.
            sampling: How the model samples (greedy by default).

        Returns:
            The answer's text (empty when the model said nothing).

        Raises:
            LLMUnavailable: The endpoint kept failing.
            LLMError: The endpoint refused the request.
        """
        reply = await self._complete(
            purpose=purpose,
            messages=messages,
            max_tokens=max_tokens,
            sampling=sampling,
            response_format=None,
        )
        await self._policy.record(purpose, reply, "ok")
        return reply.text

    async def stream_text(
        self,
        *,
        messages: Sequence[ChatMessage],
        purpose: str,
        max_tokens: int = 512,
        sampling: Sampling = GREEDY,
    ) -> AsyncGenerator[str, None]:
        """Yields the answer's text as it is generated: :meth:`stream_parts` (the same
        arguments, retries, failures and closing) one delta at a time.

        Yields:
            Non-empty text deltas, in order.
        """
        async with aclosing(
            self.stream_parts(
                messages=messages, purpose=purpose, max_tokens=max_tokens, sampling=sampling
            )
        ) as parts:
            async for part in parts:
                for delta in part:
                    yield delta

    async def stream_parts(
        self,
        *,
        messages: Sequence[ChatMessage],
        purpose: str,
        max_tokens: int = 512,
        sampling: Sampling = GREEDY,
    ) -> AsyncGenerator[list[str], None]:
        """Yields the answer's text as it is generated, the deltas that arrived together as
        one list.

        A stream read at its pace brings one delta a read; under load, or from a server that
        writes several chunks at once, a read holds several. A caller with work per step
        (relaying, checking) does it once per list; the deltas themselves are the same, in
        the same order, as :meth:`stream_text` yields one by one.

        Failures before the first delta are retried like any call; after it they raise,
        since the caller may already have relayed the text. A caller that stops early
        should ``aclose()`` the generator (or use ``contextlib.aclosing``) so the connection
        is released and the usage recorded at once rather than at garbage collection.

        Args:
            messages: The conversation.
            purpose: Short name of the call for logs and usage records.
            max_tokens: Cap on generated tokens.
            sampling: How the model samples (greedy by default).

        Yields:
            Non-empty lists of non-empty text deltas, in order.

        Raises:
            LLMUnavailable: The endpoint kept failing, or the stream broke off.
            LLMError: The endpoint refused the request.
        """
        prompt_estimate = estimate_prompt(messages)
        opened, started = await self._policy.run(
            purpose,
            prompt_estimate,
            lambda: self._open_stream(messages, max_tokens, sampling),
        )
        parts: list[str] = []
        usage = opened.usage
        model = opened.model
        outcome: Outcome = "ok"
        try:
            if opened.first:
                parts.extend(opened.first)
                yield opened.first
            while not opened.ended and (chunks := await opened.stream.next_chunks()) is not None:
                part: list[str] = []
                for chunk in chunks:
                    model = chunk.model or model
                    if chunk.usage is not None:
                        usage = chunk.usage
                    part.extend(chunk.deltas)
                if part:
                    parts.extend(part)
                    yield part
        except CALL_FAILURES as exc:
            outcome = "error"
            log.warning("llm.stream_broken", purpose=purpose, error=failure_summary(exc))
            raise LLMUnavailable(
                f"stream broke off after {len(parts)} chunk(s): {failure_summary(exc)}",
                purpose=purpose,
                status_code=status_of(exc),
            ) from exc
        finally:
            # Also reached when the consumer stops early (GeneratorExit): free the
            # connection and the call slot, and still account for what was generated.
            try:
                await opened.stream.close()
            finally:
                (await self._call_slots()).release()
            prompt_tokens, completion_tokens = usage or (
                prompt_estimate,
                estimate_tokens("".join(parts)),
            )
            await self._policy.record(
                purpose,
                Reply(
                    text="",
                    finish_reason=None,
                    model=model,
                    prompt_tokens=prompt_tokens,
                    completion_tokens=completion_tokens,
                    latency_ms=(time.perf_counter() - started) * 1000,
                ),
                outcome,
            )

    async def _open_stream(
        self, messages: Sequence[ChatMessage], max_tokens: int, sampling: Sampling
    ) -> OpenedStream:
        """Starts a stream and reads up to its first text delta, the part worth retrying.

        Takes a call slot; the stream returned holds it (``stream_text`` frees it)."""
        slots = await self._call_slots()
        await slots.acquire()
        try:
            # The SDK makes the call (status errors, timeouts); the body is read raw. Its
            # generic ``post`` sends the body as built here: ``chat.completions.create``
            # first walks every message through its parameter transform (5% of a tutor
            # process's CPU under 256 streams), for a body that is already wire JSON.
            args: dict[str, object] = dict(self._sampling_args(sampling))
            extra = args.pop("extra_body", None)
            body = {
                "model": self.settings.model,
                "messages": [to_sdk(m) for m in messages],
                "max_completion_tokens": max_tokens,
                "stream": True,
                "stream_options": {"include_usage": True},
                **args,
                **(extra if isinstance(extra, dict) else {}),
            }
            response = await self._streams.post(
                "/chat/completions", body=body, cast_to=httpx2.Response, stream=True
            )
        except BaseException:
            slots.release()
            raise
        stream = SseReader(response)
        model = self.settings.model
        usage: tuple[int, int] | None = None
        try:
            while (chunks := await stream.next_chunks()) is not None:
                first: list[str] = []
                for chunk in chunks:
                    model = chunk.model or model
                    if chunk.usage is not None:
                        usage = chunk.usage
                    first.extend(chunk.deltas)
                if first:
                    return OpenedStream(stream, first, model, usage, ended=False)
        except BaseException:
            try:
                await stream.close()
            finally:
                slots.release()
            raise
        return OpenedStream(stream, [], model, usage, ended=True)

    async def _complete(
        self,
        *,
        purpose: str,
        messages: Sequence[Message],
        max_tokens: int,
        sampling: Sampling,
        response_format: ResponseFormatJSONSchema | None,
    ) -> Reply:
        """One logical call: HTTP attempts until one answers; its usage is not yet recorded."""
        prompt_estimate = estimate_prompt(messages)

        async def send() -> ChatCompletion:
            async with await self._call_slots():
                return await self._client.chat.completions.create(
                    model=self.settings.model,
                    messages=[to_sdk(m) for m in messages],
                    max_completion_tokens=max_tokens,
                    response_format=response_format if response_format is not None else omit,
                    **self._sampling_args(sampling),
                )

        completion, started = await self._policy.run(purpose, prompt_estimate, send)
        latency_ms = (time.perf_counter() - started) * 1000
        choice = completion.choices[0] if completion.choices else None
        text = (choice.message.content if choice else None) or ""
        if completion.usage is not None:
            tokens = (completion.usage.prompt_tokens, completion.usage.completion_tokens)
        else:
            tokens = (prompt_estimate, estimate_tokens(text))
        return Reply(
            text=text,
            finish_reason=choice.finish_reason if choice else None,
            model=completion.model or self.settings.model,
            prompt_tokens=tokens[0],
            completion_tokens=tokens[1],
            latency_ms=latency_ms,
        )

    def _sampling_args(self, sampling: Sampling) -> SamplingArgs:
        """The request parameters of ``sampling``; llama.cpp's only where the server takes them."""
        args: SamplingArgs = {"temperature": sampling.temperature}
        if sampling.seed is not None:
            args["seed"] = sampling.seed
        if sampling.frequency_penalty is not None:
            args["frequency_penalty"] = sampling.frequency_penalty
        if sampling.presence_penalty is not None:
            args["presence_penalty"] = sampling.presence_penalty
        extra = {
            name: value
            for name, value in (
                ("repeat_penalty", sampling.repeat_penalty),
                ("dry_multiplier", sampling.dry_multiplier),
            )
            if value is not None
        }
        if extra and self.settings.sends_sampler_extras:
            args["extra_body"] = extra
        return args
