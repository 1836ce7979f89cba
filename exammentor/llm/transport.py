"""One HTTP call to the model server, below the client's policy: the SDK's message shape, which
failures are worth another try and how they read, how many calls the server decodes at once,
and reading a stream's deltas."""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx
import openai
from openai.types.chat import (
    ChatCompletionChunk,
    ChatCompletionContentPartParam,
    ChatCompletionMessageParam,
)

from exammentor.llm.messages import (
    Message,
)

IDLE_CONNECTION_S = 2.0
"""How long an idle connection to the model server is kept for reuse (servers close theirs
at 5 s)."""


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
class OpenedStream:
    """A stream whose first text delta arrived (or that ended without one); it holds a call
    slot until closed."""

    stream: openai.AsyncStream[ChatCompletionChunk]
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


async def next_chunk(
    stream: openai.AsyncStream[ChatCompletionChunk],
) -> ChatCompletionChunk | None:
    # One iterator over the whole stream: the first delta is read under the retry policy,
    # the rest outside it, and `async for` would start a fresh wrapper each time.
    try:
        return await anext(stream)
    except StopAsyncIteration:
        return None


def text_deltas(chunk: ChatCompletionChunk) -> list[str]:
    return [c.delta.content for c in chunk.choices if c.delta is not None and c.delta.content]
