"""The gateway's tutor stream coalesces what arrived together (services/gateway/tutor_stream.py):
consecutive tokens become one token event, never across a reset, a citation or the end, and
the order is kept."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID, uuid4

from exammentor.contracts.tutor import (
    STREAM_EVENT,
    TUTOR_STREAM,
    StreamEvent,
    StreamResult,
    TokenEvent,
)
from exammentor.messaging.dispatch import Dispatched
from exammentor.messaging.result_relay import RelayChunk
from services.gateway.core import CommandStream
from services.gateway.tutor_stream import _END, TutorStream, batch_events

REQUEST = uuid4()


def run() -> CommandStream:
    return CommandStream(TUTOR_STREAM, Dispatched(REQUEST, asyncio.Queue()), timeout_s=60)


def token(seq: int, text: str) -> RelayChunk:
    return RelayChunk(REQUEST, seq, "progress", {"type": "token", "text": text})


def reset(seq: int) -> RelayChunk:
    return RelayChunk(REQUEST, seq, "progress", {"type": "reset", "reason": "word_list"})


def result(seq: int, pages: list[int]) -> RelayChunk:
    data = StreamResult(
        markdown="ab",
        citations=[
            {"material_id": UUID(int=1), "title": "notes", "page": p, "snippet": "s"}  # type: ignore[list-item]
            for p in pages
        ],
        usage={"prompt_tokens": 1, "completion_tokens": 2, "latency_ms": 3.0},  # type: ignore[arg-type]
    )
    return RelayChunk(REQUEST, seq, "result", data.model_dump(mode="json"))


def shape(events: list[StreamEvent]) -> list[tuple[int, str, Any]]:
    return [(e.seq, e.kind, e.text if isinstance(e, TokenEvent) else None) for e in events]


def test_consecutive_tokens_become_one_event_with_their_text() -> None:
    events = batch_events(run(), [token(0, "Photo"), token(1, "synthesis "), token(2, "is")], 5)
    assert shape(events) == [(5, "token", "Photosynthesis is")]


def test_tokens_are_not_merged_across_a_reset() -> None:
    chunks = [token(0, "a"), token(1, "b"), reset(2), token(3, "c"), token(4, "d")]
    assert shape(batch_events(run(), chunks, 0)) == [
        (0, "token", "ab"),
        (1, "reset", None),
        (2, "token", "cd"),
    ]


def test_tokens_end_before_the_citations_usage_and_done_of_the_result() -> None:
    events = batch_events(run(), [token(0, "a"), token(1, "b"), result(2, [3, 4])], 0)
    assert shape(events) == [
        (0, "token", "ab"),
        (1, "citation", None),
        (2, "citation", None),
        (3, "usage", None),
        (4, "done", None),
    ]


def test_a_progress_kind_the_stream_does_not_show_is_no_boundary() -> None:
    other = RelayChunk(REQUEST, 1, "progress", {"type": "stage", "name": "ranking"})
    assert shape(batch_events(run(), [token(0, "a"), other, token(2, "b")], 0)) == [
        (0, "token", "ab")
    ]


def test_a_merged_token_event_is_a_legal_wire_event() -> None:
    (event,) = batch_events(run(), [token(0, "two "), token(1, "tokens")], 0)
    assert STREAM_EVENT.validate_json(event.model_dump_json()) == event


async def test_chunks_queued_together_are_read_as_one_batch_in_order() -> None:
    queue: asyncio.Queue[object] = asyncio.Queue()
    done = asyncio.create_task(asyncio.sleep(0))
    stream = TutorStream(run(), token(0, "a"), queue, done)
    for chunk in (token(1, "b"), token(2, "c"), reset(3), token(4, "d"), result(5, [])):
        queue.put_nowait(chunk)
    queue.put_nowait(_END)
    batches = [events async for events in stream.event_batches()]
    assert [shape(b) for b in batches] == [
        [(0, "token", "a")],
        [
            (1, "token", "bc"),
            (2, "reset", None),
            (3, "token", "d"),
            (4, "usage", None),
            (5, "done", None),
        ],
    ]
    await stream.close()


async def test_a_stream_read_at_its_pace_gets_each_token_as_it_comes() -> None:
    queue: asyncio.Queue[object] = asyncio.Queue()
    stream = TutorStream(run(), token(0, "a"), queue, asyncio.create_task(asyncio.sleep(0)))
    batches = stream.text_batches()
    assert await anext(batches) == "a"
    queue.put_nowait(token(1, "b"))
    assert await anext(batches) == "b"
    queue.put_nowait(token(2, "c"))
    queue.put_nowait(result(3, []))
    queue.put_nowait(_END)
    assert [text async for text in batches] == ["c"]
    await stream.close()


def test_a_result_reached_with_no_text_shown_starts_with_its_whole_text() -> None:
    # A stream replayed by its Idempotency-Key: the tokens went to the first caller.
    assert shape(batch_events(run(), [result(0, [3])], 0)) == [
        (0, "token", "ab"),
        (1, "citation", None),
        (2, "usage", None),
        (3, "done", None),
    ]


def test_a_result_after_text_shown_in_an_earlier_batch_repeats_none_of_it() -> None:
    assert shape(batch_events(run(), [result(0, [])], 7, shown=True)) == [
        (7, "usage", None),
        (8, "done", None),
    ]
