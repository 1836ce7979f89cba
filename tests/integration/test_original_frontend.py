"""The original system's web pages, played against the gateway: each call in the shape its
page sends, in the order a student meets the pages, and each field the page reads checked
for presence and type (``shared/reference/original-system.md``, "What the original's web
pages send and read").

One deliberate difference: accounts. The original had none, so every call here carries a
bearer token, and the ``user_id`` the pages send is the one login answered (``user.id``).
The other deliberate differences (answers withheld until graded, the names the original's
pages read that its own server never sent) are asserted as what they are, and listed in
``docs/compatibility.md``.

A gateway (with the original's development origin allowed, as an operator would set it) and
every worker on the scripted model, on a database and topic prefix of their own: an autopilot
replica drives every run of its database, so no other stack may see this module's runs.
The planner and the tutor's explanations get no model answer (503), so they serve what they
compute or write themselves; the quiz, the image description and the streamed lesson get
well-formed answers.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from exammentor.messaging.topic_admin import ensure_topics
from exammentor.ops import migrate
from exammentor.settings import LLMSettings
from exammentor.worker import Worker
from services.gateway.app import Gateway
from services.gateway.settings import GatewaySettings
from tests.conftest import SessionEnv
from tests.fakes.scripted_openai import Content, Reply, ScriptedOpenAI, Status
from tests.infra import unique_name
from tests.integration.conftest import start_worker
from tests.integration.test_quiz_api import respond as quiz_respond
from tests.integration.test_tutor_api import pdf_of, png_pixel
from tests.upgrade.database import app_dsn, scratch_database

pytestmark = pytest.mark.integration

ORIGIN = "http://localhost:3000"
"""Where the original's Next.js pages are served in development."""
SYLLABUS = (
    "1. Optics - Reflection, Refraction, Lenses\n"
    "2. Mechanics - Kinematics, Laws of motion, Work and energy\n"
)
LESSON = "## Refraction\n\nLight **bends** when it enters glass: $n = c / v$."
DESCRIPTION = "A ray diagram: a light ray bends towards the normal entering a glass block."
TOPIC_ID = "refraction"
JsonObject = dict[str, Any]


QUESTION_BANK = [
    (f"Which city is the capital of {country}?", [capital, *others])
    for country, capital, *others in (
        ("France", "Paris", "Lyon", "Nice", "Lille"),
        ("Italy", "Rome", "Milan", "Turin", "Naples"),
        ("Spain", "Madrid", "Seville", "Bilbao", "Malaga"),
        ("Japan", "Tokyo", "Osaka", "Kyoto", "Nagoya"),
        ("Kenya", "Nairobi", "Mombasa", "Kisumu", "Eldoret"),
        ("Peru", "Lima", "Cusco", "Arequipa", "Trujillo"),
        ("Chile", "Santiago", "Valparaiso", "Concepcion", "Antofagasta"),
        ("Canada", "Ottawa", "Toronto", "Montreal", "Vancouver"),
        ("Brazil", "Brasilia", "Rio de Janeiro", "Sao Paulo", "Salvador"),
        ("Turkey", "Ankara", "Istanbul", "Izmir", "Bursa"),
        ("Nigeria", "Abuja", "Lagos", "Kano", "Ibadan"),
        ("Morocco", "Rabat", "Casablanca", "Marrakesh", "Fez"),
    )
]
"""Questions the scripted model writes, the first option right (more than the module asks
for, so the quiz's "do not ask again" list never runs it dry)."""


def questions(prompt: str) -> Reply:
    """N well-formed questions the prompt does not ask to avoid."""
    count = int(re.search(r"Questions: (\d+)", prompt).group(1))  # type: ignore[union-attr]
    avoid = prompt.split("Do not ask:", 1)[1] if "Do not ask:" in prompt else ""
    fresh = [q for q in QUESTION_BANK if q[0] not in avoid] or QUESTION_BANK
    items = {
        f"q{k + 1}": {
            "question": text,
            "options": options,
            "answer": options[0],
            "why": f"{options[0]} is the capital city.",
            "concept": "capitals",
        }
        for k, (text, options) in enumerate((fresh * count)[:count])
    }
    return Content(json.dumps(items))


def respond(body: JsonObject) -> Reply:
    """The scripted model: quiz prompts answered well, an image described, a streamed lesson
    in markdown; everything else (plans, structured explanations) gets no answer."""
    system = str(body["messages"][0]["content"])
    if system.startswith("Describe a study image"):
        return Content(json.dumps({"description": DESCRIPTION}))
    if system.startswith("Write multiple-choice quiz questions"):
        return questions(str(body["messages"][-1]["content"]))
    if system.startswith(
        (
            "Give a student short feedback",
            "A student answered a quiz question wrongly",
            "Write a two-sentence summary",
        )
    ):
        return quiz_respond(body)
    if body.get("stream") and "response_format" not in body:
        return Content(LESSON)
    return Status(503)


@dataclasses.dataclass
class OriginalStack:
    base_url: str
    model: ScriptedOpenAI


@pytest.fixture(scope="module")
async def original_stack(test_env: SessionEnv) -> AsyncIterator[OriginalStack]:
    async with (
        scratch_database(test_env.servers.admin_dsn, "exammentor_of_") as dsn,
        ScriptedOpenAI(default=respond) as model,
    ):
        await migrate.upgrade(dsn)
        env = dataclasses.replace(
            test_env, admin_dsn=dsn, app_dsn=app_dsn(dsn), topic_prefix=unique_name("of")
        )
        await ensure_topics(env.kafka())
        gateway = Gateway(
            env.service_settings(
                GatewaySettings,
                http_port=0,
                grpc_port=0,
                relay_port=0,
                request_timeout_s=120,
                cors_origins=[ORIGIN],
            )
        )
        await gateway.start()
        llm = LLMSettings(
            base_url=model.base_url,
            max_retries=0,
            repair_attempts=1,
            timeout_s=10,
            backoff_base_s=0.01,
            backoff_max_s=0.05,
        )
        extra: dict[str, JsonObject] = {
            "tutor": {"llm_vision": True},
            "autopilot": {
                "lease_ttl_s": 2.0,
                "lease_poll_s": 0.2,
                "answer_timeout_seconds": 600,
            },
        }
        workers: list[Worker[Any]] = []
        try:
            for name in ("planner", "tutor", "quiz", "autopilot"):
                workers.append(await start_worker(env, name, llm, **extra.get(name, {})))
            yield OriginalStack(f"http://127.0.0.1:{gateway.http_port}", model)
        finally:
            for worker in workers:
                await worker.stop()
            await gateway.stop()


@pytest.fixture
async def page(original_stack: OriginalStack) -> AsyncIterator[httpx.AsyncClient]:
    """The browser: every call from the original's origin."""
    async with httpx.AsyncClient(
        base_url=original_stack.base_url, timeout=180, headers={"Origin": ORIGIN}
    ) as http:
        yield http


def typed(found: Any, kind: type | tuple[type, ...], where: str) -> Any:
    """``found``, asserted to be of ``kind`` (what the page's JavaScript relies on)."""
    assert isinstance(found, kind), f"{where}: {type(found).__name__} {found!r}"
    return found


def ok(reply: httpx.Response) -> Any:
    """The JSON of a 200 that a browser on the original's origin may read."""
    assert reply.status_code == 200, reply.text
    assert reply.headers["access-control-allow-origin"] == ORIGIN
    return reply.json()


async def account(http: httpx.AsyncClient, name: str) -> tuple[dict[str, str], JsonObject]:
    """Register (ours), then the original's ``POST /api/users/login`` ``{name}`` plus the
    password; the page keeps ``user.id`` and ``user.name``."""
    creds = {"name": name, "password": "s3cret-pass"}
    assert (await http.post("/api/users/register", json=creds)).status_code == 201
    user = ok(await http.post("/api/users/login", json=creds))
    assert typed(user["id"], str, "user.id") == user["user_id"]
    assert typed(user["name"], str, "user.name") == name
    return {"Authorization": f"Bearer {user['access_token']}"}, user


def check_plan(plan: JsonObject) -> None:
    """What ``app/plan/page.tsx`` reads of the stored plan."""
    typed(plan["exam_name"], str, "exam_name")
    typed(plan["overview"], str, "overview")
    typed(plan["critical_topics"], list, "critical_topics")
    assert typed(plan["schedule"], list, "schedule")
    for day in plan["schedule"]:
        typed(day["day"], int, "schedule[].day")
        typed(day["theme"], str, "schedule[].theme")
        typed(day["estimated_hours"], (int, float), "schedule[].estimated_hours")
        for topic in typed(day["topics"], list, "schedule[].topics"):
            typed(topic["name"], str, "topics[].name")
            assert topic["difficulty"] in ("easy", "medium", "hard")
            typed(topic["rationale"], str, "topics[].rationale")


async def onboarding(http: httpx.AsyncClient, auth: dict[str, str]) -> JsonObject:
    """``app/onboarding/page.tsx``: the NDJSON plan stream, split on newlines."""
    body = {"syllabus_text": SYLLABUS, "exam_type": "JEE", "goal": "Pass physics", "days": 3}
    async with http.stream("POST", "/api/plan/stream-verified", json=body, headers=auth) as reply:
        assert reply.status_code == 200
        assert reply.headers["access-control-allow-origin"] == ORIGIN
        text = "".join([chunk async for chunk in reply.aiter_text()])
    lines = [json.loads(line) for line in text.split("\n") if line.strip()]
    kinds = [line["type"] for line in lines]
    assert kinds[-1] == "complete"
    assert {"status", "draft", "verification"} <= set(kinds), kinds
    for line in lines:
        if line["type"] == "status":
            typed(line["message"], str, "status.message")
        elif line["type"] == "draft":
            typed(line["version"], int, "draft.version")
        elif line["type"] == "verification":
            result = line["result"]
            typed(result["is_valid"], bool, "verification.result.is_valid")
            typed(result["critique"], str, "verification.result.critique")
            typed(result["missing_topics"], list, "verification.result.missing_topics")
    final = lines[-1]["final_result"]
    typed(final["versions"], list, "final_result.versions")
    plan: JsonObject = final["final_plan"]
    check_plan(plan)
    return plan


async def learn(http: httpx.AsyncClient, auth: dict[str, str], user_id: str) -> None:
    """``app/learn/[topicId]/page.tsx`` and ``components/TutorStream.tsx``."""
    query = {"user_id": user_id, "topic_id": TOPIC_ID}
    chat = ok(await http.get("/api/tutor/chat", params=query, headers=auth))
    assert chat["explanation"] is None
    assert chat["messages"] == []

    async with http.stream(
        "POST",
        "/api/tutor/stream",
        json={"topic": "Refraction", "context": "Exam: JEE", "difficulty": "medium"},
        headers=auth,
    ) as reply:
        assert reply.status_code == 200
        lesson = "".join([chunk async for chunk in reply.aiter_text()])
    assert "Light **bends**" in lesson  # raw markdown, concatenated as the page does

    messages = [
        {"role": "user", "content": "Why does light bend?"},
        {"role": "ai", "content": "Its speed changes in glass."},
    ]
    saved = {**query, "messages": messages, "explanation": lesson}
    ok(await http.post("/api/tutor/chat", json=saved, headers=auth))
    chat = ok(await http.get("/api/tutor/chat", params=query, headers=auth))
    assert chat["explanation"] == lesson
    assert [m["content"] for m in typed(chat["messages"], list, "messages")] == [
        m["content"] for m in messages
    ]

    pdf = base64.b64encode(pdf_of(["Snell's law relates the angles of refraction."])).decode()
    text = ok(await http.post("/api/extract-pdf-text", json={"pdf_base64": pdf}, headers=auth))
    assert "Snell" in typed(text["text"], str, "text")
    image = base64.b64encode(png_pixel()).decode()
    described = ok(
        await http.post(
            "/api/describe-image",
            json={"image_base64": image, "mime_type": "image/png"},
            headers=auth,
        )
    )
    assert typed(described["description"], str, "description") == DESCRIPTION

    explained = ok(
        await http.post(
            "/api/tutor/explain",
            json={
                "topic": "Refraction",
                "context": "Exam: JEE",
                "difficulty": "medium",
                "history": messages,
                "attached_context": text["text"],
            },
            headers=auth,
        )
    )
    # The page shows ``intuition``, or the first step's content.
    assert typed(explained["intuition"], str, "intuition") or typed(
        explained["steps"][0]["content"], str, "steps[0].content"
    )


async def quiz(
    http: httpx.AsyncClient, auth: dict[str, str], user_id: str, session_id: str
) -> list[JsonObject]:
    """``app/quiz/[topicId]/page.tsx``; returns the answers the results page sends."""
    query = {"user_id": user_id, "topic_id": TOPIC_ID}
    # ``data && data.questions``: nothing saved must be null (an empty list is truthy).
    assert ok(await http.get("/api/quiz/persistence", params=query, headers=auth)) is None

    generated = ok(
        await http.post(
            "/api/quiz/generate",
            json={
                "topic": "refraction",
                "context": "Exam: JEE",
                "num_questions": 5,
                "difficulty": "medium",
            },
            headers=auth,
        )
    )
    questions = typed(generated["questions"], list, "questions")
    assert len(questions) == 5
    for q in questions:
        typed(q["id"], str, "questions[].id")
        typed(q["text"], str, "questions[].text")
        assert len(typed(q["options"], list, "questions[].options")) == 4
        assert q["difficulty"] in ("easy", "medium", "hard")
        typed(q["concept_tested"], str, "questions[].concept_tested")
        # Deliberate: no answer before grading (the page's own grading gives way to evaluate).
        assert "correct_option_index" not in q
        assert "explanation" not in q

    # The page saves the quiz it generated: refused by name, as it carries no answers (the
    # page ignores the reply); the questions are stored already and graded by their ids.
    refused = await http.post(
        "/api/quiz/persistence", json={**query, "questions": questions}, headers=auth
    )
    assert refused.status_code == 422
    assert refused.json()["detail"]["code"] == "answers_withheld"
    assert ok(await http.get("/api/quiz/persistence", params=query, headers=auth)) is None

    answers: list[JsonObject] = []
    for n, q in enumerate(questions[:2]):
        chosen = 1 if n == 0 else 0  # the scripted quiz's answer is always option 0
        # ``submitAnswerAction``: JSON.stringify drops the undefined correct_option_index.
        body = {
            "question_id": q["id"],
            "question_text": q["text"],
            "options": q["options"],
            "student_answer_index": chosen,
            "concept_tested": q["concept_tested"],
            "topic_context": "Exam: JEE",
        }
        graded = ok(await http.post("/api/quiz/evaluate", json=body, headers=auth))
        assert typed(graded["is_correct"], bool, "is_correct") is (chosen == 0)
        typed(graded["feedback"], str, "feedback")
        typed(graded["explanation"], str, "explanation")
        if n == 0:
            diagnosis = ok(
                await http.post(
                    "/api/quiz/misconception",
                    json={**body, "session_id": session_id, "user_id": user_id},
                    headers=auth,
                )
            )
            typed(diagnosis["counter_example"], str, "counter_example")
            # The page reads ``underlying_confusion``, a name the original's server never
            # sent: its confusion is ``inferred_confusion``, here too.
            typed(diagnosis["inferred_confusion"], str, "inferred_confusion")
            redemption = diagnosis["redemption_question"]
            typed(redemption["text"], str, "redemption_question.text")
            typed(redemption["options"], list, "redemption_question.options")
            assert "explanation" not in redemption  # with its grade, as every answer
        answers.append(
            {
                "question_id": q["id"],
                "question_text": q["text"],
                "concept_tested": q["concept_tested"],
                "student_answer": q["options"][chosen],
                "correct_answer": None,  # the page's options[undefined]
                "is_correct": graded["is_correct"],
            }
        )
    return answers


async def results(
    http: httpx.AsyncClient, auth: dict[str, str], user_id: str, answers: list[JsonObject]
) -> None:
    """``app/results/page.tsx``: the analysis, rendered as strings."""
    analysis = ok(
        await http.post(
            "/api/analyze/performance",
            json={
                "quiz_answers": answers,
                "topic": "refraction",
                "context": "Exam: JEE",
                "user_id": user_id,
            },
            headers=auth,
        )
    )
    assert analysis["overall_score"] == 50  # one of two right, recomputed from the answer log
    for item in typed(analysis["recommendations"], list, "recommendations"):
        assert all(isinstance(v, str | int | float) for v in item.values())
    typed(analysis["misconceptions"], list, "misconceptions")
    typed(analysis["topic_mastery"], list, "topic_mastery")


async def poll(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    session_id: str,
    check: Callable[[JsonObject], bool],
) -> JsonObject:
    """``GET /api/autopilot/status/{id}`` as the page polls it, until ``check`` holds."""
    async with asyncio.timeout(240):
        while True:
            found: JsonObject = ok(
                await http.get(f"/api/autopilot/status/{session_id}", headers=auth)
            )
            if check(found):
                return found
            await asyncio.sleep(0.2)


def check_status(found: JsonObject) -> None:
    """What ``app/autopilot/page.tsx`` reads of a status."""
    assert found["status"] in ("running", "paused", "stopped", "completed", "failed")
    typed(found["current_phase"], str, "current_phase")
    typed(found["elapsed_seconds"], (int, float), "elapsed_seconds")
    typed(found["target_duration_minutes"], int, "target_duration_minutes")
    for mastery in typed(found["topic_mastery"], list, "topic_mastery"):
        typed(mastery["topic"], str, "topic_mastery[].topic")
        typed(mastery["score"], (int, float), "topic_mastery[].score")
        typed(mastery["attempts"], int, "topic_mastery[].attempts")
    for step in typed(found["steps"], list, "steps"):
        typed(step["action"], str, "steps[].action")
        typed(step["timestamp"], str, "steps[].timestamp")
        typed(step["reasoning"], str, "steps[].reasoning")
    typed(found["awaiting_input"], bool, "awaiting_input")
    assert found["current_content"] is None or isinstance(found["current_content"], str)


async def autopilot(
    http: httpx.AsyncClient, auth: dict[str, str], user_id: str, plan: JsonObject
) -> None:
    """``app/autopilot/page.tsx``: a session, the run started with the student's id, polled
    until a question shows, answered by index alone, then stopped."""
    session = ok(
        await http.post(
            "/api/session/start", json={"user_id": user_id, "exam_type": "JEE"}, headers=auth
        )
    )
    session_id = session["session_id"]
    started = ok(
        await http.post(
            f"/api/autopilot/start?session_id={session_id}",
            json={
                "study_plan": plan,
                "exam_type": "JEE",
                "duration_minutes": 30,
                "user_id": user_id,
            },
            headers=auth,
        )
    )
    assert started["session_id"] == session_id
    assert started["status"] == "running"
    assert started["target_duration_minutes"] == 30
    typed(started["started_at"], str, "started_at")

    # The page shows a question only while current_phase === "quizzing".
    waiting = await poll(
        http,
        auth,
        session_id,
        lambda s: s["current_phase"] == "quizzing" and s["current_question"] is not None,
    )
    check_status(waiting)
    assert waiting["awaiting_input"] is True
    assert waiting["phase_detail"] == "awaiting_answer"
    question = waiting["current_question"]
    typed(question["text"], str, "current_question.text")
    assert len(typed(question["options"], list, "current_question.options")) == 4
    assert "correct_option_index" not in question

    answered = await http.post(
        f"/api/autopilot/answer/{session_id}", json={"answer_index": 0}, headers=auth
    )
    assert ok(answered) == {"status": "answer_received"}
    after = await poll(
        http, auth, session_id, lambda s: any(x["action"] == "answer" for x in s["steps"])
    )
    graded = next(x for x in after["steps"] if x["action"] == "answer")
    assert graded["data"]["question_id"] == question["id"]

    stopped = ok(await http.post(f"/api/autopilot/stop/{session_id}", headers=auth))
    assert stopped == {"status": "stopped", "session_id": session_id}
    final = await poll(http, auth, session_id, lambda s: s["status"] == "stopped")
    check_status(final)


async def test_the_original_pages_calls_in_page_order(page: httpx.AsyncClient) -> None:
    auth, user = await account(page, unique_name("orig"))
    user_id = user["id"]

    plan = await onboarding(page, auth)

    # ``app/plan``: a study session; ``app/actions.ts`` saves it with ``context_data``.
    session = ok(
        await page.post(
            "/api/session/start", json={"user_id": user_id, "exam_type": "JEE"}, headers=auth
        )
    )
    session_id = typed(session["session_id"], str, "session_id")
    ok(
        await page.post(
            f"/api/session/{session_id}/save",
            json={"context_data": {"plan": plan["exam_name"]}, "phase": "PLANNING"},
            headers=auth,
        )
    )
    state = ok(await page.get(f"/api/session/{session_id}/state", headers=auth))
    assert state == {"phase": "PLANNING", "context": {"plan": plan["exam_name"]}}

    await learn(page, auth, user_id)
    answers = await quiz(page, auth, user_id, session_id)
    await results(page, auth, user_id, answers)
    await autopilot(page, auth, user_id, plan)


@pytest.mark.parametrize(
    "path",
    [
        "/api/plan/stream-verified",
        "/api/session/00000000-0000-0000-0000-000000000001/save",
        "/api/quiz/persistence",
        "/api/autopilot/answer/00000000-0000-0000-0000-000000000001",
        "/api/users/login",
    ],
)
async def test_a_browser_preflight_from_the_original_origin_is_allowed(
    page: httpx.AsyncClient, path: str
) -> None:
    reply = await page.options(
        path,
        headers={
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert reply.status_code == 200, reply.text
    assert reply.headers["access-control-allow-origin"] == ORIGIN
    allowed = {h.strip().lower() for h in reply.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed
    assert "POST" in reply.headers["access-control-allow-methods"]
