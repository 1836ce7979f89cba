"""Plans end to end: HTTP and gRPC -> gateway -> Kafka -> planner (with the model) -> Postgres
-> results streamed back; plus bad input, refused before anything is stored.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import asyncpg
import grpc
import httpx
import pytest
from grpc import aio

from exammentor._proto import gateway_pb2, gateway_pb2_grpc
from exammentor.contracts.plan import MAX_SYLLABUS_CHARS
from tests.integration.conftest import Stack, register

pytestmark = pytest.mark.integration

POLITY = {"exam_type": "upsc", "days": 7}
OPTICS = (
    "Unit 1: Ray Optics\n  - Reflection\n  - Refraction\nUnit 2: Wave Optics\n"
    "Unit 3: Optical Instruments"
)


async def user_rows(db: asyncpg.Connection, table: str, user_id: str) -> int:
    count: int = await db.fetchval(
        f"SELECT count(*) FROM {table} WHERE user_id = $1", uuid.UUID(user_id)
    )
    return count


async def events_of(db: asyncpg.Connection, plan_id: str) -> dict[str, dict[str, Any]]:
    rows = await db.fetch(
        "SELECT envelope FROM outbox WHERE envelope->'payload'->>'plan_id' = $1", plan_id
    )
    envelopes = [json.loads(row["envelope"]) for row in rows]  # no codec on this connection
    return {envelope["type"]: envelope for envelope in envelopes}


@pytest.mark.llm
async def test_a_verified_plan_with_history_is_stored_per_session_and_announced(
    client: httpx.AsyncClient, admin_db: asyncpg.Connection
) -> None:
    user_id, auth = await register(client)
    session_id = uuid.uuid4()
    await admin_db.execute(
        "INSERT INTO study_sessions (id, user_id, exam_type) VALUES ($1, $2, 'upsc')",
        session_id,
        uuid.UUID(user_id),
    )
    reply = await client.post(
        "/api/plan/generate-verified-with-history",
        params={"session_id": str(session_id)},
        json={**POLITY, "goal": "UPSC polity this week, start with Governance"},
        headers=auth,
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()

    # The original's shape, computed and checked exactly.
    assert {
        "final_plan",
        "versions",
        "total_iterations",
        "self_correction_applied",
        "verification_summary",
    } <= body.keys()
    assert body["from_cache"] is False
    summary = body["verification_summary"]
    assert summary == {
        "coverage_percent": 100.0,
        "overloaded_days_count": 0,
        "prerequisite_issues_count": 0,
        "is_valid": True,
        "iterations_used": len(body["versions"]),
    }
    versions = body["versions"]
    assert [v["version"] for v in versions] == list(range(1, len(versions) + 1))
    assert body["total_iterations"] == len(versions)
    assert sum(v["was_accepted"] for v in versions) == 1
    accepted = next(v for v in versions if v["was_accepted"])
    assert accepted["plan"] == body["final_plan"]
    assert accepted["verification"]["is_valid"]
    assert versions[0]["diff"] is None
    assert all(v["diff"] is not None for v in versions[1:])
    plan = body["final_plan"]
    assert plan["exam_name"] == "UPSC Civil Services - Polity"
    assert plan["total_days"] == 7
    assert 3 <= len(plan["critical_topics"]) <= 5
    assert body["routing"]["decision"]["exam"] == "upsc"
    assert body["routing"]["decision"]["scope"]["subject"] == "polity"

    # Stored for the user and the session, and for nobody else.
    stored = await client.get(f"/api/plans/{body['plan_id']}", headers=auth)
    assert stored.status_code == 200
    assert stored.json()["plan"] == plan
    assert stored.json()["session_id"] == str(session_id)
    listed = await client.get("/api/plans", params={"session_id": str(session_id)}, headers=auth)
    assert [p["plan_id"] for p in listed.json()["plans"]] == [body["plan_id"]]
    assert listed.json()["plans"][0]["coverage_percent"] == 100.0
    _, other = await register(client)
    assert (await client.get(f"/api/plans/{body['plan_id']}", headers=other)).status_code == 404
    assert (await client.get("/api/plans", headers=other)).json() == {"plans": []}

    # Announced on the plan topic through the outbox.
    events = await events_of(admin_db, body["plan_id"])
    assert events.keys() == {"plan.generated", "plan.verified"}
    assert events["plan.generated"]["version"] == 1
    assert events["plan.generated"]["session_id"] == str(session_id)
    verified = events["plan.verified"]["payload"]
    assert verified["coverage_percent"] == 100.0
    assert verified["is_valid"] is True
    assert verified["required_topics_count"] == verified["scheduled_topics_count"] == 6


@pytest.mark.llm
async def test_stream_verified_sends_each_stage_as_it_happens(client: httpx.AsyncClient) -> None:
    _, auth = await register(client)
    lines: list[tuple[float, dict[str, Any]]] = []
    async with client.stream(
        "POST",
        "/api/plan/stream-verified",
        json={"syllabus_text": OPTICS, "exam_type": "NEET", "goal": "Optics in 4 days", "days": 4},
        headers=auth,
    ) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("application/x-ndjson")
        async for line in reply.aiter_lines():
            if line:
                lines.append((time.monotonic(), json.loads(line)))

    kinds = [line["type"] for _, line in lines]
    stages = [line.get("stage") for _, line in lines if line["type"] == "status"]
    assert lines[0][1]["stage"] == "accepted"
    assert lines[0][1]["request_id"] == reply.headers["x-request-id"]
    assert stages[:3] == ["accepted", "routing", "scheduling"]
    assert stages[-1] == "explaining"
    assert kinds[3:5] == ["draft", "verification"]
    assert kinds[-1] == "complete"
    assert kinds.count("draft") == kinds.count("verification")
    drafts = [line for _, line in lines if line["type"] == "draft"]
    checks = [line for _, line in lines if line["type"] == "verification"]
    assert [d["version"] for d in drafts] == [c["version"] for c in checks]
    assert drafts[0]["plan"]["total_days"] == 4
    assert checks[0]["result"]["is_valid"] is True
    # The original's client reads the result under final_result.
    complete = lines[-1][1]["final_result"]
    assert lines[-1][1]["request_id"] == reply.headers["x-request-id"]
    assert complete["verification_summary"]["coverage_percent"] == 100.0
    planned = {t["name"] for day in complete["final_plan"]["schedule"] for t in day["topics"]}
    # The items under a heading are planned, labelled with their heading.
    assert {"Ray Optics: Reflection", "Ray Optics: Refraction", "Wave Optics"} <= planned
    # Sent as they happen: the first draft left long before the model finished writing.
    first_draft_at = next(at for at, line in lines if line["type"] == "draft")
    assert lines[-1][0] - first_draft_at > 0.3


@pytest.mark.llm
async def test_a_second_identical_request_is_answered_from_the_cache(
    client: httpx.AsyncClient, admin_db: asyncpg.Connection
) -> None:
    user_id, auth = await register(client)
    body = {"exam_type": "jee", "goal": "JEE maths, steady pace", "days": 30, "hours_per_day": 5}
    started = time.monotonic()
    first = await client.post("/api/plan/generate", json=body, headers=auth)
    first_s = time.monotonic() - started
    assert first.status_code == 200, first.text
    assert first.headers["x-from-cache"] == "false"

    started = time.monotonic()
    second = await client.post(
        "/api/plan/generate-verified",
        json={**body, "goal": "  jee MATHS, steady pace "},
        headers=auth,
    )
    second_s = time.monotonic() - started
    assert second.status_code == 200
    assert second.headers["x-from-cache"] == "true"
    assert second.json() == first.json()
    assert second.headers["x-plan-id"] != first.headers["x-plan-id"]
    assert second_s < first_s
    second_request = uuid.UUID(second.headers["x-request-id"])
    assert (
        await admin_db.fetchval(
            "SELECT count(*) FROM llm_usage WHERE request_id = $1", second_request
        )
        == 0
    )
    flags = await admin_db.fetch(
        "SELECT from_cache FROM study_plans WHERE user_id = $1 ORDER BY created_at",
        uuid.UUID(user_id),
    )
    assert [row["from_cache"] for row in flags] == [False, True]
    events = await events_of(admin_db, second.headers["x-plan-id"])
    assert events["plan.generated"]["payload"]["from_cache"] is True


@pytest.mark.llm
async def test_an_ambiguous_goal_gets_a_clarifying_question(
    client: httpx.AsyncClient, admin_db: asyncpg.Connection
) -> None:
    user_id, auth = await register(client)
    reply = await client.post(
        "/api/plan/generate-verified-with-history",
        json={"exam_type": "neet", "goal": "Plan NEET maths for me", "days": 10},
        headers=auth,
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["needs_clarification"] is True
    assert "NEET (UG) has no Mathematics" in body["clarifying_question"]
    assert body["options"] == ["biology", "physics", "chemistry", "all"]
    assert body["routing"]["decision"]["needs_clarification"] is True
    assert "final_plan" not in body
    assert await user_rows(admin_db, "study_plans", user_id) == 0


@pytest.mark.llm
async def test_a_syllabus_that_does_not_fit_is_refused_with_numbers_or_trimmed(
    client: httpx.AsyncClient, admin_db: asyncpg.Connection
) -> None:
    user_id, auth = await register(client)
    body = {"exam_type": "neet", "goal": "All of NEET", "days": 3}
    refused = await client.post("/api/plan/generate", json=body, headers=auth)
    assert refused.status_code == 422
    detail = refused.json()["detail"]
    assert detail["code"] == "capacity_exceeded"
    assert detail["field"] == "days"
    assert detail["needed_hours"] == 331
    assert detail["available_hours"] < detail["needed_hours"]
    assert detail["message"].startswith("days: the syllabus needs 331 h of study")
    assert await user_rows(admin_db, "study_plans", user_id) == 0

    trimmed = await client.post(
        "/api/plan/generate", json={**body, "overflow": "drop"}, headers=auth
    )
    assert trimmed.status_code == 200, trimmed.text
    plan = trimmed.json()
    assert plan["dropped_topics"]
    assert all(d["reason"].startswith("left out") for d in plan["dropped_topics"])
    assert await user_rows(admin_db, "study_plans", user_id) == 1


BAD_BODIES: list[tuple[str, bytes, int, str]] = [
    ("not UTF-8", b'{"exam_type": "neet", "goal": "caf\xe9"}', 422, "body"),
    ("not JSON", b'{"exam_type": "neet", "goal":', 422, "body"),
    ("blank goal", b'{"exam_type": "neet", "goal": " \\t\\n "}', 422, "goal"),
    ("no goal", b'{"exam_type": "neet"}', 422, "goal"),
    ("zero days", b'{"exam_type": "neet", "goal": "x", "days": 0}', 422, "days"),
    ("too many days", b'{"exam_type": "neet", "goal": "x", "days": 366}', 422, "days"),
    ("hours", b'{"exam_type": "neet", "goal": "x", "hours_per_day": 30}', 422, "hours_per_day"),
    ("empty syllabus", b'{"syllabus_text": "   ", "goal": "x"}', 422, "syllabus_text"),
    ("lone surrogate", b'{"syllabus_text": "\\ud800 A", "goal": "x"}', 422, "syllabus_text"),
    ("nothing to plan", b'{"goal": "x"}', 422, "body"),
    ("unknown field", b'{"exam_type": "neet", "goal": "x", "weeks": 2}', 422, "weeks"),
    (
        "oversize syllabus",
        json.dumps({"syllabus_text": "a" * (MAX_SYLLABUS_CHARS + 1), "goal": "x"}).encode(),
        413,
        "syllabus_text",
    ),
]


@pytest.mark.parametrize(
    ("case", "raw", "status", "field"), BAD_BODIES, ids=[case[0] for case in BAD_BODIES]
)
async def test_bad_input_is_refused_naming_the_field_and_nothing_is_stored(
    client: httpx.AsyncClient,
    admin_db: asyncpg.Connection,
    case: str,
    raw: bytes,
    status: int,
    field: str,
) -> None:
    user_id, auth = await register(client)
    reply = await client.post(
        "/api/plan/generate-verified",
        content=raw,
        headers={**auth, "content-type": "application/json"},
    )
    assert reply.status_code == status, reply.text
    detail = reply.json()["detail"]
    assert field in [error["field"] for error in detail["errors"]], detail
    assert detail["message"]
    if status == 413:
        assert detail["code"] == "syllabus_too_large"
        assert f"{MAX_SYLLABUS_CHARS:,}" in detail["message"]
    assert await user_rows(admin_db, "requests", user_id) == 0
    assert await user_rows(admin_db, "study_plans", user_id) == 0


async def test_an_unknown_exam_without_a_syllabus_is_refused_before_any_work(
    client: httpx.AsyncClient, admin_db: asyncpg.Connection
) -> None:
    user_id, auth = await register(client)
    reply = await client.post(
        "/api/plan/generate", json={"exam_type": "GCSE", "goal": "pass"}, headers=auth
    )
    assert reply.status_code == 422, reply.text
    detail = reply.json()["detail"]
    assert detail["code"] == "unknown_exam"
    assert detail["field"] == "exam_type"
    assert detail["message"].startswith("exam_type: 'GCSE' is not an exam the planner knows")
    assert "neet" in detail["known_exams"]
    request_id = uuid.UUID(reply.headers["x-request-id"])
    assert await admin_db.fetchval("SELECT status FROM requests WHERE id = $1", request_id) == (
        "failed"
    )
    assert (
        await admin_db.fetchval(
            "SELECT count(*) FROM request_events WHERE request_id = $1", request_id
        )
        == 0
    )
    assert await user_rows(admin_db, "study_plans", user_id) == 0

    junk = await client.post(
        "/api/plan/generate",
        json={"syllabus_text": "-----\n 12 \n===", "goal": "pass"},
        headers=auth,
    )
    assert junk.status_code == 422
    assert junk.json()["detail"]["code"] == "syllabus_empty"
    assert junk.json()["detail"]["field"] == "syllabus_text"


async def test_plan_routes_need_a_token_and_a_known_session(client: httpx.AsyncClient) -> None:
    body = {"exam_type": "neet", "goal": "x"}
    assert (await client.post("/api/plan/generate", json=body)).status_code == 401
    assert (await client.post("/api/plan/stream-verified", json=body)).status_code == 401
    _, auth = await register(client)
    missing = await client.post(
        "/api/plan/stream-verified",
        params={"session_id": str(uuid.uuid4())},
        json=body,
        headers=auth,
    )
    assert missing.status_code == 404
    assert missing.json()["detail"]["code"] == "session_not_found"
    assert (await client.get(f"/api/plans/{uuid.uuid4()}", headers=auth)).status_code == 404


async def grpc_token(stub: gateway_pb2_grpc.StudyGatewayStub) -> list[tuple[str, str]]:
    token = await stub.Register(  # type: ignore[misc]  # the stubs predate aio
        gateway_pb2.Credentials(name=f"grpc-{uuid.uuid4().hex[:8]}", password="s3cret-pass")
    )
    return [("authorization", f"Bearer {token.access_token}")]


@pytest.mark.llm
async def test_grpc_streams_the_stages_and_serves_the_stored_plan(stack: Stack) -> None:
    async with aio.insecure_channel(f"127.0.0.1:{stack.gateway.grpc_port}") as channel:
        stub = gateway_pb2_grpc.StudyGatewayStub(channel)
        auth = await grpc_token(stub)
        request = gateway_pb2.PlanRequest(
            syllabus_text="- Sonnets\n- Haiku\n- Odes", goal="Poetry", days=3
        )
        events = [event async for event in stub.GeneratePlan(request, metadata=auth)]
        kinds = [event.WhichOneof("event") for event in events]
        assert kinds[0] == "status"
        assert kinds.index("draft") < kinds.index("verification") < kinds.index("complete")
        assert kinds[-1] == "complete"
        assert [e.seq for e in events] == sorted(e.seq for e in events)
        result = events[-1].complete
        assert result.final_plan.exam_name == "Own syllabus"
        assert result.verification_summary.is_valid is True
        assert result.final_plan.schedule[0].topics[0].name in {"Sonnets", "Haiku", "Odes"}

        stored = await stub.GetPlan(gateway_pb2.PlanRef(plan_id=result.plan_id), metadata=auth)
        assert stored.plan == result.final_plan
        listed = await stub.ListPlans(gateway_pb2.PlanListRequest(), metadata=auth)
        assert [p.plan_id for p in listed.plans] == [result.plan_id]
        assert listed.plans[0].coverage_percent == 100.0

        # The same request again is answered from the plan cache, typed the same way.
        again = [event async for event in stub.GeneratePlan(request, metadata=auth)]
        assert again[-1].complete.from_cache is True
        assert again[-1].complete.final_plan == result.final_plan


async def test_grpc_refuses_bad_input_naming_the_field(stack: Stack) -> None:
    async with aio.insecure_channel(f"127.0.0.1:{stack.gateway.grpc_port}") as channel:
        stub = gateway_pb2_grpc.StudyGatewayStub(channel)
        auth = await grpc_token(stub)
        request = gateway_pb2.PlanRequest(exam_type="neet", goal="x", days=400)
        with pytest.raises(aio.AioRpcError) as caught:
            _ = [event async for event in stub.GeneratePlan(request, metadata=auth)]
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "days" in (caught.value.details() or "")
        assert ("error-code", "invalid_request") in tuple(caught.value.trailing_metadata() or ())
        with pytest.raises(aio.AioRpcError) as missing:
            await stub.GetPlan(gateway_pb2.PlanRef(plan_id=str(uuid.uuid4())), metadata=auth)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.llm
async def test_a_client_that_drops_its_stream_resumes_to_the_end_without_gap_or_repeat(
    client: httpx.AsyncClient,
) -> None:
    _, auth = await register(client)
    body = {**POLITY, "goal": "UPSC polity, resume test"}
    first: list[dict[str, Any]] = []
    async with client.stream("POST", "/api/plan/stream-verified", json=body, headers=auth) as reply:
        assert reply.status_code == 200
        request_id = reply.headers["X-Request-Id"]
        async for line in reply.aiter_lines():
            if line:
                first.append(json.loads(line))
            if len(first) == 2:
                break  # the client goes away mid-stream
    assert first[0]["request_id"] == request_id  # the request id comes first
    assert [line["seq"] for line in first] == [0, 1]

    # Resumed from the last line seen: the rest, followed until the request ends.
    async with client.stream(
        "GET", f"/api/requests/{request_id}/events", params={"after": 1}, headers=auth
    ) as rest_reply:
        assert rest_reply.headers["content-type"].startswith("application/x-ndjson")
        rest = [json.loads(line) async for line in rest_reply.aiter_lines() if line]
    seqs = [line["seq"] for line in first + rest]
    assert seqs == list(range(len(seqs)))  # no gap, no repeat
    assert rest[-1]["type"] == "complete"
    assert {"draft", "verification"} <= {line["type"] for line in rest}
    stored = (await client.get(f"/api/requests/{request_id}", headers=auth)).json()
    assert rest[-1]["final_result"] == stored["result"]
    listed = (await client.get("/api/requests", headers=auth)).json()["requests"]
    assert [r["request_id"] for r in listed] == [request_id]

    _, other = await register(client)
    assert (
        await client.get(f"/api/requests/{request_id}/events", headers=other)
    ).status_code == 404
