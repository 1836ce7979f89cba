"""Benchmark of the embedded model server through LLMClient: memory, speed, structured output.

Starts ``python -m exammentor.llm.embedded`` on a free loopback port (or measures a running
endpoint given with ``--base-url``, without the memory numbers), runs a bounded number of
calls and prints one line per measure::

    .venv/bin/python bench/llm.py [--requests 5] [--max-tokens 200] [--threads 1]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field

from exammentor.llm.client import ChatMessage, LLMClient, LLMInvalidOutput, LLMUsage
from exammentor.llm.embedded import MODEL_NAME
from exammentor.logs import configure_logging
from exammentor.settings import LLMSettings

REPO = Path(__file__).resolve().parents[1]

TOPICS = (
    "Newton's second law",
    "the structure of DNA",
    "photosynthesis",
    "compound interest",
    "the causes of the First World War",
    "the Krebs cycle",
)
PROMPTS: list[list[ChatMessage]] = [
    [
        {"role": "system", "content": "You are a patient tutor for exam preparation."},
        {"role": "user", "content": f"Explain {topic} to a student, step by step."},
    ]
    for topic in TOPICS
]


class QuizItem(BaseModel):
    question: str = Field(max_length=200)
    options: list[str] = Field(min_length=4, max_length=4)
    answer_index: int = Field(ge=0, le=3)


@dataclass
class Stats:
    tokens: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _rss_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def _start(threads: int) -> tuple[subprocess.Popen[bytes], str, float]:
    port = _free_port()
    started = time.monotonic()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "exammentor.llm.embedded",
            "--port",
            str(port),
            "--threads",
            str(threads),
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = started + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("embedded server exited during start-up")
        try:
            with urllib.request.urlopen(f"{base_url}/models", timeout=2) as response:
                if response.status == 200:
                    return process, base_url, time.monotonic() - started
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit("embedded server not ready in 120 s")


async def _run(base_url: str, requests: int, max_tokens: int) -> None:
    records: list[LLMUsage] = []

    async def sink(usage: LLMUsage) -> None:
        records.append(usage)

    settings = LLMSettings(base_url=base_url, model=MODEL_NAME, timeout_s=300)
    async with LLMClient(settings, usage_sink=sink) as llm:
        await llm.text(messages=PROMPTS[0], purpose="warmup", max_tokens=8)

        whole = Stats()
        for i in range(requests):
            records.clear()
            started = time.perf_counter()
            await llm.text(messages=PROMPTS[i % len(PROMPTS)], purpose="b", max_tokens=max_tokens)
            whole.seconds += time.perf_counter() - started
            whole.tokens += records[-1].completion_tokens
        print(f"text: {whole.tokens} tokens in {whole.seconds:.2f} s = {whole.rate:.1f} tokens/s")

        streamed = Stats()
        first_delta: list[float] = []
        for i in range(requests):
            records.clear()
            started = time.perf_counter()
            first: float | None = None
            async for _delta in llm.stream_text(
                messages=PROMPTS[(i + 1) % len(PROMPTS)], purpose="b", max_tokens=max_tokens
            ):
                first = first if first is not None else time.perf_counter() - started
            streamed.seconds += time.perf_counter() - started
            streamed.tokens += records[-1].completion_tokens
            first_delta.append(first or 0.0)
        print(
            f"stream: {streamed.tokens} tokens in {streamed.seconds:.2f} s = "
            f"{streamed.rate:.1f} tokens/s, first delta median "
            f"{statistics.median(first_delta) * 1000:.0f} ms"
        )

        latencies = []
        invalid = failed = 0
        for i in range(requests):
            records.clear()
            started = time.perf_counter()
            try:
                await llm.structured(
                    messages=[
                        {"role": "system", "content": "You write multiple-choice quiz items."},
                        {
                            "role": "user",
                            "content": "Write one question with four short options "
                            f"about {TOPICS[i % len(TOPICS)]}.",
                        },
                    ],
                    schema=QuizItem,
                    purpose="b",
                    max_tokens=max_tokens,
                )
            except LLMInvalidOutput:
                failed += 1
            latencies.append(time.perf_counter() - started)
            invalid += sum(r.outcome == "invalid" for r in records)
        print(
            f"structured: {requests} calls, median {statistics.median(latencies) * 1000:.0f} ms, "
            f"repair rounds {invalid}, still invalid after repairs {failed}"
        )


def main() -> None:
    """Runs the benchmark and prints its numbers."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base-url", help="measure this endpoint instead of starting one")
    parser.add_argument("--requests", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    configure_logging("bench", "WARNING", "console")

    if args.base_url:
        asyncio.run(_run(args.base_url, args.requests, args.max_tokens))
        return
    process, base_url, ready_s = _start(args.threads)
    try:
        memory = _rss_kib(process.pid)
        print(f"ready in {ready_s:.2f} s, RSS {memory['VmRSS'] / 1024:.0f} MiB after load")
        asyncio.run(_run(base_url, args.requests, args.max_tokens))
        memory = _rss_kib(process.pid)
        print(
            f"RSS {memory['VmRSS'] / 1024:.0f} MiB after the runs, "
            f"peak {memory['VmHWM'] / 1024:.0f} MiB"
        )
    finally:
        process.terminate()
        process.wait(timeout=30)


if __name__ == "__main__":
    main()
