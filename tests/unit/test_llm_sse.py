"""The model stream read as raw server-sent events (exammentor/llm/transport.py SseReader):
every chunk shape the scripted server and llama.cpp send, how a read's chunks come together,
and the failures mapped to the SDK's own errors as its stream raised them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx2
import openai
import pytest

from exammentor.llm.transport import SseReader, StreamChunk, parse_chunk

REQUEST = httpx2.Request("POST", "http://model.invalid/v1/chat/completions")

# Shapes as llama.cpp sends them (its role-only first chunk has "content": null).
ROLE = {
    "choices": [
        {"finish_reason": None, "index": 0, "delta": {"role": "assistant", "content": None}}
    ],
    "model": "smollm2-135m-instruct",
    "object": "chat.completion.chunk",
}


def content(text: str) -> dict[str, Any]:
    return {
        "choices": [{"finish_reason": None, "index": 0, "delta": {"content": text}}],
        "model": "smollm2-135m-instruct",
        "object": "chat.completion.chunk",
    }


FINISH = {"choices": [{"finish_reason": "length", "index": 0, "delta": {}}], "model": "m"}
USAGE = {
    "choices": [],
    "model": "smollm2-135m-instruct",
    "usage": {"completion_tokens": 4, "prompt_tokens": 32, "total_tokens": 36},
    "timings": {"predicted_n": 4},
}


def event(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload)
    return f"data: {data}\n\n".encode()


class RawResponse:
    """What SseReader reads of the SDK's response: the body's reads, its request, close."""

    def __init__(self, reads: Sequence[bytes | BaseException]) -> None:
        self._reads = list(reads)
        self.closed = False
        self.read_after_done = 0
        self.request = REQUEST

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        for read in self._reads:
            if isinstance(read, BaseException):
                raise read
            yield read

    async def aclose(self) -> None:
        self.closed = True


def reader(*reads: bytes | BaseException) -> tuple[SseReader, RawResponse]:
    raw = RawResponse(reads)
    return SseReader(raw), raw  # type: ignore[arg-type]


async def all_reads(sse: SseReader) -> list[list[StreamChunk]]:
    found = []
    while (chunks := await sse.next_chunks()) is not None:
        found.append(chunks)
    return found


def test_a_content_chunk_gives_its_delta_and_model() -> None:
    assert parse_chunk(json.dumps(content(" glad"))) == StreamChunk(
        [" glad"], "smollm2-135m-instruct", None, None
    )


def test_role_only_empty_and_finishing_chunks_give_no_delta() -> None:
    assert parse_chunk(json.dumps(ROLE)).deltas == []
    assert parse_chunk(json.dumps(content(""))).deltas == []
    finish = parse_chunk(json.dumps(FINISH))
    assert (finish.deltas, finish.finish_reason) == ([], "length")


def test_the_usage_chunk_gives_prompt_and_completion_tokens() -> None:
    chunk = parse_chunk(json.dumps(USAGE))
    assert (chunk.deltas, chunk.usage) == ([], (32, 4))


def test_an_error_body_is_the_sdks_api_error() -> None:
    with pytest.raises(openai.APIError, match="slot unavailable") as raised:
        parse_chunk(json.dumps({"error": {"message": "slot unavailable", "code": 503}}), REQUEST)
    assert raised.value.body == {"message": "slot unavailable", "code": 503}
    with pytest.raises(openai.APIError, match="An error occurred during streaming"):
        parse_chunk(json.dumps({"error": "boom"}), REQUEST)


def test_a_malformed_event_is_a_json_error() -> None:
    with pytest.raises(json.JSONDecodeError):
        parse_chunk('{"choices": [ not json')


async def test_a_whole_stream_reads_in_order_up_to_done() -> None:
    sse, raw = reader(
        event(ROLE),
        event(content("I")),
        event(content("'m")),
        event(FINISH),
        event(USAGE),
        event("[DONE]"),
    )
    reads = await all_reads(sse)
    assert [d for chunks in reads for c in chunks for d in c.deltas] == ["I", "'m"]
    assert [c.usage for chunks in reads for c in chunks if c.usage] == [(32, 4)]
    await sse.close()
    assert raw.closed


async def test_chunks_of_one_read_come_together_and_split_events_wait_for_their_end() -> None:
    together = event(content("a")) + event(content("b"))
    split = event(content("c"))
    sse, _ = reader(together, split[:9], split[9:] + event("[DONE]"))
    reads = await all_reads(sse)
    assert [[d for c in chunks for d in c.deltas] for chunks in reads] == [["a", "b"], ["c"]]


async def test_crlf_lines_comments_and_other_fields_are_read_as_the_sdk_reads_them() -> None:
    body = (
        b": keep-alive\r\n\r\n"
        b"event: message\r\nid: 7\r\ndata: " + json.dumps(content("x")).encode() + b"\r\n\r\n"
        b"data:" + json.dumps(content("y")).encode() + b"\n\n"
    )
    sse, _ = reader(body, event("[DONE]"))
    reads = await all_reads(sse)
    assert [d for chunks in reads for c in chunks for d in c.deltas] == ["x", "y"]


async def test_nothing_after_done_is_read_as_a_chunk() -> None:
    sse, _ = reader(event(content("a")) + event("[DONE]") + event(content("late")))
    assert [[d for c in chunks for d in c.deltas] for chunks in await all_reads(sse)] == [["a"]]


async def test_a_body_ending_without_done_ends_the_stream() -> None:
    sse, _ = reader(event(content("a")), b"data: " + json.dumps(content("b")).encode())
    assert [d for chunks in await all_reads(sse) for c in chunks for d in c.deltas] == ["a", "b"]


async def test_an_error_event_mid_stream_raises_after_the_chunks_before_it() -> None:
    sse, _ = reader(event(content("a")), event({"error": {"message": "model crashed"}}))
    assert (await sse.next_chunks() or [])[0].deltas == ["a"]
    with pytest.raises(openai.APIError, match="model crashed"):
        await sse.next_chunks()


async def test_a_read_timeout_is_the_sdks_timeout_error() -> None:
    sse, _ = reader(event(content("a")), httpx2.ReadTimeout("slow", request=REQUEST))
    await sse.next_chunks()
    with pytest.raises(openai.APITimeoutError):
        await sse.next_chunks()


async def test_a_broken_connection_is_the_sdks_connection_error() -> None:
    sse, _ = reader(httpx2.RemoteProtocolError("peer closed", request=REQUEST))
    with pytest.raises(openai.APIConnectionError) as raised:
        await sse.next_chunks()
    assert not isinstance(raised.value, openai.APITimeoutError)
