"""The gateway's tutor use cases (``services/gateway/tutor_cases.py``) without Kafka or HTTP.

Relayed chunks become the typed stream's events with ``seq`` from 0 and no gaps, whatever
the transport; a refusal in the first chunk is an error before anything is streamed; a chat
``user_id`` of another user is refused; multipart uploads become the JSON upload's payload.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from exammentor.contracts.commands import INVALID_REQUEST, STILL_RUNNING, Command
from exammentor.contracts.tutor import (
    TUTOR_LESSON,
    TUTOR_STREAM,
    Citation,
    CitationEvent,
    DoneEvent,
    ErrorEvent,
    ExplainRequest,
    StreamError,
    StreamEvent,
    StreamUsage,
    TokenEvent,
    UsageEvent,
)
from exammentor.messaging.dispatch import ResultTimeout
from exammentor.messaging.result_relay import RelayChunk
from services.gateway import tutor_cases
from services.gateway.core import CommandStream, GatewayError
from tests.unit.tutor.pdfs import TOPIC_PAGES, make_pdf

REQUEST = uuid.uuid4()
MATERIAL = uuid.uuid4()
USAGE = {"prompt_tokens": 90, "completion_tokens": 3, "latency_ms": 120.0}


def token(seq: int, text: str) -> RelayChunk:
    return RelayChunk(REQUEST, seq, "progress", {"type": "token", "text": text})


def result(seq: int, **fields: Any) -> RelayChunk:
    return RelayChunk(REQUEST, seq, "result", fields)


def error(seq: int, code: str, message: str, **details: Any) -> RelayChunk:
    return RelayChunk(REQUEST, seq, "error", {"code": code, "message": message, **details})


class ScriptedRelay:
    """Stands in for a dispatched command: yields its chunks, then maybe times out."""

    def __init__(
        self, chunks: list[RelayChunk], *, then_timeout: bool = False, then_wait: bool = False
    ) -> None:
        self.request_id = REQUEST
        self._chunks = chunks
        self._then_timeout = then_timeout
        self._then_wait = then_wait

    async def chunks(self, timeout_s: float) -> AsyncIterator[RelayChunk]:
        for chunk in self._chunks:
            yield chunk
        if self._then_timeout:
            raise ResultTimeout(str(self.request_id))
        if self._then_wait:
            await asyncio.Event().wait()  # a worker still streaming


class ScriptedCore:
    """Stands in for the gateway core: ``stream`` follows a :class:`ScriptedRelay`."""

    def __init__(self, relay: ScriptedRelay) -> None:
        self.relay = relay
        self.closed = 0

    @asynccontextmanager
    async def stream(
        self, command: Command[Any, Any], user: uuid.UUID, body: Any
    ) -> AsyncIterator[CommandStream]:
        try:
            yield CommandStream(command, self.relay, 60)  # type: ignore[arg-type]
        finally:
            self.closed += 1


async def opened(
    chunks: list[RelayChunk], command: Command[Any, Any] = TUTOR_STREAM, **relay: Any
) -> tuple[tutor_cases.TutorStream, ScriptedCore]:
    core = ScriptedCore(ScriptedRelay(chunks, **relay))
    body = ExplainRequest(topic="Vectors")
    stream = await tutor_cases.open_stream(core, command, uuid.uuid4(), body)  # type: ignore[arg-type]
    return stream, core


async def events_of(stream: tutor_cases.TutorStream) -> list[StreamEvent]:
    return [e async for e in stream.events()]


# ---- the typed stream ------------------------------------------------------------------


async def test_tokens_then_citations_usage_and_done_numbered_without_gaps() -> None:
    stream, _ = await opened(
        [
            token(1, "A vector "),
            RelayChunk(REQUEST, 2, "progress", {"type": "status", "stage": "ranking"}),
            token(3, "has direction."),
            result(
                4,
                markdown="A vector has direction.",
                citations=[{"page": 3, "material_id": str(MATERIAL)}, {"page": 5}],
                usage=USAGE,
            ),
        ]
    )
    events = await events_of(stream)
    assert events == [
        TokenEvent(seq=0, text="A vector "),
        TokenEvent(seq=1, text="has direction."),
        CitationEvent(seq=2, citation=Citation(page=3, material_id=MATERIAL)),
        CitationEvent(seq=3, citation=Citation(page=5)),
        UsageEvent(seq=4, usage=StreamUsage(**USAGE)),
        DoneEvent(seq=5, partial=False),
    ]
    assert stream.request_id == REQUEST
    text, cites, usage = tutor_cases.stream_summary(events)
    assert (text, [c.page for c in cites], usage) == (
        "A vector has direction.",
        [3, 5],
        StreamUsage(**USAGE),
    )


async def test_a_partial_answer_ends_with_its_error_and_a_partial_done() -> None:
    stream, _ = await opened(
        [
            token(1, "Half"),
            result(
                2,
                markdown="Half",
                usage=USAGE,
                partial=True,
                error={"code": "model_failed", "message": "the model server went away"},
            ),
        ]
    )
    kinds = [(e.kind, e.seq) for e in await events_of(stream)]
    assert kinds == [("token", 0), ("usage", 1), ("error", 2), ("done", 3)]
    last = (
        await events_of((await opened([result(1, markdown="", usage=USAGE, partial=True)]))[0])
    )[-1]
    assert last == DoneEvent(seq=1, partial=True)


async def test_an_error_after_the_first_token_is_an_event_with_its_declared_code() -> None:
    stream, _ = await opened(
        [token(1, "Begun"), error(2, "model_failed", "the model failed on every retry")]
    )
    events = await events_of(stream)
    assert events[1:] == [
        ErrorEvent(
            seq=1,
            error=StreamError(code="model_failed", message="the model failed on every retry"),
        ),
        DoneEvent(seq=2, partial=True),
    ]


async def test_an_undeclared_error_code_is_not_passed_on_as_if_declared() -> None:
    stream, _ = await opened([token(1, "Begun"), error(2, "no_such_code", "odd worker")])
    events = await events_of(stream)
    assert isinstance(events[1], ErrorEvent)
    assert events[1].error.code != "no_such_code"
    assert events[-1] == DoneEvent(seq=2, partial=True)


async def test_a_wait_that_runs_out_says_where_to_fetch_the_request() -> None:
    stream, _ = await opened([token(1, "Slow ")], then_timeout=True)
    events = await events_of(stream)
    assert [e.kind for e in events] == ["token", "error", "done"]
    assert isinstance(events[1], ErrorEvent)
    assert events[1].error.code == STILL_RUNNING.code
    assert str(REQUEST) in events[1].error.message
    assert events[2] == DoneEvent(seq=2, partial=True)


async def test_a_lesson_has_citations_and_done_but_no_usage() -> None:
    stream, _ = await opened(
        [token(1, "# Lesson"), result(2, markdown="# Lesson", citations=[{"page": 1}])],
        TUTOR_LESSON,
    )
    assert [e.kind for e in await events_of(stream)] == ["token", "citation", "done"]


async def test_the_raw_variant_is_the_text_alone() -> None:
    stream, _ = await opened(
        [token(1, "a "), token(2, "b"), result(3, markdown="a b", usage=USAGE)]
    )
    assert [t async for t in stream.tokens()] == ["a ", "b"]


async def test_a_first_chunk_that_is_final_is_the_whole_stream() -> None:
    stream, _ = await opened([result(1, markdown="", usage=USAGE)])
    assert [e.kind for e in await events_of(stream)] == ["usage", "done"]


async def test_closing_the_stream_lets_the_command_go() -> None:
    stream, core = await opened([token(1, "a"), token(2, "b")], then_wait=True)
    seen = []
    async for text in stream.tokens():
        seen.append(text)
        if len(seen) == 2:
            break
    assert core.closed == 0, "still following the worker"
    await stream.close()
    assert core.closed == 1
    await stream.close()  # twice is harmless (HTTP and gRPC both close in a finally)


async def test_the_command_is_followed_in_one_task_from_open_to_close() -> None:
    # HTTP opens in the request's task and reads in the response's: the command's context
    # (its tracing span) must be entered and left in one task, or it cannot be reset.
    tasks: list[asyncio.Task[Any] | None] = []

    class Core(ScriptedCore):
        @asynccontextmanager
        async def stream(
            self, command: Command[Any, Any], user: uuid.UUID, body: Any
        ) -> AsyncIterator[CommandStream]:
            tasks.append(asyncio.current_task())
            async with super().stream(command, user, body) as run:
                yield run
            tasks.append(asyncio.current_task())

    core = Core(ScriptedRelay([token(1, "a"), result(2, markdown="a", usage=USAGE)]))
    stream = await tutor_cases.open_stream(
        core,  # type: ignore[arg-type]
        TUTOR_STREAM,
        uuid.uuid4(),
        ExplainRequest(topic="Vectors"),
    )

    async def read_elsewhere() -> list[str]:
        try:
            return [t async for t in stream.tokens()]
        finally:
            await stream.close()

    assert await asyncio.create_task(read_elsewhere()) == ["a"]
    assert len(tasks) == 2
    assert tasks[0] is tasks[1]
    assert tasks[0] is not asyncio.current_task()


# ---- refusals before the first token ---------------------------------------------------


async def test_a_refusal_in_the_first_chunk_is_an_error_with_its_declared_status() -> None:
    core = ScriptedCore(
        ScriptedRelay(
            [error(1, "material_unknown", "material_ids[0]: not yours", field="material_ids[0]")]
        )
    )
    with pytest.raises(GatewayError) as refused:
        await tutor_cases.open_stream(
            core,  # type: ignore[arg-type]
            TUTOR_STREAM,
            uuid.uuid4(),
            ExplainRequest(topic="Optics"),
        )
    assert (refused.value.code, refused.value.error.http_status) == ("material_unknown", 422)
    assert refused.value.details["field"] == "material_ids[0]"
    assert core.closed == 1


@pytest.mark.parametrize("then_timeout", [True, False])
async def test_no_first_chunk_is_still_running_with_the_request_id(then_timeout: bool) -> None:
    core = ScriptedCore(ScriptedRelay([], then_timeout=then_timeout))
    with pytest.raises(GatewayError) as refused:
        await tutor_cases.open_stream(
            core,  # type: ignore[arg-type]
            TUTOR_STREAM,
            uuid.uuid4(),
            ExplainRequest(topic="Optics"),
        )
    assert refused.value.code == STILL_RUNNING.code
    assert refused.value.request_id == REQUEST
    assert core.closed == 1


# ---- chat ------------------------------------------------------------------------------


def test_a_user_id_is_accepted_only_when_it_is_the_tokens_user() -> None:
    user = uuid.uuid4()
    for claimed in (None, "", user, str(user)):
        tutor_cases.check_user(user, claimed)
    with pytest.raises(GatewayError) as refused:
        tutor_cases.check_user(user, uuid.uuid4())
    assert (refused.value.code, refused.value.error.http_status) == ("user_mismatch", 403)
    assert refused.value.details == {"field": "user_id"}


def test_the_chat_query_takes_a_slug_and_nothing_else() -> None:
    assert tutor_cases.ChatQuery(topic_id="laws-of-motion").user_id is None
    with pytest.raises(ValueError, match="topic_id"):
        tutor_cases.ChatQuery(topic_id="no slug!")
    with pytest.raises(ValueError, match="extra"):
        tutor_cases.ChatQuery.model_validate({"topic_id": "optics", "page": 2})


# ---- multipart uploads -----------------------------------------------------------------

BOUNDARY = "tutor-test-boundary"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def multipart(*parts: tuple[str, bytes, str | None, str | None]) -> bytes:
    """A form body of ``(name, data, filename, content type)`` parts."""

    def lines() -> Iterator[bytes]:
        for name, data, filename, content_type in parts:
            yield f"--{BOUNDARY}\r\n".encode()
            disposition = f'Content-Disposition: form-data; name="{name}"'
            if filename is not None:
                disposition += f'; filename="{filename}"'
            yield (disposition + "\r\n").encode()
            if content_type is not None:
                yield f"Content-Type: {content_type}\r\n".encode()
            yield b"\r\n" + data + b"\r\n"
        yield f"--{BOUNDARY}--\r\n".encode()

    return b"".join(lines())


def test_a_pdf_file_part_becomes_pdf_base64_titled_by_its_file_name() -> None:
    pdf = make_pdf(TOPIC_PAGES[:2])
    body = multipart(("file", pdf, "biology.pdf", "application/octet-stream"))
    payload = tutor_cases.multipart_material(CONTENT_TYPE, body)
    assert payload.pdf_bytes() == pdf
    assert (payload.text, payload.title) == (None, "biology.pdf")


def test_a_text_file_or_field_becomes_text_and_a_title_field_wins() -> None:
    body = multipart(
        ("file", "Osmosis moves water. ∆ψ".encode(), "notes.txt", "text/plain"),
        ("title", b"Osmosis", None, None),
    )
    payload = tutor_cases.multipart_material(CONTENT_TYPE, body)
    assert (payload.text, payload.title, payload.pdf_base64) == (
        "Osmosis moves water. ∆ψ",
        "Osmosis",
        None,
    )
    field = tutor_cases.multipart_material(CONTENT_TYPE, multipart(("text", b"Plain", None, None)))
    assert (field.text, field.title) == ("Plain", "")


def test_a_pdf_is_known_by_its_bytes_whatever_its_declared_type() -> None:
    pdf = make_pdf(TOPIC_PAGES[:1])
    payload = tutor_cases.multipart_material(
        CONTENT_TYPE, multipart(("file", pdf, "scan.bin", "text/plain"))
    )
    assert payload.pdf_base64 == base64.b64encode(pdf).decode()


@pytest.mark.parametrize(
    ("content_type", "body", "field"),
    [
        ("text/plain", b"just text", "body"),
        (CONTENT_TYPE, multipart(("file", b"\xff\xfe bad", "x.txt", "text/plain")), "file"),
        (
            CONTENT_TYPE,
            multipart(("title", b"\xc3", None, None), ("text", b"ok", None, None)),
            "title",
        ),
        (CONTENT_TYPE, multipart(("other", b"ignored", None, None)), "text"),
    ],
)
def test_a_bad_upload_is_refused_naming_the_part(
    content_type: str, body: bytes, field: str
) -> None:
    with pytest.raises(GatewayError) as refused:
        tutor_cases.multipart_material(content_type, body)
    assert refused.value.code == INVALID_REQUEST.code
    assert field in refused.value.message


def test_a_pdf_and_a_text_together_are_refused() -> None:
    body = multipart(
        ("file", make_pdf(TOPIC_PAGES[:1]), "a.pdf", "application/pdf"),
        ("text", b"and text", None, None),
    )
    with pytest.raises(GatewayError) as refused:
        tutor_cases.multipart_material(CONTENT_TYPE, body)
    assert "either pdf_base64 or text" in refused.value.message
