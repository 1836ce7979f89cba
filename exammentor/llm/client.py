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
- **Streaming**: :meth:`LLMClient.stream_text` yields text deltas; a failure is retried only
  while nothing has been yielded, because a caller cannot take back text it has relayed.
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
import json
import math
import re
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypedDict, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
import openai
import structlog
from openai import AsyncOpenAI, DefaultAsyncHttpxClient, omit

# The SDK's own pool limits, in the HTTP library it bundles (its Limits type, not httpx's).
from openai._constants import DEFAULT_CONNECTION_LIMITS
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionContentPartParam,
    ChatCompletionMessageParam,
)
from openai.types.shared_params.response_format_json_schema import ResponseFormatJSONSchema
from pydantic import BaseModel, ValidationError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from exammentor.settings import LLMSettings

__all__ = [
    "ChatMessage",
    "ImageContent",
    "LLMClient",
    "LLMError",
    "LLMInvalidOutput",
    "LLMUnavailable",
    "LLMUsage",
    "Message",
    "PartsMessage",
    "Sampling",
    "TextContent",
    "UsageSink",
    "estimate_tokens",
    "extract_json",
]

log = structlog.get_logger()

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

Outcome = Literal["ok", "retry", "invalid", "error"]

CHARS_PER_TOKEN = 4
"""Rough size of a token in English text, for usage estimates when a server reports none."""

IDLE_CONNECTION_S = 2.0
"""How long an idle connection to the model server is kept for reuse (servers close theirs
at 5 s)."""

MAX_REPORTED_ERRORS = 8
"""Validation errors quoted back to the model; more only dilutes a small model's attention."""


class ChatMessage(TypedDict):
    """One chat turn, in the shape the OpenAI chat API takes."""

    role: Literal["system", "user", "assistant"]
    content: str


class TextContent(TypedDict):
    """A text part of a user message with parts."""

    type: Literal["text"]
    text: str


class ImageUrlRef(TypedDict):
    """Where an image part's image is (a ``data:`` URL or an https URL)."""

    url: str
    detail: Literal["auto", "low", "high"]


class ImageContent(TypedDict):
    """An image part of a user message (OpenAI image input)."""

    type: Literal["image_url"]
    image_url: ImageUrlRef


class PartsMessage(TypedDict):
    """A user message of text and image parts, for a model that can see."""

    role: Literal["user"]
    content: Sequence[TextContent | ImageContent]


Message = ChatMessage | PartsMessage
"""Any message :meth:`LLMClient.structured` and :meth:`LLMClient.text` take."""

IMAGE_PART_TOKENS = 765
"""Estimated prompt tokens of one image part (OpenAI's cost of a 1024 px tile image), for
usage estimates when a server reports none."""


@dataclass(frozen=True)
class LLMUsage:
    """What one HTTP call to the model cost and how it ended.

    Attributes:
        purpose: The caller's name for the call (``plan.rationale``, ``quiz.generate`` ...).
        model: Model the server says answered (the configured one when it did not answer).
        prompt_tokens: Input tokens, as reported, else estimated.
        completion_tokens: Output tokens, as reported, else estimated.
        latency_ms: Wall time of the call, to the last streamed chunk for streams.
        outcome: ``ok``; ``retry`` (failed, tried again); ``invalid`` (answered, but the output
            failed validation); ``error`` (failed, not tried again).
    """

    purpose: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    outcome: str


UsageSink = Callable[[LLMUsage], Awaitable[None]]


class LLMError(Exception):
    """A model call failed; ``reason`` says why in words fit for a log or a 4xx/5xx body.

    Raised as is when the endpoint refused the request (a 4xx other than 408/429), which
    retrying cannot fix: a bad model name, a bad key, a prompt too long for the context.
    """

    def __init__(self, reason: str, *, purpose: str, status_code: int | None = None) -> None:
        """Builds the error.

        Args:
            reason: What went wrong.
            purpose: The call's purpose.
            status_code: HTTP status of the last answer, when there was one.
        """
        super().__init__(f"{purpose}: {reason}")
        self.reason = reason
        self.purpose = purpose
        self.status_code = status_code


class LLMUnavailable(LLMError):
    """The endpoint kept failing (overload, 5xx, timeouts, no connection) past the retries."""


class LLMInvalidOutput(LLMError):
    """The model's output stayed invalid after every repair round."""

    def __init__(self, reason: str, *, purpose: str, errors: Sequence[str], output: str) -> None:
        """Builds the error.

        Args:
            reason: What went wrong.
            purpose: The call's purpose.
            errors: The validation errors of the last output.
            output: The last output, for the log.
        """
        super().__init__(reason, purpose=purpose)
        self.errors = tuple(errors)
        self.output = output


@dataclass(frozen=True)
class _Reply:
    """One answered (non-streaming) HTTP call, before its usage is recorded."""

    text: str
    finish_reason: str | None
    model: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float


@dataclass(frozen=True)
class _OpenedStream:
    """A stream whose first text delta arrived (or that ended without one); it holds a call
    slot until closed."""

    stream: openai.AsyncStream[ChatCompletionChunk]
    first: list[str]
    model: str
    usage: tuple[int, int] | None
    ended: bool


class _SamplingArgs(TypedDict, total=False):
    """Keyword arguments of ``chat.completions.create`` that :class:`Sampling` sets."""

    temperature: float
    seed: int
    frequency_penalty: float
    presence_penalty: float
    extra_body: dict[str, float]


class _InvalidOutputError(Exception):
    def __init__(self, errors: Sequence[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = list(errors)


@dataclass(frozen=True)
class Sampling:
    """How the model samples one call.

    A small model at temperature 0 answers a repeated prompt with the same tokens, so a retry
    that changes nothing gets the same loop or the same invalid JSON back. A retry round asks
    with :meth:`for_round`, which raises the temperature, changes the seed and penalises
    repetition. ``frequency_penalty``, ``presence_penalty`` and ``seed`` are OpenAI
    parameters; ``repeat_penalty`` and ``dry_multiplier`` (the DRY sampler) are llama.cpp's,
    sent only when ``LLMSettings.sampler_extras`` allows it, since OpenAI itself refuses
    parameters it does not know.
    """

    temperature: float = 0.0
    seed: int | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    repeat_penalty: float | None = None
    dry_multiplier: float | None = None

    def for_round(self, round_no: int) -> Sampling:
        """The sampling of retry round ``round_no`` (1 is the first call: ``self``).

        Later rounds sample more freely (temperature 0.6, then 0.8, ...; never above 1.0),
        with seed ``round_no`` and penalties on repeated tokens, so a degenerate first answer
        is not simply repeated.

        Args:
            round_no: 1 for the first call, 2 for the first retry, ...

        Returns:
            The sampling to use.
        """
        if round_no <= 1:
            return self
        return Sampling(
            temperature=max(self.temperature, min(1.0, 0.4 + 0.2 * (round_no - 1))),
            seed=round_no if self.seed is None else self.seed + round_no,
            frequency_penalty=self.frequency_penalty or 0.5,
            presence_penalty=self.presence_penalty,
            repeat_penalty=self.repeat_penalty or 1.25,
            dry_multiplier=self.dry_multiplier or 0.8,
        )


GREEDY = Sampling()
"""Temperature 0 and nothing else: deterministic on the embedded server."""


def estimate_tokens(text: str) -> int:
    """Estimates the tokens of ``text`` for servers that report no usage.

    Args:
        text: Any text.

    Returns:
        About one token per four characters; zero for empty text.
    """
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def _estimate_prompt(messages: Sequence[Message]) -> int:
    # A few tokens per message for the chat template's role markers.
    total = 0
    for m in messages:
        content = m["content"]
        if isinstance(content, str):
            total += estimate_tokens(content) + 4
            continue
        for part in content:
            if part["type"] == "text":
                total += estimate_tokens(part["text"])
            else:
                total += IMAGE_PART_TOKENS
        total += 4
    return total


_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n?(.*?)```", re.DOTALL)
_DECODER = json.JSONDecoder()


def extract_json(text: str) -> Any:
    """Finds the JSON value in a model's reply.

    Models wrap JSON in Markdown fences or put a sentence before it even when asked not to;
    this takes the fenced block when there is one, else the first JSON object or array in
    the text, and ignores whatever follows it.

    Args:
        text: The reply.

    Returns:
        The decoded JSON value.

    Raises:
        ValueError: The text holds no decodable JSON object or array.
    """
    candidates = [m.group(1) for m in _FENCE.finditer(text)]
    candidates.append(text)
    first_error = "no JSON object or array in the reply"
    for candidate in candidates:
        stripped = candidate.strip()
        starts = sorted(i for i in (stripped.find("{"), stripped.find("[")) if i >= 0)
        for start in starts:
            try:
                value, _end = _DECODER.raw_decode(stripped, start)
            except json.JSONDecodeError as exc:
                if first_error.startswith("no JSON"):
                    first_error = f"{exc.msg} (character {exc.pos})"
                continue
            return value
    raise ValueError(first_error)


def _describe_validation_error(exc: ValidationError) -> list[str]:
    described = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        described.append(f"{where}: {error['msg']}")
    return described[:MAX_REPORTED_ERRORS]


def _parse_output(
    text: str,
    schema: type[M],
    validate: Callable[[M], None] | None,
    finish_reason: str | None,
) -> M:
    truncated = (
        ["the reply was cut off at the token limit: give a shorter answer"]
        if finish_reason == "length"
        else []
    )
    try:
        data = extract_json(text)
    except ValueError as exc:
        raise _InvalidOutputError([f"the reply is not valid JSON: {exc}", *truncated]) from exc
    try:
        result = schema.model_validate(data)
    except ValidationError as exc:
        raise _InvalidOutputError(_describe_validation_error(exc) + truncated) from exc
    if validate is not None:
        try:
            validate(result)
        except ValidationError as exc:
            raise _InvalidOutputError(_describe_validation_error(exc)) from exc
        except ValueError as exc:
            raise _InvalidOutputError([str(exc) or type(exc).__name__]) from exc
    return result


def _repair_prompt(errors: Sequence[str], schema_json: dict[str, Any]) -> str:
    listed = "\n".join(f"- {error}" for error in errors)
    return (
        "Your previous reply could not be used:\n"
        f"{listed}\n"
        "Reply again with only the corrected JSON, with no other text, "
        "matching this JSON schema:\n"
        f"{json.dumps(schema_json, separators=(',', ':'))}"
    )


def _schema_name(schema: type[BaseModel]) -> str:
    # OpenAI accepts [a-zA-Z0-9_-]{1,64} here.
    return re.sub(r"[^a-zA-Z0-9_-]", "_", schema.__name__)[:64] or "output"


def _to_sdk(message: Message) -> ChatCompletionMessageParam:
    role, content = message["role"], message["content"]
    if not isinstance(content, str):
        parts: list[ChatCompletionContentPartParam] = []
        for part in content:
            if part["type"] == "text":
                parts.append({"type": "text", "text": part["text"]})
            else:
                image = part["image_url"]
                parts.append(
                    {
                        "type": "image_url",
                        "image_url": {"url": image["url"], "detail": image["detail"]},
                    }
                )
        return {"role": "user", "content": parts}
    if role == "system":
        return {"role": "system", "content": content}
    if role == "assistant":
        return {"role": "assistant", "content": content}
    return {"role": "user", "content": content}


_CALL_FAILURES = (openai.APIError, json.JSONDecodeError)
"""What a call through the SDK raises when it fails: its own errors, and a JSON error when a
200 carries a malformed body (the SDK does not wrap that one)."""


def _is_transient(exc: BaseException) -> bool:
    """Whether trying the same request again may succeed."""
    # A malformed body is a server or proxy fault, like a 5xx.
    if isinstance(exc, openai.APIConnectionError | json.JSONDecodeError):
        return True  # APIConnectionError includes APITimeoutError
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in (408, 429) or exc.status_code >= 500
    return False


def _retry_after_s(exc: BaseException | None) -> float | None:
    if not isinstance(exc, openai.APIStatusError):
        return None
    headers = exc.response.headers
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            continue  # an HTTP-date: rare from model servers, the backoff covers it
    return None


def _status_of(exc: BaseException) -> int | None:
    return exc.status_code if isinstance(exc, openai.APIStatusError) else None


def _summary(exc: BaseException) -> str:
    if isinstance(exc, openai.APIStatusError):
        return exc.message  # the SDK's "Error code: 429 - {body}"
    if isinstance(exc, openai.APITimeoutError):
        return "timed out"
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__
        return f"connection failed: {cause or exc}"
    if isinstance(exc, json.JSONDecodeError):
        return f"malformed response body: {exc}"
    return f"{type(exc).__name__}: {exc}"


DEFAULT_MAX_CONCURRENCY = 64
"""Calls at once per process when ``OPENAI_MAX_CONCURRENCY`` is unset and the server does not
say how many it decodes at once (OpenAI, a remote vLLM)."""


async def server_slots(base_url: str, timeout_s: float = 2.0) -> int | None:
    """How many requests an OpenAI-compatible server decodes at once, when it says so
    (llama.cpp's ``GET /props`` ``total_slots``, next to ``/v1``); None otherwise."""
    parts = urlsplit(base_url)
    path = parts.path.rstrip("/")
    path = path.removesuffix("/v1")
    url = urlunsplit((parts.scheme, parts.netloc, f"{path}/props", "", ""))
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as http:
            reply = await http.get(url)
        slots = reply.json().get("total_slots") if reply.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError):
        return None
    return slots if isinstance(slots, int) and slots > 0 else None


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
        self._usage_sink = usage_sink
        self._client = AsyncOpenAI(
            base_url=settings.base_url,
            api_key=settings.api_key.get_secret_value(),
            timeout=settings.timeout_s,
            max_retries=0,  # our tenacity policy retries; the SDK's would double it
            # Servers (uvicorn, vLLM, llama.cpp) close idle connections after 5 s, as httpx's
            # pool would keep them: a call sent just then went out on a closing connection
            # and cost a retry and its backoff. Drop idle connections well before.
            http_client=DefaultAsyncHttpxClient(
                limits=dataclasses.replace(
                    DEFAULT_CONNECTION_LIMITS, keepalive_expiry=IDLE_CONNECTION_S
                )
            ),
        )
        self._backoff = wait_exponential_jitter(
            multiplier=settings.backoff_base_s,
            max=settings.backoff_max_s,
            jitter=settings.backoff_base_s,
        )
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

    async def aclose(self) -> None:
        """Closes the connection pool."""
        await self._client.close()

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
            "json_schema": {"name": _schema_name(schema), "schema": schema_json, "strict": True},
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
                result = _parse_output(reply.text, schema, validate, reply.finish_reason)
            except _InvalidOutputError as invalid:
                errors, output = invalid.errors, reply.text
                await self._record(purpose, reply, "invalid")
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
                    {"role": "user", "content": _repair_prompt(errors, schema_json)},
                ]
                continue
            await self._record(purpose, reply, "ok")
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
        await self._record(purpose, reply, "ok")
        return reply.text

    async def stream_text(
        self,
        *,
        messages: Sequence[ChatMessage],
        purpose: str,
        max_tokens: int = 512,
        sampling: Sampling = GREEDY,
    ) -> AsyncGenerator[str, None]:
        """Yields the answer's text as it is generated.

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
            Non-empty text deltas, in order.

        Raises:
            LLMUnavailable: The endpoint kept failing, or the stream broke off.
            LLMError: The endpoint refused the request.
        """
        prompt_estimate = _estimate_prompt(messages)
        opened, started = await self._with_retries(
            purpose,
            prompt_estimate,
            lambda: self._open_stream(messages, max_tokens, sampling),
        )
        parts: list[str] = []
        usage = opened.usage
        model = opened.model
        outcome: Outcome = "ok"
        try:
            for delta in opened.first:
                parts.append(delta)
                yield delta
            while not opened.ended and (chunk := await _next_chunk(opened.stream)) is not None:
                model = chunk.model or model
                if chunk.usage is not None:
                    usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                for delta in _deltas(chunk):
                    parts.append(delta)
                    yield delta
        except _CALL_FAILURES as exc:
            outcome = "error"
            log.warning("llm.stream_broken", purpose=purpose, error=_summary(exc))
            raise LLMUnavailable(
                f"stream broke off after {len(parts)} chunk(s): {_summary(exc)}",
                purpose=purpose,
                status_code=_status_of(exc),
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
            await self._record(
                purpose,
                _Reply(
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
    ) -> _OpenedStream:
        """Starts a stream and reads up to its first text delta, the part worth retrying.

        Takes a call slot; the stream returned holds it (``stream_text`` frees it)."""
        slots = await self._call_slots()
        await slots.acquire()
        try:
            stream = await self._client.chat.completions.create(
                model=self.settings.model,
                messages=[_to_sdk(m) for m in messages],
                max_completion_tokens=max_tokens,
                stream=True,
                stream_options={"include_usage": True},
                **self._sampling_args(sampling),
            )
        except BaseException:
            slots.release()
            raise
        model = self.settings.model
        usage: tuple[int, int] | None = None
        try:
            while (chunk := await _next_chunk(stream)) is not None:
                model = chunk.model or model
                if chunk.usage is not None:
                    usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                first = _deltas(chunk)
                if first:
                    return _OpenedStream(stream, first, model, usage, ended=False)
        except BaseException:
            try:
                await stream.close()
            finally:
                slots.release()
            raise
        return _OpenedStream(stream, [], model, usage, ended=True)

    async def _complete(
        self,
        *,
        purpose: str,
        messages: Sequence[Message],
        max_tokens: int,
        sampling: Sampling,
        response_format: ResponseFormatJSONSchema | None,
    ) -> _Reply:
        """One logical call: HTTP attempts until one answers; its usage is not yet recorded."""
        prompt_estimate = _estimate_prompt(messages)

        async def send() -> ChatCompletion:
            async with await self._call_slots():
                return await self._client.chat.completions.create(
                    model=self.settings.model,
                    messages=[_to_sdk(m) for m in messages],
                    max_completion_tokens=max_tokens,
                    response_format=response_format if response_format is not None else omit,
                    **self._sampling_args(sampling),
                )

        completion, started = await self._with_retries(purpose, prompt_estimate, send)
        latency_ms = (time.perf_counter() - started) * 1000
        choice = completion.choices[0] if completion.choices else None
        text = (choice.message.content if choice else None) or ""
        if completion.usage is not None:
            tokens = (completion.usage.prompt_tokens, completion.usage.completion_tokens)
        else:
            tokens = (prompt_estimate, estimate_tokens(text))
        return _Reply(
            text=text,
            finish_reason=choice.finish_reason if choice else None,
            model=completion.model or self.settings.model,
            prompt_tokens=tokens[0],
            completion_tokens=tokens[1],
            latency_ms=latency_ms,
        )

    def _sampling_args(self, sampling: Sampling) -> _SamplingArgs:
        """The request parameters of ``sampling``; llama.cpp's only where the server takes them."""
        args: _SamplingArgs = {"temperature": sampling.temperature}
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

    async def _with_retries(
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
            retry=retry_if_exception(_is_transient),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    number = attempt.retry_state.attempt_number
                    started = time.perf_counter()
                    try:
                        return await send(), started
                    except _CALL_FAILURES as exc:
                        retried = _is_transient(exc) and number < attempts
                        await self._record(
                            purpose,
                            _Reply(
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
                            error=_summary(exc),
                        )
                        raise
        except _CALL_FAILURES as exc:
            if _is_transient(exc):
                raise LLMUnavailable(
                    f"gave up after {attempts} attempt(s): {_summary(exc)}",
                    purpose=purpose,
                    status_code=_status_of(exc),
                ) from exc
            raise LLMError(
                f"request refused: {_summary(exc)}",
                purpose=purpose,
                status_code=_status_of(exc),
            ) from exc
        raise AssertionError("unreachable: tenacity returns or raises")  # pragma: no cover

    def _wait(self, state: RetryCallState) -> float:
        """Backoff before the next attempt: jittered exponential, or the server's hint."""
        computed: float = self._backoff(state)
        failure = state.outcome.exception() if state.outcome is not None else None
        hinted = _retry_after_s(failure)
        if hinted is None:
            return computed
        return min(max(hinted, computed), self.settings.backoff_max_s)

    async def _record(self, purpose: str, reply: _Reply, outcome: Outcome) -> None:
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


async def _next_chunk(
    stream: openai.AsyncStream[ChatCompletionChunk],
) -> ChatCompletionChunk | None:
    # One iterator over the whole stream: the first delta is read under the retry policy,
    # the rest outside it, and `async for` would start a fresh wrapper each time.
    try:
        return await anext(stream)
    except StopAsyncIteration:
        return None


def _deltas(chunk: ChatCompletionChunk) -> list[str]:
    return [c.delta.content for c in chunk.choices if c.delta is not None and c.delta.content]
