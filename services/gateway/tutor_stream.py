"""The tutor's streams and uploads, shared by the HTTP routes and gRPC.

- :func:`open_stream`: publishes ``tutor.stream`` (or ``tutor.lesson``) and waits for its
  first chunk only, so a refusal (another user's ``material_ids``, a prompt too large) is
  an error with its declared status rather than a 200 that fails later; after that, chunks
  are relayed as :data:`~exammentor.contracts.tutor.StreamEvent` values as they come.
  Nothing buffers the answer.
- **Coalescing**: chunks that are ready together travel together. Whatever queued for one
  request while its last write went out is read at once (:meth:`TutorStream.batches`), and
  its consecutive tokens become one ``token`` event with their text concatenated
  (:func:`batch_events`): one NDJSON line, one body write, one gRPC message, rather than one
  per token. Nothing is merged across a ``reset``, a ``citation`` or the end, and the order
  is kept. A stream read at its pace still gets each token as it comes (nothing waits to
  fill a batch); one read behind gets a batch instead of a backlog.
- multipart uploads read into the same payload as JSON uploads.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.parser
import email.policy
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

from exammentor.contracts.bindings import Binding
from exammentor.contracts.commands import INVALID_REQUEST, STILL_RUNNING
from exammentor.contracts.tutor import (
    Citation,
    CitationEvent,
    DoneEvent,
    ErrorEvent,
    Lesson,
    MaterialAddRequest,
    ResetEvent,
    StreamError,
    StreamEvent,
    StreamResult,
    StreamUsage,
    TokenEvent,
    UsageEvent,
)
from exammentor.messaging.dispatch import ResultTimeout
from exammentor.messaging.result_relay import RelayChunk
from services.gateway.core import CommandStream, GatewayCore
from services.gateway.inputs import GatewayError, parse, still_running

NDJSON = "application/x-ndjson"
"""Media type of the typed stream: ask ``/api/tutor/stream`` for it with ``Accept`` or
``?format=ndjson``."""


RESET_RULE = "\n\n---\n\n"
"""What the raw-markdown stream writes where the typed stream sends a ``reset``."""

_END = object()
"""Put on a stream's queue after its final chunk."""
HANDOFF_SIZE = 64
"""Chunks handed from a stream's task to its reader at most; a reader that falls behind
holds the task, and the relay's own bounded queue behind it decides what gives way."""


class TutorStream:
    """An opened tutor stream: its first chunk is in hand, the rest still to come.

    The command's stream (its publish, its wait, its tracing span) lives in one task of its
    own from open to close: HTTP opens a stream in the request's task and reads it in the
    response's, and a span or a context variable set in one task cannot be reset in another.
    """

    def __init__(
        self,
        run: CommandStream,
        first: RelayChunk,
        queue: asyncio.Queue[object],
        task: asyncio.Task[None],
    ) -> None:
        self.run = run
        self.first = first
        self._queue = queue
        self._task = task

    @property
    def request_id(self) -> UUID:
        """The request's id."""
        return self.run.request_id

    async def batches(self) -> AsyncIterator[list[RelayChunk]]:
        """The first chunk, then the rest as they arrive: each time one awaited chunk and
        every chunk queued behind it by then, in order.

        Raises:
            ResultTimeout: No final chunk within the gateway's wait (the request goes on);
                the chunks before it come first.
        """
        yield [self.first]
        if self.first.final:
            return
        while True:
            item = await self._queue.get()
            batch: list[RelayChunk] = []
            while True:
                if item is _END or isinstance(item, BaseException):
                    if batch:
                        yield batch
                    if isinstance(item, BaseException):
                        raise item
                    return
                assert isinstance(item, RelayChunk)
                batch.append(item)
                if self._queue.empty():
                    break
                item = self._queue.get_nowait()
            yield batch

    async def chunks(self) -> AsyncIterator[RelayChunk]:
        """The first chunk, then the rest as they arrive, one at a time.

        Raises:
            ResultTimeout: No final chunk within the gateway's wait (the request goes on).
        """
        async for batch in self.batches():
            for chunk in batch:
                yield chunk

    async def event_batches(self) -> AsyncIterator[list[StreamEvent]]:
        """The typed stream, a write at a time: tokens, then citations, usage, any error,
        and ``done``; the tokens of one batch of chunks merged (:func:`batch_events`)."""
        seq = 0
        shown = False
        try:
            async for batch in self.batches():
                events = batch_events(self.run, batch, seq, shown=shown)
                seq += len(events)
                shown = shown or any(isinstance(e, TokenEvent) for e in events)
                if events:
                    yield events
        except ResultTimeout:
            yield [
                ErrorEvent(
                    seq=seq,
                    error=StreamError(
                        code=STILL_RUNNING.code,
                        message=f"still running; fetch request {self.request_id} later",
                    ),
                ),
                DoneEvent(seq=seq + 1, partial=True),
            ]

    async def events(self) -> AsyncIterator[StreamEvent]:
        """The typed stream, an event at a time (tokens merged as :meth:`event_batches`)."""
        async for events in self.event_batches():
            for event in events:
                yield event

    async def text_batches(self) -> AsyncIterator[str]:
        """Only the text, as the original's client reads ``/api/tutor/stream``, a write at a
        time.

        Plain text cannot take back what it showed: a reset (the tutor replaced a looping
        answer) is a rule line, and the new answer follows it.
        """
        async for events in self.event_batches():
            text = "".join(
                event.text if isinstance(event, TokenEvent) else RESET_RULE
                for event in events
                if isinstance(event, TokenEvent | ResetEvent)
            )
            if text:
                yield text

    async def tokens(self) -> AsyncIterator[str]:
        """The text of :meth:`text_batches` (kept for the callers reading it so)."""
        async for text in self.text_batches():
            yield text

    async def close(self) -> None:
        """Stops following; a worker still streaming is told no one reads any more."""
        if not self._task.done():
            self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def batch_events(
    run: CommandStream, chunks: list[RelayChunk], seq: int, *, shown: bool = False
) -> list[StreamEvent]:
    """The events of chunks that arrived together, numbered from ``seq``: consecutive token
    chunks become one ``token`` event with their text concatenated (a token event carries
    the text of one or more model tokens). Any other chunk (``reset``, the result with its
    citations and ``done``, an error) ends the run of tokens before it; order is kept.

    A result reached with no text ``shown`` before it (a request replayed by its
    Idempotency-Key, whose tokens went to the first caller, or an answer that came whole)
    starts with its whole text as one ``token`` event, so every stream carries the answer.
    """
    events: list[StreamEvent] = []
    text: list[str] = []
    for chunk in chunks:
        if chunk.kind == "progress" and chunk.data.get("type") == "token":
            text.append(str(chunk.data.get("text", "")))
            continue
        made = _events(run, chunk, seq + len(events) + (1 if text else 0), shown or bool(text))
        if not made:
            continue  # a progress kind the stream does not show: no boundary
        if text:
            events.append(TokenEvent(seq=seq + len(events), text="".join(text)))
            text = []
        events.extend(made)
    if text:
        events.append(TokenEvent(seq=seq + len(events), text="".join(text)))
    return events


def _events(run: CommandStream, chunk: RelayChunk, seq: int, shown: bool) -> list[StreamEvent]:
    if chunk.kind == "progress":
        if chunk.data.get("type") == "token":
            return [TokenEvent(seq=seq, text=str(chunk.data.get("text", "")))]
        if chunk.data.get("type") == "reset":
            return [ResetEvent(seq=seq, reason=str(chunk.data.get("reason", "")))]
        return []
    if chunk.kind == "error":
        error = run.error(chunk)
        return [
            ErrorEvent(seq=seq, error=StreamError(code=error.code, message=error.message)),
            DoneEvent(seq=seq + 1, partial=True),
        ]
    data = run.command.result.model_validate(chunk.data)
    if isinstance(data, Lesson):
        citations, usage, error_, partial = data.citations, None, None, False
    else:
        assert isinstance(data, StreamResult)
        citations, usage, error_, partial = data.citations, data.usage, data.error, data.partial
    source = data.source
    events: list[StreamEvent] = []
    if not shown and data.markdown:
        events.append(TokenEvent(seq=seq, text=data.markdown))
    for citation in citations:
        events.append(CitationEvent(seq=seq + len(events), citation=citation))
    if usage is not None:
        events.append(UsageEvent(seq=seq + len(events), usage=usage))
    if error_ is not None:
        events.append(ErrorEvent(seq=seq + len(events), error=error_))
    events.append(DoneEvent(seq=seq + len(events), partial=partial, source=source))
    return events


async def open_stream(
    core: GatewayCore, binding: Binding, user: UUID, data: Any, *, idempotency_key: str | None
) -> TutorStream:
    """Publishes a streaming tutor command (or finds the request a repeated
    ``idempotency_key`` names) and waits for its first chunk.

    Raises:
        GatewayError: The command was refused (its declared status), or could not be sent.
    """
    loop = asyncio.get_running_loop()
    opened: asyncio.Future[tuple[CommandStream, RelayChunk]] = loop.create_future()
    queue: asyncio.Queue[object] = asyncio.Queue(maxsize=HANDOFF_SIZE)
    task = asyncio.create_task(
        _follow(core, binding, user, data, idempotency_key, opened=opened, queue=queue)
    )
    try:
        run, first = await asyncio.shield(opened)
    except BaseException:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise
    return TutorStream(run, first, queue, task)


async def _follow(
    core: GatewayCore,
    binding: Binding,
    user: UUID,
    data: Any,
    key: str | None,
    *,
    opened: asyncio.Future[tuple[CommandStream, RelayChunk]],
    queue: asyncio.Queue[object],
) -> None:
    """The command's whole stream in one task: the first chunk (or the refusal) to
    ``opened``, then each further chunk to ``queue``."""
    try:
        async with core.stream(binding, user, data, idempotency_key=key) as run:
            stream = run.chunks()
            first = await _first_chunk(run, stream)
            opened.set_result((run, first))
            if first.final:
                return
            async for chunk in stream:
                await queue.put(chunk)
            await queue.put(_END)
    except asyncio.CancelledError:
        if not opened.done():
            opened.cancel()
        else:
            # Cancelled by anything but close() (a shutdown): the reader stops waiting and
            # says where to fetch the answer.
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(ResultTimeout("the gateway stopped following the request"))
        raise
    except Exception as exc:  # noqa: BLE001 - handed to the reader, which raises it
        if not opened.done():
            opened.set_exception(exc)
        else:
            await queue.put(exc)


async def _first_chunk(run: CommandStream, stream: AsyncIterator[RelayChunk]) -> RelayChunk:
    """The first chunk; a refusal in it, or none in time, is an error."""
    try:
        first = await anext(stream)
    except (StopAsyncIteration, ResultTimeout):
        raise still_running(run.request_id) from None
    if first.kind == "error":
        raise run.error(first)
    return first


def stream_summary(events: list[StreamEvent]) -> tuple[str, list[Citation], StreamUsage | None]:
    """Text, citations and usage of collected events (for tests and tools)."""
    text = "".join(e.text for e in events if isinstance(e, TokenEvent))
    cites = [e.citation for e in events if isinstance(e, CitationEvent)]
    usage = next((e.usage for e in events if isinstance(e, UsageEvent)), None)
    return text, cites, usage


# ---- material --------------------------------------------------------------------------


def multipart_material(content_type: str, body: bytes) -> MaterialAddRequest:
    """A ``multipart/form-data`` upload as the ``tutor.material.add`` payload.

    Parts: ``file`` (a PDF, or a text file), or ``text``; optional ``title`` (else the
    file's name). Parsed with the standard library's MIME parser.

    Raises:
        GatewayError: Not multipart, or no usable part (``invalid_request`` naming it).
    """
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise _bad("body", "not multipart/form-data with a boundary")
    fields: dict[str, Any] = {}
    filename = ""
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if not isinstance(name, str) or not isinstance(payload, bytes):
            continue
        if name == "file":
            filename = str(part.get_filename() or "")
            if payload.startswith(b"%PDF") or part.get_content_type() == "application/pdf":
                fields["pdf_base64"] = base64.b64encode(payload).decode()
            else:
                fields["text"] = _utf8(payload, "file")
        elif name in ("text", "title"):
            fields[name] = _utf8(payload, name)
    fields.setdefault("title", filename)
    return parse(MaterialAddRequest, fields)


def _utf8(data: bytes, field: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _bad(field, f"not UTF-8 text (invalid byte at position {exc.start})") from exc


def _bad(field: str, reason: str) -> GatewayError:
    return GatewayError(
        INVALID_REQUEST,
        f"{field}: {reason}",
        {"errors": [{"field": field, "reason": reason, "type": "value_error"}]},
    )
