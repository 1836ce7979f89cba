"""The per-process bound on model calls at once (``OPENAI_MAX_CONCURRENCY``): calls past it
wait for a slot, a stream holds its slot until closed, and an unset bound falls back to the
default when the server does not state its slot count."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import aclosing

import pytest

from exammentor.llm.client import DEFAULT_MAX_CONCURRENCY, LLMClient
from exammentor.settings import LLMSettings
from tests.fakes.scripted_openai import Content, Delay, ScriptedOpenAI, Stream


@pytest.fixture
def model() -> Iterator[ScriptedOpenAI]:
    with ScriptedOpenAI() as server:
        yield server


def _settings(base_url: str, limit: int | None) -> LLMSettings:
    return LLMSettings(
        base_url=base_url, api_key="k", model="m", timeout_s=10, max_retries=0,
        max_concurrency=limit,
    )  # fmt: skip


async def test_calls_past_the_bound_wait_for_a_slot(model: ScriptedOpenAI) -> None:
    model.set_default(Delay(0.5, then=Content("ok")))
    async with LLMClient(_settings(model.base_url, 2)) as llm:
        answers = await asyncio.gather(
            *(
                llm.text(messages=[{"role": "user", "content": f"q{n}"}], purpose="t")
                for n in range(6)
            )
        )
    assert answers == ["ok"] * 6
    assert model.most_answering == 2


async def test_a_stream_holds_its_slot_until_it_is_closed(model: ScriptedOpenAI) -> None:
    model.script(Stream(["a", "b", "c"]))
    model.set_default(Content("next"))
    async with LLMClient(_settings(model.base_url, 1)) as llm:
        stream = llm.stream_text(messages=[{"role": "user", "content": "s"}], purpose="t")
        async with aclosing(stream):
            assert await anext(stream) == "a"
            waiting = asyncio.create_task(
                llm.text(messages=[{"role": "user", "content": "t"}], purpose="t")
            )
            await asyncio.sleep(0.2)  # room for a wrong client to send it now
            closed_at = time.monotonic()
        assert await waiting == "next"
    _, second = model.chat_requests
    assert second.received_at >= closed_at


async def test_an_unset_bound_is_the_default_when_the_server_names_no_slot_count(
    model: ScriptedOpenAI,
) -> None:
    async with LLMClient(_settings(model.base_url, None)) as llm:
        assert await llm.concurrency() == DEFAULT_MAX_CONCURRENCY
    async with LLMClient(_settings(model.base_url, 3)) as llm:
        assert await llm.concurrency() == 3
