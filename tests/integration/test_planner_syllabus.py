"""The student's syllabus wins, end to end: the original's onboarding request (pasted units,
a goal naming two of them, 7 days) through the gateway, Kafka and the planner service, and a
goal that asks for one unit only.

The topics of a plan are computed, not written by the model, so these run on a gateway and
a planner of their own (own topic prefix) with a scripted model whose every answer is
unusable: the plan must come out whole in the scheduler's words, whatever the model does,
and the shared embedded model (slow when many tests use it) is not needed to prove it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from exammentor.messaging.topic_admin import ensure_topics
from exammentor.settings import LLMSettings
from services.gateway.app import Gateway
from services.gateway.settings import GatewaySettings
from tests.conftest import SessionEnv
from tests.fakes.scripted_openai import Content, ScriptedOpenAI
from tests.infra import unique_name
from tests.integration.conftest import Stack, register, start_worker

pytestmark = pytest.mark.integration

ONBOARDING = """NEET Biology Syllabus:
1. Cell Biology - Cell structure, cell organelles, cell division (mitosis, meiosis)
2. Genetics - Mendelian genetics, molecular biology, DNA replication, transcription, translation
3. Human Physiology - Digestion, Circulation, Respiration, Excretion, Neural control
4. Plant Physiology - Photosynthesis, Respiration, Plant hormones, Mineral nutrition
5. Ecology - Ecosystems, Biodiversity, Environmental issues, Population dynamics
6. Evolution - Origin of life, Theories of evolution, Human evolution
7. Biotechnology - Recombinant DNA, Applications in medicine and agriculture
8. Reproduction - Human reproduction, Plant reproduction, Reproductive health
"""
UNITS = {
    "Cell Biology",
    "Genetics",
    "Human Physiology",
    "Plant Physiology",
    "Ecology",
    "Evolution",
    "Biotechnology",
    "Reproduction",
}


@pytest.fixture(scope="module")
async def planner_stack(test_env: SessionEnv) -> AsyncIterator[Stack]:
    env = dataclasses.replace(test_env, topic_prefix=unique_name("syl"))
    await ensure_topics(env.kafka())
    async with ScriptedOpenAI(default=Content("I cannot answer in JSON, sorry.")) as model:
        gateway = Gateway(
            env.service_settings(
                GatewaySettings, http_port=0, grpc_port=0, relay_port=0, request_timeout_s=120
            )
        )
        await gateway.start()
        llm = LLMSettings(base_url=model.base_url, max_retries=0, repair_attempts=0, timeout_s=5)
        worker = await start_worker(env, "planner", llm)
        yield Stack(gateway, [worker])
        await worker.stop()
        await gateway.stop()


@pytest.fixture
async def client(planner_stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=planner_stack.base_url, timeout=150) as http:
        yield http


def learned(plan: dict[str, Any]) -> set[str]:
    return {t["name"] for day in plan["schedule"] for t in day["topics"] if t["kind"] == "learn"}


async def test_the_onboarding_example_plans_every_unit_with_the_named_ones_critical(
    client: httpx.AsyncClient,
) -> None:
    _, auth = await register(client)
    # Exactly what the original's onboarding page sends.
    body = {
        "syllabus_text": ONBOARDING,
        "exam_type": "NEET",
        "goal": "I want to score 650+ in NEET and master Cell Biology and Genetics",
        "days": 7,
    }
    lines: list[dict[str, Any]] = []
    async with client.stream("POST", "/api/plan/stream-verified", json=body, headers=auth) as reply:
        assert reply.status_code == 200
        async for line in reply.aiter_lines():
            if line:
                lines.append(json.loads(line))
    assert lines[-1]["type"] == "complete", lines[-1]
    result = lines[-1]["final_result"]

    plan = result["final_plan"]
    topics = learned(plan)
    assert len(topics) == 29  # every item of the 8 units
    assert {name.split(": ")[0] for name in topics} == UNITS
    assert "Cell Biology: cell division (mitosis, meiosis)" in topics
    assert not any("Syllabus" in name for name in topics)
    assert result["excluded_topics"] == []
    assert plan["dropped_topics"] == []
    assert result["verification_summary"]["coverage_percent"] == 100.0
    assert result["verification_summary"]["is_valid"] is True
    assert {name.split(": ")[0] for name in plan["critical_topics"]} == {
        "Cell Biology",
        "Genetics",
    }
    assert any("your goal names Cell Biology and Genetics" in n for n in result["notes"])


async def test_only_one_unit_is_planned_when_the_goal_asks_and_the_stored_plan_says_why(
    client: httpx.AsyncClient, admin_db: asyncpg.Connection
) -> None:
    _, auth = await register(client)
    body = {
        "syllabus_text": ONBOARDING,
        "exam_type": "NEET",
        "goal": "This week only Genetics, please",
        "days": 7,
    }
    reply = await client.post("/api/plan/generate-verified-with-history", json=body, headers=auth)
    assert reply.status_code == 200, reply.text
    result = reply.json()
    assert {name.split(": ")[0] for name in learned(result["final_plan"])} == {"Genetics"}
    excluded = result["excluded_topics"]
    assert len(excluded) == 29 - 5
    said = [n for n in result["notes"] if "left out because your goal asks" in n]
    assert len(said) == 1
    assert "'only genetics'" in said[0]
    assert all(name in said[0] for name in excluded)

    stored = await client.get(f"/api/plans/{result['plan_id']}", headers=auth)
    assert stored.status_code == 200
    dropped = stored.json()["plan"]["dropped_topics"]
    assert [d["name"] for d in dropped] == excluded
    assert all("'only genetics'" in d["reason"] for d in dropped)
    count = await admin_db.fetchval(
        "SELECT count(*) FROM outbox WHERE envelope->>'type' = 'plan.generated'"
        " AND (envelope->'payload'->>'dropped_topics_count')::int = $1"
        " AND envelope->'payload'->>'plan_id' = $2",
        len(excluded),
        result["plan_id"],
    )
    assert count == 1
