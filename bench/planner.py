"""Planner benchmark: what a verified plan costs in time and in model tokens.

(a) Plan and verify in-process (no model, no I/O) for pasted syllabi of 10, 100 and 1,000
    topics: parse, enrich from the registry, schedule, verify; median of several runs.
(b) Model tokens per verified plan for the same syllabi, on the same model in the same run:
    ExamMentor's workflow (route, schedule, verify exactly, then the model writes the words;
    its outputs screened, repaired at most ``repair_attempts`` times) against a replay of the
    original's algorithm (the model drafts the whole plan, the model verifies it, the model
    fixes it, the model verifies again; structured output, no repair, as the original did).
    The replay's calls are capped (``--draft-tokens``, ``--verify-tokens``) to keep the run
    short, so its figures are lower bounds; a call whose prompt does not fit the model's
    context is counted with its estimated prompt and marked.

Starts the embedded model server on a free port, or uses ``--base-url``::

    .venv/bin/python bench/planner.py [--sizes 10,100,1000] [--base-url http://.../v1]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import math
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, Field

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from exammentor.contracts.plan import Difficulty, PlanRequest, PlanVerification
from exammentor.llm.client import ChatMessage, LLMClient, LLMError, LLMInvalidOutput, LLMUsage
from exammentor.logs import configure_logging
from exammentor.settings import LLMSettings
from services.planner.domain import (
    CapacityError,
    PlannedStudy,
    Routing,
    SyllabusTopic,
    cross_check,
    load_registry,
    resolve_topics,
    schedule_plan,
    verify_plan,
)
from services.planner.settings import PlannerSettings
from services.planner.workflow import PlanWorkflow

REPO = Path(__file__).resolve().parents[1]
REGISTRY = load_registry()
WORKFLOW = PlanWorkflow(REGISTRY, None, PlannerSettings(llm_enabled=False))
START = dt.date(2026, 1, 5)
GOAL = "Prepare me for the exam with a realistic plan"
HOURS_PER_DAY = 8.0

M = TypeVar("M", bound=BaseModel)


# --- Syllabi -----------------------------------------------------------------------------


def syllabus(size: int) -> str:
    """A pasted syllabus of ``size`` numbered topics: the registry's names, then variants."""
    names = list(dict.fromkeys(t.name for e in REGISTRY.exams for t in e.topics))
    lines = []
    for i in range(size):
        base = names[i % len(names)]
        round_ = i // len(names)
        lines.append(f"{i + 1}. {base}" + (f" - level {round_ + 1}" if round_ else ""))
    return "\n".join(lines)


def _topics(text: str) -> list[SyllabusTopic]:
    """The service's own path without a model: parse, route by the words, narrow, enrich."""
    request = PlanRequest(syllabus_text=text, goal=GOAL, start_date=START)
    parsed = WORKFLOW.read_syllabus(request)
    routing = cross_check(REGISTRY, request, parsed, None)
    assert isinstance(routing, Routing)
    return resolve_topics(REGISTRY, routing, parsed, request.goal).topics


def days_needed(text: str) -> int:
    """The fewest days (up to 365) that hold the syllabus at the daily cap."""
    try:
        schedule_plan(_topics(text), days=1, hours_per_day=HOURS_PER_DAY, start_date=START)
    except CapacityError as error:
        return min(365, error.min_days_needed or 365)
    return 1


# --- (a) in-process timing ---------------------------------------------------------------


@dataclass
class Timing:
    topics: int
    days: int
    parse_ms: list[float] = field(default_factory=list)
    schedule_ms: list[float] = field(default_factory=list)
    verify_ms: list[float] = field(default_factory=list)
    total_ms: list[float] = field(default_factory=list)
    valid: bool = True


def time_plan(size: int, runs: int) -> Timing:
    """Median timings of parse+enrich, schedule and verify for one syllabus size."""
    text = syllabus(size)
    days = days_needed(text)
    timing = Timing(size, days)
    for _ in range(runs):
        t0 = time.perf_counter()
        topics = _topics(text)
        t1 = time.perf_counter()
        result = schedule_plan(
            topics, days=days, hours_per_day=HOURS_PER_DAY, start_date=START, exam_name="Bench"
        )
        t2 = time.perf_counter()
        verification = verify_plan(result.plan, result.topics, hours_per_day=HOURS_PER_DAY)
        t3 = time.perf_counter()
        timing.parse_ms.append((t1 - t0) * 1000)
        timing.schedule_ms.append((t2 - t1) * 1000)
        timing.verify_ms.append((t3 - t2) * 1000)
        timing.total_ms.append((t3 - t0) * 1000)
        timing.valid = timing.valid and verification.is_valid
    return timing


# --- (b) tokens: the original's algorithm, replayed --------------------------------------


class OriginalTopic(BaseModel):
    name: str
    difficulty: Difficulty
    rationale: str


class OriginalDay(BaseModel):
    day: int
    theme: str
    topics: list[OriginalTopic]
    estimated_hours: float


class OriginalPlan(BaseModel):
    """The original's StudyPlan, as its model had to write it."""

    exam_name: str
    total_days: int
    overview: str
    schedule: list[OriginalDay]
    critical_topics: list[str] = Field(min_length=3, max_length=5)


class OriginalVerification(BaseModel):
    """The original's PlanVerification, as its model had to judge it."""

    is_valid: bool
    missing_topics: list[str]
    overloaded_days: list[int]
    prerequisite_issues: list[str]
    critique: str


def _draft_prompt(text: str, days: int) -> list[ChatMessage]:
    return [
        {"role": "system", "content": "You are an expert study planner for competitive exams."},
        {
            "role": "user",
            "content": f"Create a {days}-day study plan.\nGoal: {GOAL}\nSyllabus:\n{text}\n"
            "Cover every topic, at most 8 hours a day, prerequisites first, with revision. "
            "Give each day a theme and each topic a difficulty and a rationale; name 3 to 5 "
            "critical topics.",
        },
    ]


def _verify_prompt(text: str, plan: str) -> list[ChatMessage]:
    return [
        {"role": "system", "content": "You check study plans strictly."},
        {
            "role": "user",
            "content": f"Syllabus:\n{text}\nPlan:\n{plan}\nList the syllabus topics the plan "
            "misses, the days over 8 hours and the prerequisite problems; say whether the "
            "plan is valid and write a critique.",
        },
    ]


def _fix_prompt(text: str, plan: str, critique: str) -> list[ChatMessage]:
    return [
        {"role": "system", "content": "You are an expert study planner for competitive exams."},
        {
            "role": "user",
            "content": f"Fix this study plan using the critique.\nCritique: {critique}\n"
            f"Syllabus:\n{text}\nPlan:\n{plan}\nReturn the whole corrected plan.",
        },
    ]


@dataclass
class Replay:
    steps: list[str] = field(default_factory=list)
    """Per call: ok, invalid (not a valid answer) or the error."""


async def _replay_call(
    llm: LLMClient,
    replay: Replay,
    purpose: str,
    messages: list[ChatMessage],
    schema: type[M],
    max_tokens: int,
) -> tuple[M | None, str]:
    try:
        answer = await llm.structured(
            messages=messages, schema=schema, purpose=purpose, max_tokens=max_tokens
        )
    except LLMInvalidOutput as exc:
        replay.steps.append("invalid")
        return None, exc.output  # the original would have failed here; the replay goes on
    except LLMError as exc:
        replay.steps.append("context" if "context" in exc.reason.lower() else "error")
        return None, ""
    replay.steps.append("ok")
    return answer, answer.model_dump_json()


async def replay_original(
    llm: LLMClient, text: str, days: int, draft_tokens: int, verify_tokens: int
) -> Replay:
    """Draft, verify, fix, verify: the original's algorithm, every step by the model."""
    replay = Replay()
    _, plan = await _replay_call(
        llm, replay, "orig.draft", _draft_prompt(text, days), OriginalPlan, draft_tokens
    )
    verdict, _ = await _replay_call(
        llm, replay, "orig.verify", _verify_prompt(text, plan), OriginalVerification, verify_tokens
    )
    critique = verdict.critique if verdict else "the plan could not be checked"
    _, fixed = await _replay_call(
        llm, replay, "orig.fix", _fix_prompt(text, plan, critique), OriginalPlan, draft_tokens
    )
    await _replay_call(
        llm, replay, "orig.verify", _verify_prompt(text, fixed), OriginalVerification, verify_tokens
    )
    return replay


# --- (b) tokens: ours --------------------------------------------------------------------


@dataclass
class Tokens:
    prompt: int = 0
    completion: int = 0
    calls: int = 0
    seconds: float = 0.0
    note: str = ""

    @property
    def total(self) -> int:
        return self.prompt + self.completion


def _meter(records: list[LLMUsage], seconds: float, note: str) -> Tokens:
    return Tokens(
        prompt=sum(r.prompt_tokens for r in records),
        completion=sum(r.completion_tokens for r in records),
        calls=len(records),
        seconds=seconds,
        note=note,
    )


async def measure_tokens(
    base_url: str, sizes: list[int], draft_tokens: int, verify_tokens: int
) -> list[tuple[int, Tokens, Tokens]]:
    """Ours and the replay, per syllabus size."""
    records: list[LLMUsage] = []

    async def sink(usage: LLMUsage) -> None:
        records.append(usage)

    ours_llm = LLMClient(LLMSettings(base_url=base_url, timeout_s=600), usage_sink=sink)
    replay_llm = LLMClient(
        LLMSettings(base_url=base_url, timeout_s=600, repair_attempts=0), usage_sink=sink
    )
    workflow = PlanWorkflow(REGISTRY, ours_llm, PlannerSettings())
    rows: list[tuple[int, Tokens, Tokens]] = []
    try:
        await ours_llm.text(messages=[{"role": "user", "content": "hi"}], purpose="w", max_tokens=4)
        for size in sizes:
            text = syllabus(size)
            days = days_needed(text)
            request = PlanRequest(
                syllabus_text=text, goal=GOAL, days=days, start_date=START, overflow="drop"
            )
            records.clear()
            started = time.perf_counter()
            result = await workflow.run(request)
            assert isinstance(result, PlannedStudy)
            verification: PlanVerification = result.verification
            ours = _meter(
                records,
                time.perf_counter() - started,
                f"valid={verification.is_valid}, coverage {verification.coverage_percent:g}%",
            )
            records.clear()
            started = time.perf_counter()
            replay = await replay_original(replay_llm, text, days, draft_tokens, verify_tokens)
            theirs = _meter(records, time.perf_counter() - started, " ".join(replay.steps))
            rows.append((size, ours, theirs))
    finally:
        await ours_llm.aclose()
        await replay_llm.aclose()
    return rows


# --- Running -----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _start_model() -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "exammentor.llm.embedded", "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("embedded model server exited during start-up")
        try:
            with urllib.request.urlopen(f"{base_url}/models", timeout=2) as response:
                if response.status == 200:
                    return process, base_url
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("embedded model server not ready in 120 s")


def _table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print(f"\n{title}")
    print("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    for row in rows:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values):.1f}"


def main() -> None:
    """Runs both parts and prints their tables."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--runs", type=int, default=5, help="timing runs per size (a)")
    parser.add_argument("--base-url", help="model endpoint for (b); default: start the embedded")
    parser.add_argument("--skip-tokens", action="store_true", help="run (a) only")
    parser.add_argument("--draft-tokens", type=int, default=1024)
    parser.add_argument("--verify-tokens", type=int, default=256)
    args = parser.parse_args()
    configure_logging("bench", "ERROR", "console")
    sizes = [int(s) for s in args.sizes.split(",")]

    timings = [
        time_plan(size, max(1, args.runs if size < 1000 else math.ceil(args.runs / 2)))
        for size in sizes
    ]
    _table(
        "(a) plan + verify in-process, median ms (no model, no I/O)",
        ["topics", "days", "parse+route+enrich", "schedule", "verify", "total", "valid"],
        [
            [
                str(t.topics),
                str(t.days),
                _ms(t.parse_ms),
                _ms(t.schedule_ms),
                _ms(t.verify_ms),
                _ms(t.total_ms),
                str(t.valid),
            ]
            for t in timings
        ],
    )
    if args.skip_tokens:
        return

    process = None
    base_url = args.base_url
    if base_url is None:
        process, base_url = _start_model()
    try:
        rows = asyncio.run(measure_tokens(base_url, sizes, args.draft_tokens, args.verify_tokens))
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
    _table(
        f"(b) model tokens per verified plan, same model ({base_url}), same run",
        [
            "topics",
            "ours: tokens",
            "calls",
            "s",
            "result",
            "original replay: tokens",
            "calls",
            "s",
            "steps (draft verify fix verify)",
        ],
        [
            [
                str(size),
                str(ours.total),
                str(ours.calls),
                f"{ours.seconds:.1f}",
                ours.note,
                str(theirs.total),
                str(theirs.calls),
                f"{theirs.seconds:.1f}",
                theirs.note,
            ]
            for size, ours, theirs in rows
        ],
    )
    print(
        f"\nReplay caps: {args.draft_tokens} generated tokens per draft/fix, "
        f"{args.verify_tokens} per verify; 'invalid' = not a usable answer (the original "
        "would have failed there), 'context' = the prompt did not fit the model's context "
        "(counted with its estimated prompt tokens). Ours: prompt + completion of every call "
        "including repair rounds; the plan is verified exactly in code."
    )


if __name__ == "__main__":
    main()
