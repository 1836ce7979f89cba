"""``exammentor demo``: a real study flow through a running gateway, printed for people.

Registers a student, logs in, asks for a verified study plan of a pasted NEET biology
syllabus and follows its stages as they stream (NDJSON), then fetches the stored result
by request id, as a client that lost its stream would.
"""

from __future__ import annotations

import json
import sys
import uuid
from typing import Any

import httpx

SYLLABUS = """NEET Biology (revision list)
- Cell Structure and Function
- Plant Physiology
- Human Physiology
- Genetics and Evolution
- Ecology and Environment
"""


def _say(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _print_plan(plan: dict[str, Any]) -> None:
    _say(f"  {plan['exam_name']}: {plan['total_days']} days")
    _say(f"  {plan['overview']}")
    for day in plan["schedule"]:
        topics = ", ".join(
            f"{t['name']} ({t.get('kind', 'learn')}, {t.get('hours') or '?'} h)"
            for t in day["topics"]
        )
        _say(f"  day {day['day']:>2} [{day['estimated_hours']:>4} h] {day['theme']}")
        if topics:
            _say(f"         {topics}")
    _say(f"  critical topics: {', '.join(plan['critical_topics'])}")


async def run_demo(gateway: str) -> int:
    """Runs the flow; returns the process exit code."""
    async with httpx.AsyncClient(base_url=gateway, timeout=600) as http:
        name = f"demo-student-{uuid.uuid4().hex[:6]}"
        password = "demo-password-1"  # noqa: S105 - a throwaway demo account
        _say(f"1. register {name}")
        reply = await http.post("/api/users/register", json={"name": name, "password": password})
        reply.raise_for_status()
        _say("2. log in (argon2 password check, JWT bearer token)")
        reply = await http.post("/api/users/login", json={"name": name, "password": password})
        reply.raise_for_status()
        auth = {"Authorization": f"Bearer {reply.json()['access_token']}"}

        body = {
            "syllabus_text": SYLLABUS,
            "exam_type": "NEET",
            "goal": "Prepare NEET biology in ten days, genetics needs extra care",
            "days": 10,
            "hours_per_day": 6,
        }
        _say("3. ask for a verified study plan; stages stream as they happen:")
        request_id = None
        final: dict[str, Any] | None = None
        async with http.stream(
            "POST", "/api/plan/stream-verified", json=body, headers=auth
        ) as stream:
            if stream.status_code != 200:
                await stream.aread()
                _say(f"   refused: {stream.status_code} {stream.text}")
                return 1
            request_id = stream.headers.get("X-Request-Id")
            async for line in stream.aiter_lines():
                if not line.strip():
                    continue
                event = json.loads(line)
                kind = event.get("type")
                if kind == "draft":
                    _say(f"   draft v{event.get('version')}")
                elif kind == "verification":
                    result = event.get("result", {})
                    _say(
                        f"   verification: valid={result.get('is_valid')} "
                        f"coverage={result.get('coverage_percent')}% "
                        f"overloaded_days={result.get('overloaded_days')}"
                    )
                elif kind == "complete":
                    final = event["final_result"]
                    _say("   complete")
                elif kind == "error":
                    _say(f"   error: {event}")
                    return 1
                else:
                    _say(f"   {kind}: {event.get('message', '')}")
        if final is None:
            _say("   the stream ended without a result")
            return 1
        plan = final.get("final_plan")
        if plan:
            _say("4. the plan:")
            _print_plan(plan)
        if request_id:
            reply = await http.get(f"/api/requests/{request_id}", headers=auth)
            reply.raise_for_status()
            stored = reply.json()
            _say(f"5. fetched request {request_id} again by id: status={stored['status']}")
        _say("done: the flow went gateway -> Kafka -> planner -> Postgres -> gRPC -> you.")
        return 0
