"""LLMClient against the scripted OpenAI-compatible server, over real HTTP with the real SDK."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from typing import Any

import pytest
from pydantic import BaseModel

from exammentor.llm.client import LLMClient
from exammentor.llm.messages import (
    ChatMessage,
    LLMError,
    LLMInvalidOutput,
    LLMUnavailable,
    LLMUsage,
)
from exammentor.llm.sampling import Sampling
from exammentor.llm.structured import extract_json
from exammentor.settings import LLMSettings
from tests.fakes.scripted_openai import (
    Content,
    Delay,
    MalformedBody,
    ScriptedOpenAI,
    Status,
    Stream,
    broken_json,
    valid_json,
)

QUESTION: list[ChatMessage] = [
    {"role": "system", "content": "Answer in JSON."},
    {"role": "user", "content": "What is the capital of France?"},
]


class Capital(BaseModel):
    city: str
    country: str


class UsageLog:
    """A usage sink that keeps what it is given."""

    def __init__(self) -> None:
        self.records: list[LLMUsage] = []

    async def __call__(self, usage: LLMUsage) -> None:
        self.records.append(usage)

    @property
    def outcomes(self) -> list[str]:
        return [r.outcome for r in self.records]


def make_settings(base_url: str, **overrides: Any) -> LLMSettings:
    values: dict[str, Any] = {
        "base_url": base_url,
        "api_key": "test-key",
        "model": "test-model",
        "timeout_s": 2.0,
        "max_retries": 3,
        "repair_attempts": 2,
        "backoff_base_s": 0.001,
        "backoff_max_s": 0.01,
    }
    values.update(overrides)
    return LLMSettings(**values)


@pytest.fixture(scope="module")
def scripted_server() -> Iterator[ScriptedOpenAI]:
    with ScriptedOpenAI() as server:
        yield server


@pytest.fixture
def fake(scripted_server: ScriptedOpenAI) -> ScriptedOpenAI:
    scripted_server.reset()
    return scripted_server


@pytest.fixture
def usage() -> UsageLog:
    return UsageLog()


@pytest.fixture
async def client(fake: ScriptedOpenAI, usage: UsageLog) -> AsyncIterator[LLMClient]:
    async with LLMClient(make_settings(fake.base_url), usage_sink=usage) as llm:
        yield llm


PARIS = {"city": "Paris", "country": "France"}


# --- retries -------------------------------------------------------------------------------


async def test_retries_429_then_succeeds(
    fake: ScriptedOpenAI, client: LLMClient, usage: UsageLog
) -> None:
    fake.script(Status(429, retry_after=0), Status(429, retry_after=0), valid_json(PARIS))

    result = await client.structured(messages=QUESTION, schema=Capital, purpose="capital")

    assert result == Capital(**PARIS)
    assert len(fake.chat_requests) == 3
    assert usage.outcomes == ["retry", "retry", "ok"]


async def test_retry_after_is_honoured_up_to_the_cap(fake: ScriptedOpenAI) -> None:
    fake.script(Status(429, retry_after=0.2), Content("fine"))
    settings = make_settings(fake.base_url, backoff_max_s=0.3)
    async with LLMClient(settings) as llm:
        assert await llm.text(messages=QUESTION, purpose="t") == "fine"

    first, second = fake.chat_requests
    assert second.received_at - first.received_at >= 0.19


async def test_persistent_500_exhausts_retries(
    fake: ScriptedOpenAI, client: LLMClient, usage: UsageLog
) -> None:
    fake.set_default(Status(500))

    with pytest.raises(LLMUnavailable) as caught:
        await client.text(messages=QUESTION, purpose="explain")

    attempts = client.settings.max_retries + 1
    assert len(fake.chat_requests) == attempts
    assert caught.value.status_code == 500
    assert caught.value.purpose == "explain"
    assert f"after {attempts} attempt(s)" in caught.value.reason
    assert usage.outcomes == ["retry"] * (attempts - 1) + ["error"]


async def test_503_then_success(fake: ScriptedOpenAI, client: LLMClient) -> None:
    fake.script(Status(503), Content("back"))

    assert await client.text(messages=QUESTION, purpose="t") == "back"
    assert len(fake.chat_requests) == 2


async def test_timeout_then_success(fake: ScriptedOpenAI, usage: UsageLog) -> None:
    fake.script(Delay(1.5, then=Content("too late")), Content("on time"))
    async with LLMClient(make_settings(fake.base_url, timeout_s=0.3), usage) as llm:
        assert await llm.text(messages=QUESTION, purpose="t") == "on time"

    assert len(fake.chat_requests) == 2
    assert usage.outcomes == ["retry", "ok"]
    assert usage.records[0].latency_ms >= 250


async def test_no_retry_on_400(fake: ScriptedOpenAI, client: LLMClient, usage: UsageLog) -> None:
    fake.script(Status(400, message="context length exceeded"), Content("never sent"))

    with pytest.raises(LLMError) as caught:
        await client.text(messages=QUESTION, purpose="t")

    assert not isinstance(caught.value, LLMUnavailable | LLMInvalidOutput)
    assert caught.value.status_code == 400
    assert "context length exceeded" in caught.value.reason
    assert len(fake.chat_requests) == 1
    assert usage.outcomes == ["error"]


async def test_unreachable_endpoint_is_unavailable(usage: UsageLog) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port once the probe socket is closed.
    async with LLMClient(make_settings(f"http://127.0.0.1:{port}/v1"), usage) as llm:
        with pytest.raises(LLMUnavailable, match="connection failed"):
            await llm.text(messages=QUESTION, purpose="t")

    assert usage.outcomes == ["retry", "retry", "retry", "error"]


async def test_malformed_body_is_retried(fake: ScriptedOpenAI, client: LLMClient) -> None:
    fake.script(MalformedBody(), Content("good"))

    assert await client.text(messages=QUESTION, purpose="t") == "good"
    assert len(fake.chat_requests) == 2


# --- structured output and repair ----------------------------------------------------------


async def test_structured_sends_json_schema_response_format(
    fake: ScriptedOpenAI, client: LLMClient
) -> None:
    fake.script(valid_json(PARIS))

    await client.structured(messages=QUESTION, schema=Capital, purpose="capital", max_tokens=64)

    (request,) = fake.chat_requests
    assert request.body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "Capital", "schema": Capital.model_json_schema(), "strict": True},
    }
    assert request.body["model"] == "test-model"
    assert request.body["temperature"] == 0.0
    assert request.body["max_completion_tokens"] == 64
    assert request.messages == list(QUESTION)
    assert request.headers["authorization"] == "Bearer test-key"


async def test_broken_json_is_repaired(
    fake: ScriptedOpenAI, client: LLMClient, usage: UsageLog
) -> None:
    fake.script(broken_json(), valid_json(PARIS))

    result = await client.structured(messages=QUESTION, schema=Capital, purpose="capital")

    assert result.city == "Paris"
    first, repair = fake.chat_requests
    assert repair.messages[: len(QUESTION)] == list(QUESTION)
    assert repair.messages[len(QUESTION)] == {
        "role": "assistant",
        "content": broken_json().text,
    }
    assert "not valid JSON" in repair.last_user_text
    assert '"city"' in repair.last_user_text  # the schema travels with the repair request
    assert repair.body["response_format"] == first.body["response_format"]
    assert usage.outcomes == ["invalid", "ok"]


async def test_a_repair_round_samples_differently_from_the_first(
    fake: ScriptedOpenAI, client: LLMClient
) -> None:
    # A greedy repeat of a degenerate answer gets the same answer back; the repair round
    # must change temperature, seed and repetition penalties.
    fake.script(broken_json(), broken_json(), valid_json(PARIS))

    await client.structured(messages=QUESTION, schema=Capital, purpose="capital")

    first, second, third = (r.body for r in fake.chat_requests)
    assert first["temperature"] == 0.0
    assert "seed" not in first
    assert "repeat_penalty" not in first
    assert second["temperature"] > 0.0
    assert third["temperature"] > second["temperature"]
    assert second["seed"] != third["seed"]
    assert second["frequency_penalty"] > 0
    # The scripted server listens on loopback, so llama.cpp's sampler parameters go too.
    assert second["repeat_penalty"] > 1.0
    assert second["dry_multiplier"] > 0


async def test_text_and_stream_send_the_sampling_they_are_given(
    fake: ScriptedOpenAI, client: LLMClient
) -> None:
    fake.script(Content("a"), Stream(["b", "c"]))
    chosen = Sampling(temperature=0.7, seed=11, repeat_penalty=1.3)

    await client.text(messages=QUESTION, purpose="t", sampling=chosen)
    async with aclosing(client.stream_text(messages=QUESTION, purpose="s", sampling=chosen)) as s:
        assert [d async for d in s] == ["b", "c"]

    for request in fake.chat_requests:
        assert request.body["temperature"] == 0.7
        assert request.body["seed"] == 11
        assert request.body["repeat_penalty"] == 1.3


@pytest.mark.parametrize(
    ("base_url", "setting", "sent"),
    [
        ("http://127.0.0.1:8090/v1", "auto", True),
        ("http://localhost:11434/v1", "auto", True),
        ("http://[::1]:8000/v1", "auto", True),
        ("https://api.openai.com/v1", "auto", False),
        ("https://api.openai.com/v1", "on", True),
        ("http://127.0.0.1:8090/v1", "off", False),
    ],
)
def test_llama_cpp_sampler_parameters_go_only_where_they_are_taken(
    base_url: str, setting: str, sent: bool
) -> None:
    assert make_settings(base_url, sampler_extras=setting).sends_sampler_extras is sent


async def test_schema_errors_are_quoted_in_the_repair_prompt(
    fake: ScriptedOpenAI, client: LLMClient
) -> None:
    fake.script(valid_json({"city": "Paris"}), valid_json(PARIS))

    await client.structured(messages=QUESTION, schema=Capital, purpose="capital")

    assert "country: Field required" in fake.chat_requests[1].last_user_text


async def test_invalid_output_exhausts_repairs(
    fake: ScriptedOpenAI, client: LLMClient, usage: UsageLog
) -> None:
    fake.set_default(valid_json({"town": "Paris"}))

    with pytest.raises(LLMInvalidOutput) as caught:
        await client.structured(messages=QUESTION, schema=Capital, purpose="capital")

    rounds = client.settings.repair_attempts + 1
    assert len(fake.chat_requests) == rounds
    assert usage.outcomes == ["invalid"] * rounds
    assert "city: Field required" in caught.value.errors
    assert caught.value.output == '{"town": "Paris"}'
    # Each repair round restates the original conversation, not the growing history.
    assert all(len(r.messages) == len(QUESTION) + 2 for r in fake.chat_requests[1:])


async def test_validate_callback_triggers_repair(
    fake: ScriptedOpenAI, client: LLMClient, usage: UsageLog
) -> None:
    fake.script(valid_json({"city": "Lyon", "country": "France"}), valid_json(PARIS))

    def must_be_the_capital(answer: Capital) -> None:
        if answer.city != "Paris":
            raise ValueError(f"{answer.city} is not the capital of {answer.country}")

    result = await client.structured(
        messages=QUESTION, schema=Capital, purpose="capital", validate=must_be_the_capital
    )

    assert result.city == "Paris"
    assert "Lyon is not the capital of France" in fake.chat_requests[1].last_user_text
    assert usage.outcomes == ["invalid", "ok"]


@pytest.mark.parametrize(
    "text",
    [
        '```json\n{"city": "Paris", "country": "France"}\n```',
        '```\n{"city": "Paris", "country": "France"}\n```',
        'Sure! Here is the JSON: {"city": "Paris", "country": "France"} Hope it helps.',
        '  {"city": "Paris", "country": "France"}\n',
    ],
)
async def test_wrapped_json_is_accepted_without_repair(
    fake: ScriptedOpenAI, client: LLMClient, text: str
) -> None:
    fake.script(Content(text))

    result = await client.structured(messages=QUESTION, schema=Capital, purpose="capital")

    assert result == Capital(**PARIS)
    assert len(fake.chat_requests) == 1


async def test_truncated_output_asks_for_a_shorter_answer(
    fake: ScriptedOpenAI, client: LLMClient
) -> None:
    fake.script(Content('{"city": "Par', finish_reason="length"), valid_json(PARIS))

    await client.structured(messages=QUESTION, schema=Capital, purpose="capital")

    assert "cut off" in fake.chat_requests[1].last_user_text


async def test_no_repair_when_repairs_are_disabled(fake: ScriptedOpenAI) -> None:
    fake.script(broken_json(), valid_json(PARIS))
    async with LLMClient(make_settings(fake.base_url, repair_attempts=0)) as llm:
        with pytest.raises(LLMInvalidOutput):
            await llm.structured(messages=QUESTION, schema=Capital, purpose="capital")

    assert len(fake.chat_requests) == 1


# --- streaming -----------------------------------------------------------------------------


async def test_stream_yields_chunks_in_order_and_records_usage(
    fake: ScriptedOpenAI, client: LLMClient, usage: UsageLog
) -> None:
    fake.script(Stream(["Photo", "synthesis ", "makes ", "sugar."], prompt_tokens=21))

    chunks = [c async for c in client.stream_text(messages=QUESTION, purpose="tutor")]

    assert chunks == ["Photo", "synthesis ", "makes ", "sugar."]
    (request,) = fake.chat_requests
    assert request.body["stream"] is True
    assert request.body["stream_options"] == {"include_usage": True}
    (record,) = usage.records
    assert (record.purpose, record.outcome) == ("tutor", "ok")
    assert (record.prompt_tokens, record.completion_tokens) == (21, 4)
    assert record.model == "scripted-model"


async def test_stream_parts_hold_the_same_deltas_in_order_and_record_usage_once(
    fake: ScriptedOpenAI, client: LLMClient, usage: UsageLog
) -> None:
    words = [f"w{i} " for i in range(50)]
    fake.script(Stream(words, prompt_tokens=21))

    parts = [p async for p in client.stream_parts(messages=QUESTION, purpose="tutor")]

    assert all(parts), "every part holds at least one delta"
    assert [d for p in parts for d in p] == words
    (record,) = usage.records
    assert (record.outcome, record.prompt_tokens, record.completion_tokens) == ("ok", 21, 50)


async def test_stream_retries_before_the_first_chunk(
    fake: ScriptedOpenAI, client: LLMClient, usage: UsageLog
) -> None:
    fake.script(Status(503), Status(429, retry_after=0), Stream(["a", "b"]))

    chunks = [c async for c in client.stream_text(messages=QUESTION, purpose="tutor")]

    assert chunks == ["a", "b"]
    assert usage.outcomes == ["retry", "retry", "ok"]


async def test_stream_broken_after_first_chunk_is_not_retried(
    fake: ScriptedOpenAI, client: LLMClient, usage: UsageLog
) -> None:
    fake.script(Stream(["one ", "two ", "three"], cut_after=2), Stream(["never"]))
    received: list[str] = []

    async def consume() -> None:
        async for chunk in client.stream_text(messages=QUESTION, purpose="tutor"):
            received.append(chunk)

    with pytest.raises(LLMUnavailable, match="stream broke off"):
        await consume()

    assert received == ["one ", "two "]
    assert len(fake.chat_requests) == 1
    assert usage.outcomes == ["error"]
    assert usage.records[0].completion_tokens > 0  # estimated from what did arrive


async def test_a_stream_cut_off_reads_as_a_broken_connection_not_a_timeout(
    fake: ScriptedOpenAI, client: LLMClient
) -> None:
    # Streams go over the SDK's aiohttp transport, which maps a server hanging up to a
    # connect timeout: the reader tells them apart.
    fake.script(Stream(["one ", "two "], cut_after=1))

    with pytest.raises(LLMUnavailable) as caught:
        async for _ in client.stream_text(messages=QUESTION, purpose="tutor"):
            pass

    assert "connection failed" in str(caught.value)
    assert "timed out" not in str(caught.value)


async def test_a_stream_to_a_closed_port_is_a_failed_connection(usage: UsageLog) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with LLMClient(make_settings(f"http://127.0.0.1:{port}/v1"), usage) as llm:
        with pytest.raises(LLMUnavailable, match="connection failed") as caught:
            async for _ in llm.stream_text(messages=QUESTION, purpose="t"):
                pass

    assert usage.outcomes == ["retry", "retry", "retry", "error"]
    # The reason reaches the client (a stream's error event): no address of the model server.
    assert str(port) not in caught.value.reason


async def test_stream_without_usage_chunk_is_estimated(
    fake: ScriptedOpenAI, client: LLMClient, usage: UsageLog
) -> None:
    fake.script(Stream(["abcd", "efgh"], usage=False))

    assert [c async for c in client.stream_text(messages=QUESTION, purpose="t")] == [
        "abcd",
        "efgh",
    ]

    (record,) = usage.records
    assert record.completion_tokens == 2
    assert record.prompt_tokens > 0


async def test_stream_closed_early_still_records_usage(
    fake: ScriptedOpenAI, client: LLMClient, usage: UsageLog
) -> None:
    fake.script(Stream(["a", "b", "c", "d"], chunk_delay_s=0.01))

    stream = client.stream_text(messages=QUESTION, purpose="t")
    first = await anext(stream)
    await stream.aclose()

    assert first == "a"
    assert usage.outcomes == ["ok"]


async def test_empty_stream_yields_nothing(fake: ScriptedOpenAI, client: LLMClient) -> None:
    fake.script(Stream([]))

    assert [c async for c in client.stream_text(messages=QUESTION, purpose="t")] == []


# --- usage ---------------------------------------------------------------------------------


async def test_usage_sink_sees_every_attempt(
    fake: ScriptedOpenAI, client: LLMClient, usage: UsageLog
) -> None:
    fake.script(
        Status(429, retry_after=0),
        Content(broken_json().text, prompt_tokens=30, completion_tokens=5),
        Content('{"city": "Paris", "country": "France"}', prompt_tokens=60, completion_tokens=12),
    )

    await client.structured(messages=QUESTION, schema=Capital, purpose="capital")

    assert usage.outcomes == ["retry", "invalid", "ok"]
    assert {r.purpose for r in usage.records} == {"capital"}
    assert [(r.prompt_tokens, r.completion_tokens) for r in usage.records[1:]] == [
        (30, 5),
        (60, 12),
    ]
    assert usage.records[0].completion_tokens == 0
    assert usage.records[0].prompt_tokens > 0  # estimated: the server reported nothing
    assert usage.records[0].model == "test-model"
    assert all(r.latency_ms > 0 for r in usage.records)


async def test_usage_is_estimated_when_the_server_reports_none(
    fake: ScriptedOpenAI, client: LLMClient, usage: UsageLog
) -> None:
    fake.script(Content("twelve chars", usage=False))

    await client.text(messages=QUESTION, purpose="t")

    assert usage.records[0].completion_tokens == 3


async def test_failing_usage_sink_does_not_fail_the_call(fake: ScriptedOpenAI) -> None:
    async def broken_sink(_usage: LLMUsage) -> None:
        raise RuntimeError("metrics database down")

    fake.script(Content("still fine"))
    async with LLMClient(make_settings(fake.base_url), broken_sink) as llm:
        assert await llm.text(messages=QUESTION, purpose="t") == "still fine"


# --- extract_json --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ('```json\n{"a": 1}\n```\nsome words', {"a": 1}),
        ("Here you go:\n```JSON\n[1, 2]\n```", [1, 2]),
        ('The answer is {"a": {"b": [1]}} and {"c": 2}', {"a": {"b": [1]}}),
        ('prefix [ not json ] then {"a": 1}', {"a": 1}),
    ],
)
def test_extract_json(text: str, expected: Any) -> None:
    assert extract_json(text) == expected


@pytest.mark.parametrize("text", ["", "no json here", '{"a": ', "```json\n{oops}\n```"])
def test_extract_json_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"JSON|character"):
        extract_json(text)
