"""Plans end to end with a model that misbehaves (the scripted server): the plan still comes
out verified, in the scheduler's own words, and the failed calls are metered.

A gateway and a planner of their own, on a topic prefix of their own, so the shared stack's
planner (with the real model) never takes these commands.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from exammentor.messaging.topic_admin import ensure_topics
from exammentor.settings import LLMSettings
from services.gateway.app import Gateway
from services.gateway.settings import GatewaySettings
from tests.conftest import SessionEnv
from tests.fakes.scripted_openai import Content, ScriptedOpenAI, Status
from tests.infra import unique_name
from tests.integration.conftest import Stack, register, start_worker

pytestmark = pytest.mark.integration

GARBAGE = Content("Sure! Here is the plan you asked for: {{{ day one: study hard")


@dataclasses.dataclass
class FaultyStack:
    stack: Stack
    model: ScriptedOpenAI


@pytest.fixture(scope="module")
async def faulty(test_env: SessionEnv) -> AsyncIterator[FaultyStack]:
    env = dataclasses.replace(test_env, topic_prefix=unique_name("f"))
    await ensure_topics(env.kafka())
    model = ScriptedOpenAI(default=GARBAGE)
    await model.__aenter__()
    gateway = Gateway(
        env.service_settings(
            GatewaySettings, http_port=0, grpc_port=0, relay_port=0, request_timeout_s=60
        )
    )
    await gateway.start()
    llm = LLMSettings(
        base_url=model.base_url,
        max_retries=1,
        repair_attempts=1,
        timeout_s=5,
        backoff_base_s=0.01,
        backoff_max_s=0.05,
    )
    worker = await start_worker(env, "planner", llm)
    yield FaultyStack(Stack(gateway, [worker]), model)
    await worker.stop()
    await gateway.stop()
    await model.__aexit__(None, None, None)


@pytest.fixture
async def faulty_client(faulty: FaultyStack) -> AsyncIterator[httpx.AsyncClient]:
    faulty.model.reset()
    async with httpx.AsyncClient(base_url=faulty.stack.base_url, timeout=120) as http:
        yield http


async def test_garbage_from_the_model_still_gives_a_verified_plan_in_the_schedulers_words(
    faulty: FaultyStack, faulty_client: httpx.AsyncClient, admin_db: asyncpg.Connection
) -> None:
    _, auth = await register(faulty_client)
    reply = await faulty_client.post(
        "/api/plan/generate-verified-with-history",
        json={"exam_type": "cat", "goal": "CAT quant, then verbal", "days": 20},
        headers=auth,
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["verification_summary"]["is_valid"] is True
    assert body["verification_summary"]["coverage_percent"] == 100.0
    plan = body["final_plan"]
    assert (
        plan["exam_name"] == "CAT - Quantitative Aptitude, Verbal Ability and Reading Comprehension"
    )
    assert plan["overview"].startswith("20-day plan for CAT")  # the scheduler's own words
    assert body["prose"]["overview"] == "scheduler"
    assert body["prose"]["themes_from_model"] == body["prose"]["reasons_from_model"] == 0
    assert set(body["prose"]["calls"].values()) == {"invalid"}
    assert body["routing"]["model_status"] == "invalid"
    assert len(faulty.model.chat_requests) == 4 * 2  # four calls, one repair round each

    outcomes = await admin_db.fetch(
        "SELECT purpose, outcome FROM llm_usage WHERE request_id = $1",
        uuid.UUID(reply.headers["x-request-id"]),
    )
    assert {row["outcome"] for row in outcomes} == {"invalid"}
    assert {row["purpose"] for row in outcomes} == {
        "plan.route",
        "plan.overview",
        "plan.themes",
        "plan.rationale",
    }


async def test_a_model_that_is_down_is_tried_once_and_the_plan_made_without_it(
    faulty: FaultyStack, faulty_client: httpx.AsyncClient
) -> None:
    faulty.model.set_default(Status(503, message="overloaded"))
    _, auth = await register(faulty_client)
    reply = await faulty_client.post(
        "/api/plan/generate",
        json={"syllabus_text": "1. Grammar\n2. Essays\n3. Comprehension", "goal": "English"},
        headers=auth,
    )
    assert reply.status_code == 200, reply.text
    plan = reply.json()
    assert [t["name"] for t in plan["schedule"][0]["topics"]][:1] == ["Grammar"]
    assert plan["exam_name"] == "Own syllabus"
    assert len(faulty.model.chat_requests) == 2  # the route call and its one retry, no more
