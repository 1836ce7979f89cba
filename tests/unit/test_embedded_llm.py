"""The embedded llama.cpp server, run as its own process, driven through LLMClient."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from exammentor.llm.client import ChatMessage, LLMClient, LLMUsage
from exammentor.llm.embedded import MODEL_NAME, find_model_path
from exammentor.settings import LLMSettings

pytestmark = pytest.mark.llm

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 120


@dataclass
class RunningServer:
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    port = _free_port()
    log_path = tmp_path_factory.mktemp("embedded-llm") / "llm.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "exammentor.llm.embedded",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=REPO,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    server = RunningServer(process, f"http://127.0.0.1:{port}/v1", log_path)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not _answers(f"{server.base_url}/models"):
            if process.poll() is not None:
                pytest.fail(f"embedded server exited early:\n{log_path.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"embedded server not ready in {READY_TIMEOUT_S}s")
            time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
async def llm(embedded: RunningServer) -> AsyncIterator[tuple[LLMClient, list[LLMUsage]]]:
    records: list[LLMUsage] = []

    async def sink(usage: LLMUsage) -> None:
        records.append(usage)

    # The settings' default model name must be what the server reports.
    settings = LLMSettings(base_url=embedded.base_url, timeout_s=60, model=MODEL_NAME)
    async with LLMClient(settings, usage_sink=sink) as client:
        yield client, records


class Planet(BaseModel):
    name: str = Field(max_length=40)
    has_rings: bool
    kind: Literal["rocky", "gas giant", "ice giant"]


PLANET_QUESTION: list[ChatMessage] = [
    {"role": "system", "content": "You answer with a JSON object only."},
    {
        "role": "user",
        "content": "Describe the planet Saturn: its name, whether it has rings, "
        "and whether it is rocky, a gas giant or an ice giant.",
    },
]

EXPLAIN: list[ChatMessage] = [
    {"role": "system", "content": "You are a concise tutor."},
    {"role": "user", "content": "Explain in two sentences why the sky is blue."},
]


def _answered(records: list[LLMUsage]) -> list[LLMUsage]:
    return [r for r in records if r.outcome != "retry"]


def test_model_file_is_found() -> None:
    assert find_model_path().suffix == ".gguf"


def test_reports_the_configured_model_name(embedded: RunningServer) -> None:
    with urllib.request.urlopen(f"{embedded.base_url}/models", timeout=5) as response:
        listing = json.load(response)
    assert [m["id"] for m in listing["data"]] == [MODEL_NAME]
    assert LLMSettings.model_fields["model"].default == MODEL_NAME


async def test_structured_output_follows_the_schema_deterministically(
    llm: tuple[LLMClient, list[LLMUsage]],
) -> None:
    client, records = llm

    first = await client.structured(
        messages=PLANET_QUESTION, schema=Planet, purpose="test.planet", max_tokens=96
    )
    second = await client.structured(
        messages=PLANET_QUESTION, schema=Planet, purpose="test.planet", max_tokens=96
    )

    assert isinstance(first, Planet)
    assert first == second
    # The json_schema response format constrains decoding, so no repair round was needed.
    # (A transport retry, from a kept-alive connection the server closed, is allowed.)
    answered = _answered(records)
    assert [r.outcome for r in answered] == ["ok", "ok"]
    assert all(r.model == MODEL_NAME for r in answered)
    assert all(r.prompt_tokens > 20 and r.completion_tokens > 0 for r in answered)


async def test_stream_text_is_deterministic_and_metered(
    llm: tuple[LLMClient, list[LLMUsage]],
) -> None:
    client, records = llm

    runs = []
    for _ in range(2):
        stream = client.stream_text(messages=EXPLAIN, purpose="test.explain", max_tokens=96)
        runs.append([c async for c in stream])

    assert len(runs[0]) > 1
    assert "".join(runs[0]).strip()
    assert runs[0] == runs[1]
    answered = _answered(records)
    assert [r.outcome for r in answered] == ["ok", "ok"]
    assert answered[0].completion_tokens == answered[1].completion_tokens > 1


async def test_text_matches_the_streamed_text(llm: tuple[LLMClient, list[LLMUsage]]) -> None:
    client, _records = llm

    whole = await client.text(messages=EXPLAIN, purpose="test.explain", max_tokens=64)
    streamed = [
        c async for c in client.stream_text(messages=EXPLAIN, purpose="test.explain", max_tokens=64)
    ]

    assert whole == "".join(streamed)


def test_stops_cleanly_on_sigterm(embedded: RunningServer) -> None:
    # Runs last in this module (pytest keeps file order): it stops the shared server.
    embedded.process.terminate()
    assert embedded.process.wait(timeout=30) == 0
    log = embedded.log_path.read_text()
    assert '"embedded_llm.ready"' in log
    assert '"embedded_llm.stopped"' in log
