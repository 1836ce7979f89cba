"""One HTTP call to the model server, below the client's policy: the SDK's message shape, which
failures are worth another try and how they read, how many calls the server decodes at once,
and reading a stream's chunks.

A stream is read as raw server-sent events (:class:`SseReader`), not through the SDK's
``AsyncStream``: the SDK builds a pydantic ``ChatCompletionChunk`` per chunk, a third of a
tutor process's CPU per token under load, for the three fields read here (the text delta,
the model, the usage). The SDK still makes the HTTP call (its status errors, its timeouts);
the reader maps what can fail while reading the body to the SDK's own errors, as its stream
would: a timeout to ``APITimeoutError``, a broken connection to ``APIConnectionError``, an
``{"error": ...}`` event to ``APIError``, a malformed event to ``json.JSONDecodeError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import anyio
import httpx
import httpx2
import openai
from openai.types.chat import (
    ChatCompletionContentPartParam,
    ChatCompletionMessageParam,
)

from exammentor.llm.messages import (
    Message,
)

IDLE_CONNECTION_S = 2.0
"""How long an idle connection to the model server is kept for reuse (servers close theirs
at 5 s)."""

# What reading a response body raises, as the SDK's own stream catches it: the HTTP library
# it bundles (httpx2, which its aiohttp transport raises too), and httpx when it is handed an
# httpx client; a TLS failure AnyIO does not map yet.
_READ_TIMEOUTS: tuple[type[Exception], ...] = (httpx2.TimeoutException, httpx.TimeoutException)
_READ_FAILURES: tuple[type[Exception], ...] = (
    *_READ_TIMEOUTS,
    httpx2.RequestError,
    httpx.RequestError,
    ssl.SSLError,
    anyio.EndOfStream,
)


@dataclass(frozen=True)
class Reply:
    """One answered (non-streaming) HTTP call, before its usage is recorded."""

    text: str
    finish_reason: str | None
    model: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float


@dataclass(frozen=True)
class StreamChunk:
    """What is read of one chunk of a chat-completion stream."""

    deltas: list[str]
    """Non-empty text deltas, in choice order (usually one, none in role-only, finishing and
    usage chunks)."""
    model: str | None = None
    usage: tuple[int, int] | None = None
    """Prompt and completion tokens, in the usage chunk."""
    finish_reason: str | None = None


def parse_chunk(data: str, request: Any = None) -> StreamChunk:
    """One event's ``data`` (a JSON chat-completion chunk) read into its fields.

    Raises:
        json.JSONDecodeError: ``data`` is not JSON.
        openai.APIError: The event is an error body (``{"error": ...}``), as the SDK raises.
    """
    body = json.loads(data)
    if not isinstance(body, dict):
        return StreamChunk([])
    error = body.get("error")
    if error:
        message = error.get("message") if isinstance(error, dict) else None
        if not isinstance(message, str) or not message:
            message = "An error occurred during streaming"  # the SDK's words
        raise openai.APIError(message, request=request, body=error)
    deltas: list[str] = []
    finish_reason: str | None = None
    for choice in body.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        delta = choice.get("delta")
        content = delta.get("content") if isinstance(delta, dict) else None
        if isinstance(content, str) and content:
            deltas.append(content)
        finish_reason = choice.get("finish_reason") or finish_reason
    usage = body.get("usage")
    tokens = None
    if isinstance(usage, dict):
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if isinstance(prompt, int) and isinstance(completion, int):
            tokens = (prompt, completion)
    model = body.get("model")
    return StreamChunk(deltas, model if isinstance(model, str) else None, tokens, finish_reason)


DRAIN_S = 0.1
"""How long the rest of a body after ``[DONE]`` is read, so its connection is reused (the
SDK's own stream waits as long)."""


def connection_failure(exc: BaseException) -> aiohttp.ClientError | None:
    """The aiohttp error under ``exc`` when a connection failed rather than timed out.

    The SDK's aiohttp transport maps every aiohttp connection error to a connect *timeout*
    (a refused connection, a server that hung up mid-body): the error it came from, further
    down the chain, tells them apart.
    """
    current = exc.__cause__
    while current is not None:
        if isinstance(current, aiohttp.ClientError):
            return None if isinstance(current, TimeoutError) else current
        current = current.__cause__
    return None


def read_failure(exc: Exception, request: httpx2.Request) -> openai.APIConnectionError:
    """The SDK's error for a failed read of a response body: a timeout or a broken connection."""
    if isinstance(exc, _READ_TIMEOUTS) and connection_failure(exc) is None:
        return openai.APITimeoutError(request=request)
    return openai.APIConnectionError(request=request)


class SseReader:
    """A chat-completion stream's server-sent events, read off the SDK's raw response.

    :meth:`next_chunks` returns every chunk that one read of the body completed: under load
    several chunks arrive together, and they travel on together. Events other than
    ``data`` fields (``event``, ``id``, comments) are ignored, as the SDK ignores them for
    chat completions; ``data: [DONE]`` ends the stream.
    """

    def __init__(self, response: httpx2.Response) -> None:
        """Reads ``response``, a streaming response the SDK opened (status already checked)."""
        self._response = response
        self._body: AsyncIterator[bytes] = response.aiter_bytes()
        self._pending = b""
        self._data: list[str] = []
        self._done = False
        self._exhausted = False

    async def next_chunks(self) -> list[StreamChunk] | None:
        """The chunks the next read completed (at least one), or None once the stream ended.

        Raises:
            openai.APITimeoutError: A read timed out.
            openai.APIConnectionError: The connection broke.
            openai.APIError: The server sent an error event.
            json.JSONDecodeError: The server sent an event that is not JSON.
        """
        request = self._response.request
        while not self._done:
            try:
                block = await anext(self._body)
            except StopAsyncIteration:
                self._exhausted = True
                block = b"\n\n" if self._pending or self._data else b""
                self._done = True
            except _READ_FAILURES as exc:
                raise read_failure(exc, request) from exc
            chunks = [parse_chunk(data, request) for data in self._events(block)]
            if chunks:
                return chunks
        return None

    def _events(self, block: bytes) -> list[str]:
        """The ``data`` of every event ``block`` completes (none after ``[DONE]``)."""
        found: list[str] = []
        lines = (self._pending + block).split(b"\n")
        self._pending = lines.pop()  # an incomplete line waits for the next read
        for raw in lines:
            line = raw.rstrip(b"\r")
            if not line:  # a blank line ends an event
                if self._data:
                    data = "\n".join(self._data)
                    self._data = []
                    if data.startswith("[DONE]"):
                        self._done = True
                        return found
                    found.append(data)
            elif line.startswith(b"data:"):
                value = line[5:]
                self._data.append(
                    (value[1:] if value.startswith(b" ") else value).decode("utf-8", "replace")
                )
        return found

    async def close(self) -> None:
        """Releases the connection: the rest of a finished body is read briefly first, so
        the connection goes back to the pool."""
        if self._done and not self._exhausted:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(DRAIN_S):
                    async for _ in self._body:
                        pass
        await self._response.aclose()


@dataclass(frozen=True)
class OpenedStream:
    """A stream whose first text delta arrived (or that ended without one); it holds a call
    slot until closed."""

    stream: SseReader
    first: list[str]
    model: str
    usage: tuple[int, int] | None
    ended: bool


def to_sdk(message: Message) -> ChatCompletionMessageParam:
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


CALL_FAILURES = (openai.APIError, json.JSONDecodeError)
"""What a call through the SDK raises when it fails: its own errors, and a JSON error when a
200 carries a malformed body (the SDK does not wrap that one)."""


def is_transient(exc: BaseException) -> bool:
    """Whether trying the same request again may succeed."""
    # A malformed body is a server or proxy fault, like a 5xx.
    if isinstance(exc, openai.APIConnectionError | json.JSONDecodeError):
        return True  # APIConnectionError includes APITimeoutError
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in (408, 429) or exc.status_code >= 500
    return False


def retry_after_s(exc: BaseException | None) -> float | None:
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


def status_of(exc: BaseException) -> int | None:
    return exc.status_code if isinstance(exc, openai.APIStatusError) else None


def failure_summary(exc: BaseException) -> str:
    if isinstance(exc, openai.APIStatusError):
        return exc.message  # the SDK's "Error code: 429 - {body}"
    failed = connection_failure(exc)
    if failed is not None:
        # aiohttp's message names the server's address; the reason reaches clients.
        return f"connection failed: {type(failed).__name__}"
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
