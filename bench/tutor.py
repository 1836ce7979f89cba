"""Tutor streaming benchmark: what the pipeline adds to a streamed explanation, and how many
concurrent streams one tutor process holds before that doubles.

    HTTP client (NDJSON) -> gateway -> Kafka -> tutor -> model server -> tutor -> gRPC relay
    -> gateway -> HTTP client

against the same model server streamed directly with the ``openai`` SDK, in the same run.
The model is the scripted OpenAI-compatible server of the tests (``tests/fakes``), in this
process, sending every stream at a steady rate (``--tokens`` chunks, ``--interval-ms``
apart); it stamps each chunk as it leaves, on the same monotonic clock the client reads, so
a chunk's latency is exact: received by the client minus sent by the model. Each chunk is
one word of its own (a marker of its stream and its index) ending a sentence, so the tutor's
loop check passes it and every received token is matched to its sending, wherever the relay
put it. The tutor holds each token back until 24 more words were judged,
so one stream's time to first token and per-chunk latency include about 24 chunk intervals
by design (docs/tutor.md); the load levels are compared with that single stream.

- **Part 1**, one stream at a time: time to first token (from the request to the first token
  the client reads) and per-chunk latency, through the pipeline and direct.
- **Part 2**, load: ``N`` streams at once, each by its own student (one student's commands
  are ordered on one partition), ``--per-level`` streams per level in rounds. A level is
  "held" while the p50 time to first token and the p50 per-chunk latency the pipeline adds
  (minus the direct path's of part 1) stay within twice those of one stream. CPU shows where
  the time went (gateway, tutor, and this process: clients and model server). A stream
  that ends without every token (the gateway's 60 s wait ran out, a model call failed) is
  counted as ``lost`` and left out of the latencies. ``tok/s`` divides the tokens read by the
  level's whole time (admission and the hold-back included, so it cannot reach what the model
  sends); ``sent/s`` and ``read/s`` compare the model's aggregate rate over its sending window
  with the clients' over their reading window: whether the pipeline keeps up.

Gateway and tutor run as their own processes, as deployed (one replica each), on a private
database and topic prefix, with the kit's default commands in flight (256) unless told
otherwise, and a bound on model calls above the highest level (the scripted model sends any
number of streams at its pace). Resident memory (RSS) of gateway and tutor is read after
each level. Nothing is asserted; it prints a table. About two minutes on 2 cores with the
defaults.

    .venv/bin/python bench/tutor.py [--levels 1,2,3,4,6,8,16] [--samples 20] [--per-level 12]
        [--tokens 40] [--interval-ms 25] [--max-in-flight 256] [--partitions 6]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import uvloop
from openai import AsyncOpenAI

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.stack import process_stack
from exammentor.contracts.tutor import STREAM_EVENT, ResetEvent, TokenEvent
from exammentor.logs import configure_logging
from tests.fakes.scripted_openai import MODEL, ScriptedOpenAI, Stream
from tests.infra import provide_servers, unique_name

MARKER = re.compile(r"bench([0-9a-f]{12})")
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Pace:
    """The model's steady stream: how many chunks, how far apart."""

    tokens: int
    interval_s: float

    def respond(self, body: dict[str, Any]) -> Stream:
        """A stream whose chunks name the request's marker (found in its prompt)."""
        prompt = " ".join(str(m.get("content", "")) for m in body.get("messages", []))
        found = MARKER.search(prompt)
        mark = found.group(1) if found else "none"
        # One distinct word per chunk, each its own sentence: the tutor's loop check passes
        # it, and its hold-back relays it a sentence (one chunk) at a time.
        chunks = [f"{token(mark, i)}. " for i in range(self.tokens)]
        return Stream(chunks, chunk_delay_s=self.interval_s)


def token(mark: str, index: int) -> str:
    """The word a stream sends as its ``index``-th chunk."""
    return f"w{mark}t{index}"


TOKEN = re.compile(r"w[0-9a-f]{12}t[0-9]+")
"""A chunk's word, wherever the relay put it (the tutor may relay several in one piece)."""


@dataclass
class StreamTiming:
    """One stream as the client saw it."""

    ttft_s: float
    complete: bool = True
    """False when the stream ended without every token (the gateway gave up waiting)."""
    received: dict[str, float] = field(default_factory=dict)
    """Each token's word and when the client read it (monotonic seconds)."""

    def read(self, text: str, now: float, started: float) -> None:
        """Notes the tokens in a piece of text the client read ``now``."""
        for word in TOKEN.findall(text):
            if not self.received:
                self.ttft_s = now - started
            self.received.setdefault(word, now)


def chunk_latencies(timings: list[StreamTiming], sent: dict[str, float]) -> list[float]:
    """Received minus sent, for every token matched to its sending."""
    return [at - sent[word] for t in timings for word, at in t.received.items() if word in sent]


def ms(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of ``values`` in milliseconds (nan when there are none)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def through_pipeline(
    http: aiohttp.ClientSession, auth: dict[str, str], pace: Pace
) -> StreamTiming:
    """One typed stream through the gateway; every token's arrival time."""
    mark = secrets.token_hex(6)
    started = time.monotonic()
    timing = StreamTiming(ttft_s=float("nan"))
    try:
        async with http.post(
            "/api/tutor/stream?format=ndjson",
            json={"topic": f"Vectors bench{mark}", "difficulty": "easy"},
            headers=auth,
        ) as reply:
            if reply.status != 200:
                raise RuntimeError(f"stream refused: {reply.status} {await reply.read()!r}")
            async for line in reply.content:
                if not line.strip():
                    continue
                now = time.monotonic()
                event = STREAM_EVENT.validate_json(line)
                if isinstance(event, ResetEvent):
                    timing.received.clear()
                elif isinstance(event, TokenEvent):
                    timing.read(event.text, now, started)
    except aiohttp.ClientError:
        pass  # the connection broke: counted as a lost stream below
    timing.complete = len(timing.received) == pace.tokens
    return timing


async def direct(client: AsyncOpenAI, pace: Pace) -> StreamTiming:
    """The same stream straight from the model server."""
    mark = secrets.token_hex(6)
    started = time.monotonic()
    timing = StreamTiming(ttft_s=float("nan"))
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": f"Explain vectors bench{mark}"}],
        stream=True,
    )
    async for chunk in stream:
        now = time.monotonic()
        text = chunk.choices[0].delta.content if chunk.choices else None
        if text:
            timing.read(text, now, started)
    return timing


async def register(http: aiohttp.ClientSession, count: int) -> list[dict[str, str]]:
    """``count`` students; their Authorization headers."""
    students = []
    for _ in range(count):
        async with http.post(
            "/api/users/register", json={"name": unique_name("bench-"), "password": "bench-pass"}
        ) as reply:
            reply.raise_for_status()
            token = (await reply.json())["access_token"]
        students.append({"Authorization": f"Bearer {token}"})
    return students


@dataclass
class Level:
    """One load level's figures."""

    streams: int
    lost: int
    """Streams that ended without every token (counted, left out of the latencies)."""
    ttft: list[float]
    latency: list[float]
    seconds: float
    cpu: dict[str, float]
    rss_mb: dict[str, float]
    sent_rate: float = float("nan")
    """Tokens the model sent per second, over its sending window (first to last chunk)."""
    received_rate: float = float("nan")
    """Tokens the clients read per second, over their window (first to last token)."""


def window_rate(times: list[float]) -> float:
    """Events per second over the span from the first to the last of ``times``."""
    span = max(times) - min(times) if len(times) > 1 else 0.0
    return len(times) / span if span > 0 else float("nan")


def rss_mb(pid: int) -> float:
    """Resident memory of a process now, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def run(args: argparse.Namespace) -> None:
    """Sets up a private database and topics, starts gateway and tutor, measures."""
    configure_logging("bench", "WARNING", "console")
    pace = Pace(args.tokens, args.interval_ms / 1000)
    levels = [int(n) for n in args.levels.split(",")]
    with provide_servers() as servers:
        async with (
            ScriptedOpenAI(default=pace.respond) as model,
            process_stack(
                servers,
                ["tutor"],
                label="tutor",
                partitions=args.partitions,
                environ={
                    "EXAMMENTOR_MAX_IN_FLIGHT": str(args.max_in_flight),
                    "OPENAI_MAX_CONCURRENCY": str(max(levels) + 8),
                    "OPENAI_BASE_URL": model.base_url,
                    "OPENAI_MAX_RETRIES": "0",
                },
                gateway={
                    # A stream whose chunks stop coming ends (counted as lost) within this.
                    "EXAMMENTOR_REQUEST_TIMEOUT_S": "60",
                    "EXAMMENTOR_LOGIN_LIMITS": '{"per_address": 100000, "per_name": 100}',
                },
            ) as stack,
        ):
            await stack.ready()
            single, loaded = await measure(
                stack.http_port, model, pace, levels, args.samples, stack.pids, args.per_level
            )
    print_tables(single, loaded, pace, args, servers.source)


async def measure(
    http_port: int,
    model: ScriptedOpenAI,
    pace: Pace,
    levels: list[int],
    samples: int,
    pids: dict[str, int],
    per_level: int,
) -> tuple[dict[str, tuple[list[float], list[float]]], list[Level]]:
    """Part 1 (one stream at a time, pipeline and direct) and part 2 (load levels)."""
    # The students' client is aiohttp: with httpx, this process took 78% of a core at 256
    # streams (36% with aiohttp), CPU the gateway and the tutor lacked on the same two
    # cores. Idle connections are dropped before
    # the server's 5 s keep-alive ends: a connection the server closes just as the client
    # reuses it fails the request.
    connector = aiohttp.TCPConnector(limit=max(levels) + 8, keepalive_timeout=2.0)
    oai = AsyncOpenAI(base_url=model.base_url, api_key="bench", max_retries=0)
    async with aiohttp.ClientSession(
        f"http://127.0.0.1:{http_port}",
        timeout=aiohttp.ClientTimeout(total=600),
        connector=connector,
    ) as http:
        students = await register(http, max(levels))

        def sent() -> dict[str, float]:
            return {word: c.sent_at for c in model.sent_chunks for word in TOKEN.findall(c.text)}

        # Warm-up: connections, the tutor's first model client, Postgres plans.
        for _ in range(3):
            await through_pipeline(http, students[0], pace)
            await direct(oai, pace)
        model.reset()
        pipe: list[StreamTiming] = []
        straight: list[StreamTiming] = []
        for i in range(samples):
            pipe.append(await through_pipeline(http, students[i % len(students)], pace))
            straight.append(await direct(oai, pace))
        stamps = sent()
        single = {
            "pipeline": ([t.ttft_s for t in pipe], chunk_latencies(pipe, stamps)),
            "direct": ([t.ttft_s for t in straight], chunk_latencies(straight, stamps)),
        }

        loaded: list[Level] = []
        for n in levels:
            model.reset()
            cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            cpu_before["bench"] = time.process_time()
            started = time.monotonic()
            timings: list[StreamTiming] = []
            for _ in range(max(1, -(-per_level // n))):
                timings += await asyncio.gather(
                    *(through_pipeline(http, students[i], pace) for i in range(n))
                )
            seconds = time.monotonic() - started
            cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
            cpu["bench"] = time.process_time() - cpu_before["bench"]
            whole = [t for t in timings if t.complete]
            stamps = sent()
            loaded.append(
                Level(
                    n,
                    len(timings) - len(whole),
                    [t.ttft_s for t in whole],
                    chunk_latencies(whole, stamps),
                    seconds,
                    {k: 100 * v / seconds for k, v in cpu.items()},
                    {name: rss_mb(pid) for name, pid in pids.items()},
                    window_rate(list(stamps.values())),
                    window_rate([at for t in timings for at in t.received.values()]),
                )
            )
    await oai.close()
    return single, loaded


def print_tables(
    single: dict[str, tuple[list[float], list[float]]],
    loaded: list[Level],
    pace: Pace,
    args: argparse.Namespace,
    source: str,
) -> None:
    """Prints both parts and the level the tutor holds."""
    rate = 1 / pace.interval_s
    print(
        f"\ntutor stream: {pace.tokens} tokens at {rate:.0f} tokens/s from the scripted model; "
        f"one gateway, one tutor ({args.max_in_flight} commands in flight, {args.partitions} "
        f"partitions); servers: {source}\n"
    )
    print(f"part 1: one stream at a time, {args.samples} streams per path")
    head = f"{'path':<9} {'TTFT p50':>9} {'TTFT p95':>9} {'chunk p50':>10} {'chunk p95':>10}"
    print(head)
    print("-" * len(head))
    for name, (ttft, lat) in single.items():
        print(
            f"{name:<9} {ms(ttft, 0.5):>9.1f} {ms(ttft, 0.95):>9.1f} "
            f"{ms(lat, 0.5):>10.2f} {ms(lat, 0.95):>10.2f}"
        )
    (p_ttft, p_lat), (d_ttft, d_lat) = single["pipeline"], single["direct"]
    print(
        f"added by the pipeline: time to first token {ms(p_ttft, 0.5) - ms(d_ttft, 0.5):.1f} ms "
        f"(p50), per chunk {ms(p_lat, 0.5) - ms(d_lat, 0.5):.2f} ms (p50), "
        f"{ms(p_lat, 0.95) - ms(d_lat, 0.95):.2f} ms (p95)  [all in ms]\n"
    )
    print("part 2: concurrent streams through one tutor process (ms; CPU % of one core)")
    print(
        f"added = minus the direct path's p50 of part 1; a tutor process takes up to "
        f"{args.max_in_flight} commands at once (one student's in order); RSS in MB after the level"
    )
    print(
        "tok/s = tokens read / the level's whole time (admission and hold-back included); "
        "sent/s = tokens the model sent / its window from first to last chunk; read/s = "
        "tokens the clients read / their window from first to last token"
    )
    head = (
        f"{'streams':>7} {'TTFT p50':>9} {'TTFT p95':>9} {'added TTFT':>10} {'chunk p50':>9} "
        f"{'chunk p95':>9} {'added chunk':>11} {'tok/s':>6} {'gw cpu':>6} {'tutor cpu':>9} "
        f"{'bench cpu':>9} {'gw MB':>6} {'tutor MB':>8} {'lost':>5} {'sent/s':>7} {'read/s':>7}"
    )
    print(head)
    print("-" * len(head))
    direct_ttft, direct_chunk = ms(d_ttft, 0.5), ms(d_lat, 0.5)
    base_ttft = ms(loaded[0].ttft, 0.5) - direct_ttft
    base_chunk = ms(loaded[0].latency, 0.5) - direct_chunk
    held = loaded[0].streams
    doubled = False
    for level in loaded:
        added_ttft = ms(level.ttft, 0.5) - direct_ttft
        added_chunk = ms(level.latency, 0.5) - direct_chunk
        print(
            f"{level.streams:>7} {ms(level.ttft, 0.5):>9.1f} {ms(level.ttft, 0.95):>9.1f} "
            f"{added_ttft:>10.1f} {ms(level.latency, 0.5):>9.2f} {ms(level.latency, 0.95):>9.2f} "
            f"{added_chunk:>11.2f} {len(level.latency) / level.seconds:>6.0f} "
            f"{level.cpu['gateway']:>6.0f} {level.cpu['tutor']:>9.0f} {level.cpu['bench']:>9.0f} "
            f"{level.rss_mb['gateway']:>6.0f} {level.rss_mb['tutor']:>8.0f} {level.lost:>5} "
            f"{level.sent_rate:>7.0f} {level.received_rate:>7.0f}"
        )
        if added_ttft > 2 * base_ttft or added_chunk > 2 * base_chunk:
            doubled = True
        elif not doubled:
            held = level.streams
    if doubled:
        print(
            f"\none tutor process holds {held} concurrent streams before the added p50 time to "
            f"first token or the added p50 per-chunk latency doubles"
        )
    else:
        print(f"\nno level up to {loaded[-1].streams} streams doubled the added p50 latencies")


def main() -> None:
    """Parses arguments and runs the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--levels", default="1,2,3,4,6,8,16")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=40)
    parser.add_argument("--interval-ms", type=float, default=25.0)
    parser.add_argument("--per-level", type=int, default=12, help="streams per load level")
    parser.add_argument("--max-in-flight", type=int, default=256)
    parser.add_argument("--partitions", type=int, default=6)
    args = parser.parse_args()
    # The clients and the scripted model share this process: on uvloop they take less of
    # the 2 cores the gateway and the tutor are measured on.
    uvloop.run(run(args))


if __name__ == "__main__":
    main()
