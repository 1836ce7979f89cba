"""A scripted OpenAI-compatible HTTP server for fault tests.

Real HTTP on 127.0.0.1 (a free port), so the real ``openai`` SDK and its transport are under
test, not a mock of them. Each chat request takes the next reply from a queue; when the queue
is empty the ``default`` reply (or a function of the request) answers. Every request is
recorded, so a test can check what the client sent: the repair prompt, ``response_format``,
``stream_options``...

    async with ScriptedOpenAI() as fake:
        fake.script(Status(429, retry_after=0.01), Content('{"answer": "Paris"}'))
        client = LLMClient(LLMSettings(base_url=fake.base_url))
        ...
        assert len(fake.chat_requests) == 2

Replies: :class:`Status` (an error status with an OpenAI error body), :class:`Delay` (answer
late, to trip the client's timeout), :class:`Content` (a completion; ``broken_json()`` and
``valid_json()`` build common ones), :class:`Stream` (SSE chunks in OpenAI's format, with the
usage chunk last, optionally cut off mid-way) and :class:`MalformedBody` (a 200 whose body is
not JSON). A ``Content`` answers a streaming request as a stream, and a ``Stream`` answers a
plain request with its joined text, so one script serves both kinds of call.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

MODEL = "scripted-model"


@dataclass(frozen=True)
class Status:
    """An HTTP error: 429 (with ``Retry-After``), 400, 500, 503 ..."""

    code: int
    retry_after: float | None = None
    message: str = "scripted failure"


@dataclass(frozen=True)
class Content:
    """A completed answer. ``usage=False`` leaves the usage block out, as some servers do."""

    text: str
    prompt_tokens: int = 11
    completion_tokens: int = 7
    usage: bool = True
    finish_reason: str = "stop"


@dataclass(frozen=True)
class Stream:
    """An SSE stream of text chunks.

    Attributes:
        chunks: Content deltas in order.
        usage: Send the final usage chunk (when the request asked for it).
        cut_after: Drop the connection after this many chunks, without ``[DONE]``.
        chunk_delay_s: Pause between chunks.
    """

    chunks: Sequence[str]
    prompt_tokens: int = 11
    completion_tokens: int | None = None
    usage: bool = True
    cut_after: int | None = None
    chunk_delay_s: float = 0.0


@dataclass(frozen=True)
class Delay:
    """Wait ``seconds`` before answering with ``then`` (longer than the client's timeout)."""

    seconds: float
    then: Content | Stream | Status | None = None


@dataclass(frozen=True)
class MalformedBody:
    """A 200 whose body is not JSON at all."""

    body: str = '{"choices": [ this is not json'


Reply = Status | Content | Stream | Delay | MalformedBody
Responder = Callable[[dict[str, Any]], Reply]


def broken_json() -> Content:
    """A completion whose text is cut-off JSON."""
    return Content('{"answer": "Par')


def valid_json(value: Mapping[str, Any] | Sequence[Any]) -> Content:
    """A completion whose text is ``value`` as JSON."""
    return Content(json.dumps(value))


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: dict[str, Any]
    received_at: float

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The chat messages of a completion request."""
        return list(self.body.get("messages", []))

    @property
    def last_user_text(self) -> str:
        """Content of the last user message (the repair prompt on a repair round)."""
        users = [m for m in self.messages if m.get("role") == "user"]
        return str(users[-1]["content"]) if users else ""


@dataclass(frozen=True)
class SentChunk:
    """One content chunk of a stream, recorded just before the server sent it."""

    stream: int
    """Which stream (0 for the first streamed reply since the last reset)."""
    index: int
    text: str
    sent_at: float


@dataclass
class _State:
    queue: deque[Reply] = field(default_factory=deque)
    default: Reply | Responder = field(default_factory=lambda: Content("ok"))
    requests: list[RecordedRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    sent: list[SentChunk] = field(default_factory=list)
    streams: int = 0
    closed_early: list[int] = field(default_factory=list)
    answering: int = 0
    most_answering: int = 0


def _error_body(status: Status) -> dict[str, Any]:
    return {
        "error": {
            "message": status.message,
            "type": "rate_limit_error" if status.code == 429 else "server_error",
            "code": status.code,
        }
    }


def _completion(content: Content) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content.text},
                "finish_reason": content.finish_reason,
            }
        ],
    }
    if content.usage:
        body["usage"] = {
            "prompt_tokens": content.prompt_tokens,
            "completion_tokens": content.completion_tokens,
            "total_tokens": content.prompt_tokens + content.completion_tokens,
        }
    return body


def _chunk(delta: dict[str, Any], finish_reason: str | None = None) -> str:
    payload = {
        "id": "chatcmpl-scripted",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
    return f"data: {json.dumps(payload)}\n\n"


async def _sse(
    stream: Stream, include_usage: bool, state: _State | None = None
) -> AsyncIterator[str]:
    number = -1
    if state is not None:
        with state.lock:
            number = state.streams
            state.streams += 1
    finished = False
    try:
        yield _chunk({"role": "assistant", "content": ""})
        for sent, text in enumerate(stream.chunks):
            if stream.cut_after is not None and sent >= stream.cut_after:
                # An exception inside the body iterator makes uvicorn drop the connection
                # mid-response, which the client sees as a broken stream.
                finished = True
                raise ConnectionAbortedError("scripted cut-off")
            if stream.chunk_delay_s:
                await asyncio.sleep(stream.chunk_delay_s)
            if state is not None:
                with state.lock:
                    state.sent.append(SentChunk(number, sent, text, time.monotonic()))
            yield _chunk({"content": text})
        finished = True
    finally:
        # Reached without finishing only when the client closed the stream (a cancelled
        # generation): what the tutor's disconnect test looks for.
        if not finished and state is not None:
            with state.lock:
                state.closed_early.append(number)
    yield _chunk({}, finish_reason="stop")
    if include_usage and stream.usage:
        completion_tokens = (
            stream.completion_tokens if stream.completion_tokens is not None else len(stream.chunks)
        )
        usage = {
            "prompt_tokens": stream.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": stream.prompt_tokens + completion_tokens,
        }
        payload = {
            "id": "chatcmpl-scripted",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": MODEL,
            "choices": [],
            "usage": usage,
        }
        yield f"data: {json.dumps(payload)}\n\n"
    yield "data: [DONE]\n\n"


def _as_stream(content: Content) -> Stream:
    # Split after spaces so the chunks join back to exactly the original text.
    words = content.text.split(" ")
    chunks = [w + " " for w in words[:-1]] + [words[-1]]
    return Stream(
        chunks=[c for c in chunks if c],
        prompt_tokens=content.prompt_tokens,
        completion_tokens=content.completion_tokens,
        usage=content.usage,
    )


async def _respond(reply: Reply, body: dict[str, Any], state: _State | None = None) -> Response:
    streaming = bool(body.get("stream"))
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    if isinstance(reply, Delay):
        await asyncio.sleep(reply.seconds)
        return await _respond(reply.then or Content("late"), body, state)
    if isinstance(reply, Status):
        headers = {} if reply.retry_after is None else {"Retry-After": str(reply.retry_after)}
        return JSONResponse(_error_body(reply), status_code=reply.code, headers=headers)
    if isinstance(reply, MalformedBody):
        return PlainTextResponse(reply.body, media_type="application/json")
    if isinstance(reply, Content) and streaming:
        reply = _as_stream(reply)
    if isinstance(reply, Stream):
        if not streaming:
            return JSONResponse(_completion(Content("".join(reply.chunks))))
        return StreamingResponse(_sse(reply, include_usage, state), media_type="text/event-stream")
    return JSONResponse(_completion(reply))


def _build_app(state: _State) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": {"message": "body is not JSON"}}, status_code=400)
        with state.lock:
            state.requests.append(
                RecordedRequest(
                    method=request.method,
                    path=request.url.path,
                    headers=dict(request.headers),
                    body=body,
                    received_at=time.monotonic(),
                )
            )
            scripted = state.queue.popleft() if state.queue else None
            default = state.default
        if scripted is None:
            scripted = default(body) if callable(default) else default
        with state.lock:
            state.answering += 1
            state.most_answering = max(state.most_answering, state.answering)
        try:
            return await _respond(scripted, body, state)
        finally:
            with state.lock:
                state.answering -= 1

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "test"}]}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


class ScriptedOpenAI:
    """The scripted server; run it with ``async with`` (or ``with``, or start/stop).

    It serves from a background thread with its own event loop, so its timing does not
    depend on what the test's loop is doing.
    """

    def __init__(self, default: Reply | Responder | None = None) -> None:
        """Prepares the server (not yet listening).

        Args:
            default: Reply when the script is empty, or a function from the request body
                to a reply; ``Content("ok")`` when ``None``.
        """
        self._state = _State()
        self._initial_default: Reply | Responder = default or self._state.default
        self._state.default = self._initial_default
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._port = 0

    @property
    def base_url(self) -> str:
        """The OpenAI base URL (``http://127.0.0.1:PORT/v1``) to give the client."""
        if not self._port:
            raise RuntimeError("ScriptedOpenAI is not started")
        return f"http://127.0.0.1:{self._port}/v1"

    def script(self, *replies: Reply) -> None:
        """Appends replies to the queue, answered in order by the next chat requests."""
        with self._state.lock:
            self._state.queue.extend(replies)

    def set_default(self, default: Reply | Responder) -> None:
        """Changes what answers once the script is used up."""
        with self._state.lock:
            self._state.default = default

    @property
    def pending(self) -> int:
        """Replies still queued."""
        with self._state.lock:
            return len(self._state.queue)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, oldest first."""
        with self._state.lock:
            return list(self._state.requests)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        """The chat completion requests received, oldest first."""
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    @property
    def sent_chunks(self) -> list[SentChunk]:
        """Content chunks of every stream, in the order they were sent."""
        with self._state.lock:
            return list(self._state.sent)

    @property
    def streams_closed_early(self) -> list[int]:
        """Streams the client closed before their last chunk (cancelled generations)."""
        with self._state.lock:
            return list(self._state.closed_early)

    @property
    def answering(self) -> int:
        """Chat requests being answered now (a stream counts until its first byte)."""
        with self._state.lock:
            return self._state.answering

    @property
    def most_answering(self) -> int:
        """The most chat requests answered at once so far: how many calls a client had open
        together (a stream counts until its first byte)."""
        with self._state.lock:
            return self._state.most_answering

    def image_parts(self) -> list[dict[str, Any]]:
        """Every ``image_url`` content part the requests carried, oldest first."""
        parts: list[dict[str, Any]] = []
        for request in self.chat_requests:
            for message in request.messages:
                content = message.get("content")
                if isinstance(content, list):
                    parts += [p for p in content if p.get("type") == "image_url"]
        return parts

    def reset(self) -> None:
        """Empties the script and the request record, and restores the first default.

        A server shared by several tests is reset between them (starting one costs more than
        a test does).
        """
        with self._state.lock:
            self._state.queue.clear()
            self._state.requests.clear()
            self._state.sent.clear()
            self._state.closed_early.clear()
            self._state.streams = 0
            self._state.most_answering = self._state.answering
            self._state.default = self._initial_default

    def start(self) -> None:
        """Starts listening on a free loopback port; returns once requests are served."""
        if self._server is not None:
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            _build_app(self._state),
            log_config=None,  # leave the test process's logging configuration alone
            log_level="warning",
            access_log=False,
            lifespan="off",
            ws="none",
            http="h11",
            timeout_graceful_shutdown=1,
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=[sock])),
            name="scripted-openai",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("scripted OpenAI server did not start")
            time.sleep(0.005)

    def stop(self) -> None:
        """Stops the server and waits for its thread."""
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self) -> ScriptedOpenAI:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def __aenter__(self) -> ScriptedOpenAI:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.to_thread(self.stop)
