"""The planner's workflow against a scripted model server: garbage, outages, the fix loop.

Real HTTP through the real client (``tests/fakes/scripted_openai.py``); no Kafka, no
Postgres. Whatever the model does, the plan comes out verified, and the scheduler's own
text stands wherever the model's did not pass.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from exammentor.contracts.plan import PlanRequest
from exammentor.llm.client import LLMClient
from exammentor.settings import LLMSettings
from services.planner.domain import (
    Clarification,
    PlannedStudy,
    SyllabusTopic,
    load_registry,
    schedule_plan,
    topics_from_registry,
)
from services.planner.settings import PlannerSettings
from services.planner.workflow import PlanWorkflow
from tests.fakes.scripted_openai import Content, Reply, ScriptedOpenAI, Status, valid_json

REGISTRY = load_registry()
START = dt.date(2026, 1, 5)
POEMS = "- Sonnets\n- Haiku\n- Limericks\n- Odes"


@pytest.fixture(scope="module")
def fake() -> Iterator[ScriptedOpenAI]:
    with ScriptedOpenAI() as server:
        yield server


@pytest.fixture
async def llm(fake: ScriptedOpenAI) -> AsyncIterator[LLMClient]:
    fake.reset()
    settings = LLMSettings(
        base_url=fake.base_url,
        max_retries=0,
        repair_attempts=1,
        timeout_s=5,
        backoff_base_s=0.01,
        backoff_max_s=0.02,
    )
    async with LLMClient(settings) as client:
        yield client


def by_schema(answers: dict[str, Reply | Callable[[dict[str, Any]], Reply]]) -> Any:
    """A responder answering each call by the name of the schema it asks for."""

    def respond(body: dict[str, Any]) -> Reply:
        name = body.get("response_format", {}).get("json_schema", {}).get("name", "")
        reply = answers.get(name, Content("no"))
        return reply(body) if callable(reply) else reply

    return respond


def router_says(exam: str = "none", subject: str = "none") -> Content:
    return valid_json(
        {
            "intent": "plan",
            "exam": exam,
            "subject": subject,
            "sub_subject": "none",
            "confidence": "high",
            "needs_clarification": False,
        }
    )


def planned(result: PlannedStudy | Clarification) -> PlannedStudy:
    assert isinstance(result, PlannedStudy), result
    return result


async def run(llm: LLMClient, **fields: Any) -> PlannedStudy | Clarification:
    workflow = PlanWorkflow(REGISTRY, llm, PlannerSettings())
    request = PlanRequest.model_validate({"start_date": START, **fields})
    events: list[dict[str, Any]] = []

    async def progress(event: dict[str, Any]) -> None:
        events.append(event)

    result = await workflow.run(request, progress)
    if isinstance(result, PlannedStudy):
        kinds = [e["type"] for e in events]
        assert kinds[:2] == ["status", "status"]
        assert kinds.count("draft") == kinds.count("verification") == len(result.history.versions)
    return result


async def test_garbage_from_the_model_still_gives_a_verified_plan_in_the_schedulers_words(
    fake: ScriptedOpenAI, llm: LLMClient
) -> None:
    fake.set_default(Content("Sure! Here is your plan: {{{ definitely not json"))
    result = planned(await run(llm, exam_type="upsc", goal="UPSC polity in a week", days=7))

    expected = schedule_plan(
        topics_from_registry(REGISTRY.topics("upsc", "polity")),
        days=7,
        start_date=START,
        exam_name="UPSC Civil Services - Polity",
    ).plan
    assert result.history.final_plan == expected  # every word is the scheduler's
    assert result.verification.is_valid
    assert result.verification.coverage_percent == 100
    assert result.routing.exam_name == "UPSC Civil Services - Polity"  # from the words
    assert result.routing.model_status == "invalid"
    assert result.prose["calls"] == {
        "plan.route": "invalid",
        "plan.overview": "invalid",
        "plan.themes": "invalid",
        "plan.rationale": "invalid",
    }
    assert len(fake.chat_requests) == 4 * 2  # each call and its one repair round
    assert "could not be used" in fake.chat_requests[1].last_user_text


async def test_a_model_that_is_down_is_asked_once_and_the_plan_made_without_it(
    fake: ScriptedOpenAI, llm: LLMClient
) -> None:
    fake.set_default(Status(500))
    result = planned(await run(llm, exam_type="neet", goal="NEET physics", days=30))

    assert result.verification.is_valid
    assert len(fake.chat_requests) == 1
    assert result.prose["calls"]["plan.route"] == "unavailable"
    assert {result.prose["calls"][p] for p in ("plan.overview", "plan.themes")} == {"skipped"}
    assert result.routing.decision.scope.subject == "physics"


async def test_the_models_words_are_added_where_they_pass_the_screen(
    fake: ScriptedOpenAI, llm: LLMClient
) -> None:
    fake.set_default(
        by_schema(
            {
                "RouterAnswer": router_says("upsc", "polity"),
                "OverviewAnswer": valid_json({"overview": "A steady week. You will do it."}),
                "DayThemes": lambda body: valid_json(
                    {f"d{i}": f"Step {'abcdefg'[i - 1]} forward" for i in range(1, 8)}
                ),
                "TopicReasons": lambda body: valid_json(
                    {
                        f"t{i}": f"Reason number {'abcdef'[i - 1]} why this topic scores marks."
                        for i in range(1, 7)
                    }
                ),
            }
        )
    )
    result = planned(await run(llm, exam_type="upsc", goal="polity", days=7))
    plan = result.history.final_plan

    assert plan.overview.startswith("A steady week. You will do it. 7-day plan for UPSC")
    assert plan.schedule[0].theme.startswith("Step a forward: ")
    learn = [t for d in plan.schedule for t in d.topics if t.kind == "learn"]
    assert all(t.rationale.startswith("Reason number") and "Weight" in t.rationale for t in learn)
    assert result.prose["overview"] == "model"
    assert result.prose["themes_from_model"] == 7
    assert result.routing.decision.confidence == 0.9  # the model agreed with the words
    # The words never change what was verified.
    assert result.history.versions[-1].plan == plan
    assert result.history.versions[-1].was_accepted


async def test_a_failed_check_goes_back_as_critique_and_every_version_is_kept(
    fake: ScriptedOpenAI, llm: LLMClient
) -> None:
    # The scheduler learns Sonnets on day 1 and Odes on day 4 (3 h a day at most): putting
    # Odes on day 1 overloads it; moving Sonnets to day 4 as well fixes that.
    edits = iter(
        [
            valid_json({"moves": [{"topic": "Odes", "to_day": 1}]}),
            valid_json({"moves": [{"topic": "Sonnets", "to_day": 4}]}),
        ]
    )
    fake.set_default(
        by_schema({"RouterAnswer": router_says(), "PlanEdit": lambda body: next(edits)})
    )
    result = planned(
        await run(llm, syllabus_text=POEMS, goal="Start with Odes, please", days=5, hours_per_day=3)
    )

    versions = result.history.versions
    assert [v.verification.is_valid for v in versions] == [True, False, True]
    assert versions[1].verification.overloaded_days == [1]
    assert [v.was_accepted for v in versions] == [False, False, True]
    assert versions[1].diff is not None
    assert [m.topic for m in versions[1].diff.topics_moved] == ["Odes"]
    assert versions[2].diff is not None
    assert [m.topic for m in versions[2].diff.topics_moved] == ["Sonnets"]
    assert result.history.self_correction_applied
    assert result.history.total_iterations == 3
    assert result.history.verification_summary.iterations_used == 3
    assert [entry["outcome"] for entry in result.fix_log] == ["failed", "passed"]
    day1 = result.history.final_plan.schedule[0]
    assert [t.name for t in day1.topics if t.kind == "learn"] == ["Odes"]

    fixes = [r for r in fake.chat_requests if "PlanEdit" in json.dumps(r.body)]
    assert len(fixes) == 2
    assert "failed the check" not in fixes[0].last_user_text
    assert "day 1 (4 of 3 h): Sonnets (2 h), Odes (2 h)\n" in fixes[1].last_user_text
    assert "day 4 (0.5 of 3 h): reviews only\n" in fixes[1].last_user_text
    assert "failed the check: Over the 3 h daily cap: day 1 (4 h)." in fixes[1].last_user_text
    schema = fixes[0].body["response_format"]["json_schema"]["schema"]
    assert "Odes" in json.dumps(schema)  # the plan's topics are the only choices


async def test_a_fix_loop_that_never_passes_keeps_the_schedulers_plan(
    fake: ScriptedOpenAI, llm: LLMClient
) -> None:
    fake.set_default(
        by_schema(
            {
                "RouterAnswer": router_says(),
                "PlanEdit": valid_json({"moves": [{"topic": "Odes", "to_day": 1}]}),
            }
        )
    )
    result = planned(
        await run(llm, syllabus_text=POEMS, goal="Odes first", days=5, hours_per_day=3)
    )
    versions = result.history.versions
    assert [v.verification.is_valid for v in versions] == [True, False]
    assert [v.was_accepted for v in versions] == [True, False]
    assert not result.history.self_correction_applied
    assert result.verification.is_valid


async def test_an_edit_that_ignores_the_wish_is_repaired_then_given_up(
    fake: ScriptedOpenAI, llm: LLMClient
) -> None:
    fake.set_default(
        by_schema(
            {
                "RouterAnswer": router_says(),
                "PlanEdit": valid_json({"moves": [{"topic": "Haiku", "to_day": 2}]}),
            }
        )
    )
    result = planned(
        await run(llm, syllabus_text=POEMS, goal="Odes first", days=5, hours_per_day=3)
    )
    assert len(result.history.versions) == 1
    assert result.fix_log == [{"round": 1, "outcome": "invalid"}]
    repairs = [r.last_user_text for r in fake.chat_requests if "PlanEdit" in json.dumps(r.body)]
    assert "move Odes to another day, as the wish says" in repairs[1]


async def test_a_router_answer_outside_the_registry_is_not_used(
    fake: ScriptedOpenAI, llm: LLMClient
) -> None:
    # A server without grammar support can answer anything.
    fake.set_default(by_schema({"RouterAnswer": router_says("gcse", "latin")}))
    result = planned(await run(llm, exam_type="jee", goal="JEE maths in 40 days", days=40))
    assert result.routing.model_status == "invalid"
    assert result.routing.exam_name == "JEE Main - Mathematics"


async def test_an_ambiguous_goal_gets_a_question_and_no_plan(
    fake: ScriptedOpenAI, llm: LLMClient
) -> None:
    fake.set_default(by_schema({"RouterAnswer": router_says("neet", "biology")}))
    result = await run(llm, exam_type="neet", goal="NEET maths, quickly")
    assert isinstance(result, Clarification)
    assert "Which part should the plan cover" in result.question
    assert len(fake.chat_requests) == 1  # nothing is scheduled or written


async def test_without_a_model_the_plan_is_the_schedulers(fake: ScriptedOpenAI) -> None:
    fake.reset()
    workflow = PlanWorkflow(REGISTRY, None, PlannerSettings())
    request = PlanRequest(syllabus_text=POEMS, goal="Odes first", days=5, start_date=START)
    result = planned(await workflow.run(request))
    assert result.routing.model_status == "off"
    assert result.fix_log == []
    topics = [SyllabusTopic(name=n) for n in ("Sonnets", "Haiku", "Limericks", "Odes")]
    expected = schedule_plan(topics, days=5, start_date=START, exam_name="Own syllabus").plan
    assert result.history.final_plan == expected
    assert fake.chat_requests == []
