"""The JSON the services write most, by the standard library and by orjson
(:mod:`exammentor.json_codec`), on the bodies they really write:

- a 60-day study plan (a plan result: jsonb parameter, relayed result, HTTP body);
- a page of 50 stored requests with their results (``GET /api/requests?limit=50``);
- an echo result and a tutor token chunk (relayed once per command, per token).

Prints microseconds per call, median of five rounds, and the ratio; asserts nothing.
Run: ``python bench/json_bodies.py``.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
import sys
import timeit
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from exammentor.contracts.plan import DailyPlan, StudyPlan, Topic
from exammentor.json_codec import dumps

TOPICS = ["Kinematics", "Optics", "Thermodynamics", "Electrostatics", "Organic reactions"]


def plan(days: int = 60) -> dict[str, Any]:
    """A plan as the planner stores and returns it (three sessions a day)."""
    start = dt.date(2027, 1, 4)
    made = StudyPlan(
        exam_name="JEE Main",
        total_days=days,
        overview="Sixty days from the fundamentals to timed mock papers, revision every week.",
        schedule=[
            DailyPlan(
                day=d,
                theme=f"{TOPICS[d % 5]} and {TOPICS[(d + 2) % 5]}",
                topics=[
                    Topic(
                        name=f"{TOPICS[(d + k) % 5]}: part {k + 1}",
                        difficulty="medium",
                        rationale="High weight in the last five papers; builds on the "
                        "previous day's problems and prepares the next topic.",
                        hours=1.5,
                        kind="learn" if k < 2 else "review",
                    )
                    for k in range(3)
                ],
                estimated_hours=4.5,
                date=start + dt.timedelta(days=d - 1),
            )
            for d in range(1, days + 1)
        ],
        critical_topics=TOPICS[:3],
    )
    return made.model_dump(mode="json")


def request_page(count: int = 50) -> list[dict[str, Any]]:
    """``GET /api/requests``: each request with its stored result."""
    now = dt.datetime(2027, 1, 4, 8, tzinfo=dt.UTC).isoformat()
    return [
        {
            "request_id": str(uuid.uuid4()),
            "kind": "tutor.explain",
            "status": "done",
            "result": {
                "explanation": "A vector has a size and a direction. " * 20,
                "citations": [{"material_id": str(uuid.uuid4()), "quote": "a quoted line"}],
            },
            "error": None,
            "created_at": now,
            "completed_at": now,
        }
        for _ in range(count)
    ]


def per_call_us(write: Callable[[], object], seconds: float = 0.2) -> float:
    """Median over five rounds of the microseconds one call takes."""
    timer = timeit.Timer(write)
    number, _ = timer.autorange()
    number = max(1, int(number * seconds / 0.2))
    return statistics.median(1e6 * t / number for t in timer.repeat(5, number))


def main() -> None:
    bodies: dict[str, Any] = {
        "study plan, 60 days": plan(),
        "request page, 50": request_page(),
        "echo result": {"echo": "m1", "service": "planner"},
        "token chunk": {"kind": "token", "text": "vector", "seq": 17},
    }
    print(f"{'body':22} {'bytes':>8} {'json us':>9} {'orjson us':>10} {'json/orjson':>12}")
    for name, body in bodies.items():
        size = len(dumps(body).encode())
        slow = per_call_us(lambda b=body: json.dumps(b))
        fast = per_call_us(lambda b=body: dumps(b))
        print(f"{name:22} {size:8d} {slow:9.2f} {fast:10.2f} {slow / fast:11.1f}x")


if __name__ == "__main__":
    main()
