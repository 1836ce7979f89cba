"""The autopilot end to end against the real tutor and quiz services (not stand-ins), through
the gateway: the real ``tutor.lesson`` teaches, the real ``quiz.generate`` writes questions
without answers, ``quiz.grade`` grades each answer, ``quiz.diagnose`` records the wrong one
as a misconception, and the run's mastery is the learner model's.

On the scripted model server (fast, and its answers are known: every question is a sum, so
the test can answer right or wrong on purpose), with a gateway and the four workers of its
own on a topic prefix of their own.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import SessionEnv
from tests.fakes.scripted_openai import Content, Reply
from tests.integration.conftest import ScriptedStack, Stack, owner_connection, register, start_stack
from tests.integration.test_autopilot import (
    assert_contiguous_once,
    finished,
    start_run,
    status,
    until,
    waiting,
)

pytestmark = pytest.mark.integration

TOPICS = ("Mental Arithmetic", "Column Addition")
PLAN = {
    "exam_name": "Arithmetic",
    "total_days": 1,
    "overview": "",
    "schedule": [
        {
            "day": 1,
            "theme": "Sums",
            "topics": [{"name": name, "difficulty": "easy", "rationale": ""} for name in TOPICS],
            "estimated_hours": 1,
        }
    ],
    "critical_topics": [],
}
LESSON = (
    "# Adding numbers\n\nThe key idea: a sum counts on from the first number by the second. "
    "Example: 3 + 4 counts on four from three and gives 7.\n\nRecap: count on. Check by "
    "counting back."
)
SUM = re.compile(r"what is (\d+) \+ (\d+)\?")
_numbers = itertools.count(1)


def _sum_item(topic: str) -> dict[str, Any]:
    n = next(_numbers)
    a, b = 10 + n, 3 + n % 7
    total = a + b
    options = [str(total + d) for d in (0, 1, 2, -1)]
    shift = n % 4
    return {
        "question": f"In {topic}, what is {a} + {b}?",
        "options": options[shift:] + options[:shift],
        "answer": str(total),
        "why": f"{a} plus {b} is {total}.",
        "concept": "sums of two numbers",
    }


DIAGNOSIS: dict[str, Any] = {
    "confusion": "Counts the first number as one of the steps.",
    "counter_example": "Counting on two from 5 gives 6 and 7, so 5 + 2 is 7.",
    "explanation": "Counting on starts after the first number, not on it.",
    "redemption": {
        "question": "What is 5 + 2?",
        "options": ["7", "6", "8", "9"],
        "answer": "7",
        "why": "Counting on two from five gives seven.",
        "concept": "sums of two numbers",
    },
}
"""The scripted model's diagnosis of a wrong answer."""


def respond(body: dict[str, Any]) -> Reply:
    """Well-formed answers to each prompt of the tutor and the quiz."""
    system = str(body["messages"][0]["content"])
    last = str(body["messages"][-1]["content"])
    if system.startswith("Write multiple-choice quiz questions"):
        count = int(re.search(r"Questions: (\d+)", last).group(1))  # type: ignore[union-attr]
        topic = re.search(r"Topic: (.+)", last).group(1)  # type: ignore[union-attr]
        return Content(json.dumps({f"q{k + 1}": _sum_item(topic) for k in range(count)}))
    if system.startswith("Give a student short feedback"):
        return Content(
            json.dumps(
                {
                    "feedback": "That option is one more than the sum.",
                    "hint": "Count on from the first number by the second.",
                }
            )
        )
    if system.startswith("A student answered a quiz question wrongly"):
        return Content(json.dumps(DIAGNOSIS))
    return Content(LESSON)


async def send_answer(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    session: str,
    question: dict[str, Any],
    index: int,
) -> None:
    """Answers the waiting ``question`` with option ``index``; the gateway takes it."""
    reply = await http.post(
        f"/api/autopilot/answer/{session}",
        json={"question_id": question["id"], "answer_index": index},
        headers=auth,
    )
    assert reply.status_code == 200, reply.text


def right_index(question: dict[str, Any]) -> int:
    """The correct option of a scripted question, worked out from its text."""
    a, b = (int(x) for x in SUM.search(question["text"]).groups())  # type: ignore[union-attr]
    return int(question["options"].index(str(a + b)))


ServicesStack = ScriptedStack
"""This module's stack: :class:`~tests.integration.conftest.ScriptedStack`."""


@pytest.fixture(scope="module")
async def services(test_env: SessionEnv) -> AsyncIterator[ServicesStack]:
    """Tutor, quiz and an autopilot replica on a database of their own (see start_stack)."""
    async with start_stack(
        test_env,
        ["tutor", "quiz", "autopilot"],
        model=respond,
        llm={"timeout_s": 10},
        gateway={"request_timeout_s": 60},
        workers={"autopilot": {"lease_ttl_s": 2.0, "lease_poll_s": 0.2, "lesson_words": 80}},
    ) as stack:
        yield ServicesStack(stack)


@pytest.fixture
async def admin_db(request: pytest.FixtureRequest) -> AsyncIterator[asyncpg.Connection]:
    """An owner connection to the database of the stack the test runs on: this module's
    own for a test on ``services``, else the session's."""
    env: SessionEnv = (
        request.getfixturevalue("services").stack.env
        if "services" in request.fixturenames
        else request.getfixturevalue("test_env")
    )
    async with owner_connection(env) as conn:
        yield conn


@pytest.fixture
async def sclient(services: ServicesStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=services.stack.base_url, timeout=120) as http:
        yield http


async def start(http: httpx.AsyncClient, auth: dict[str, str], plan: Any = PLAN) -> str:
    """Starts a five-minute run over ``plan`` in a new study session; returns the session."""
    session, _ = await start_run(http, auth, study_plan=plan, duration_minutes=5)
    return session


async def until_or_done(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    session: str,
    check: Callable[[dict[str, Any]], bool] = waiting,
    *,
    timeout_s: float = 90,
) -> dict[str, Any]:
    """Polls the run's status until ``check`` holds (a question waits, by default) or the
    run is over."""
    return await until(http, auth, session, lambda s: check(s) or finished(s), timeout_s)


async def test_a_whole_run_on_the_real_tutor_and_quiz(
    services: ServicesStack, sclient: httpx.AsyncClient, admin_db: asyncpg.Connection
) -> None:
    user_id, auth = await register(sclient)
    session = await start(sclient, auth)

    asked: dict[str, dict[str, Any]] = {}
    chosen: dict[str, int] = {}
    while True:
        found = await until_or_done(sclient, auth, session)
        if found["status"] != "running":
            break
        question = found["current_question"]
        assert set(question) == {
            "id",
            "text",
            "question_type",
            "options",
            "difficulty",
            "concept_tested",
            "source",
            "page",
        }
        assert question["source"] == "model"
        right = right_index(question)
        index = (right + 1) % 4 if not chosen else right  # the first answer wrong
        asked[question["id"]] = question
        chosen[question["id"]] = index
        await send_answer(sclient, auth, session, question, index)
        assert len(chosen) < 40, "the run does not end"

    assert found["status"] == "completed", found["end_reason"]
    assert found["topics_completed"] == list(TOPICS)
    steps = found["steps"]
    assert_contiguous_once(steps)
    by_action: dict[str, list[dict[str, Any]]] = {}
    for step in steps:
        by_action.setdefault(step["action"], []).append(step)
    quizzes = by_action["quiz"]
    assert len(quizzes) == len(TOPICS)
    # The real tutor taught: two lessons per quiz, in the tutor's stored words.
    assert len(by_action["lesson"]) == 2 * len(quizzes)
    assert all(s["data"]["content"].startswith("# Adding numbers") for s in by_action["lesson"])
    # The real quiz wrote the questions: its ids, its checks, never an answer in a step.
    questions = [q for s in quizzes for q in s["data"]["questions"]]
    assert len(questions) == 3 * len(quizzes)
    assert all(q["id"].startswith("q_") for q in questions)
    assert not any("correct_option_index" in q or "explanation" in q for q in questions)
    # Each answer graded by quiz.grade, as the test chose it.
    answers = by_action["answer"]
    assert {a["data"]["question_id"]: a["data"]["answer_index"] for a in answers} == chosen
    for answer in answers:
        question = asked[answer["data"]["question_id"]]
        assert answer["data"]["correct"] is (
            answer["data"]["answer_index"] == right_index(question)
        )
        assert answer["data"]["correct_option_index"] == right_index(question)
    graded = await admin_db.fetch(
        "SELECT question_id, outcome FROM quiz_answers WHERE user_id = $1::uuid", user_id
    )
    assert {r["question_id"]: r["outcome"] for r in graded} == {
        qid: "correct" if index == right_index(asked[qid]) else "wrong"
        for qid, index in chosen.items()
    }
    # The one wrong answer diagnosed by quiz.diagnose and recorded as an open misconception.
    (diagnosis,) = by_action["diagnose"]
    wrong = next(qid for qid, index in chosen.items() if index != right_index(asked[qid]))
    assert diagnosis["data"]["question_id"] == wrong
    assert diagnosis["data"]["misconception"] == "Counts the first number as one of the steps."
    open_ = await sclient.get("/api/learner/misconceptions?state=open", headers=auth)
    assert open_.status_code == 200, open_.text
    records = open_.json()["misconceptions"]
    assert [r["topic"] for r in records] == [TOPICS[0]]
    # Mastery is the learner model's, as its own route reports it.
    learner = await sclient.get("/api/learner/mastery", headers=auth)
    assert learner.status_code == 200, learner.text
    scores = {t["topic"]: t["score"] / 100 for t in learner.json()["topics"]}
    mastery = {m["topic"]: m for m in found["topic_mastery"]}
    assert set(mastery) == set(TOPICS)
    for topic in TOPICS:
        assert mastery[topic]["score"] == pytest.approx(scores[topic])
        assert mastery[topic]["attempts"] == 3
    updates = by_action["update_mastery"]
    assert [u["data"]["topic"] for u in updates] == list(TOPICS)
    assert all(u["data"]["score"] == pytest.approx(scores[u["data"]["topic"]]) for u in updates)
    assert updates[0]["data"]["wrong"] == 1
    # One model call per lesson, quiz and diagnosis, plus the feedback on the wrong answer:
    # nothing repeated.
    usage = await admin_db.fetch(
        "SELECT purpose, count(*) AS n FROM llm_usage WHERE user_id = $1::uuid GROUP BY purpose",
        user_id,
    )
    assert {r["purpose"]: r["n"] for r in usage} == {
        "tutor.lesson": len(by_action["lesson"]),
        "quiz.generate": len(quizzes),
        "quiz.feedback": 1,
        "quiz.diagnose": 1,
    }


def no_diagnosis(body: dict[str, Any]) -> Reply:
    """As :func:`respond`, but every diagnosis comes back with a redemption question whose
    options repeat, which the quiz's validator refuses on each of its rounds."""
    if str(body["messages"][0]["content"]).startswith("A student answered a quiz question"):
        redemption = {**DIAGNOSIS["redemption"], "options": ["7", "6", "7", "6"]}
        return Content(json.dumps({**DIAGNOSIS, "redemption": redemption}))
    return respond(body)


async def test_a_diagnosis_the_model_cannot_write_leaves_the_run_going(
    services: ServicesStack, sclient: httpx.AsyncClient, admin_db: asyncpg.Connection
) -> None:
    """quiz.diagnose ends ``diagnosis_failed``: the wrong answer stays graded, its diagnose
    step says why there is no misconception, and the run goes on to the mastery update."""
    services.model.set_default(no_diagnosis)
    try:
        user_id, auth = await register(sclient)
        session = await start(sclient, auth)
        wrong: str | None = None
        async with asyncio.timeout(90):
            while True:
                found = await status(sclient, auth, session)
                if found["status"] != "running" or any(
                    s["action"] == "update_mastery" for s in found["steps"]
                ):
                    break
                if found["awaiting_input"]:
                    question = found["current_question"]
                    right = right_index(question)
                    index = right if wrong else (right + 1) % 4
                    wrong = wrong or question["id"]
                    await send_answer(sclient, auth, session, question, index)
                await asyncio.sleep(0.1)
        assert found["status"] == "running", found["end_reason"]
        stopped = await sclient.post(f"/api/autopilot/stop/{session}", headers=auth)
        assert stopped.status_code == 200, stopped.text
    finally:
        services.model.set_default(respond)

    (diagnosis,) = [s for s in found["steps"] if s["action"] == "diagnose"]
    assert diagnosis["data"]["question_id"] == wrong
    assert diagnosis["data"]["misconception"] is None
    assert "no usable diagnosis" in diagnosis["data"]["unavailable"]
    assert "not diagnosed" in diagnosis["reasoning"]
    assert not any(s["action"] == "fail" for s in found["steps"])
    graded = await admin_db.fetchval(
        "SELECT outcome FROM quiz_answers WHERE user_id = $1::uuid AND question_id = $2",
        user_id,
        wrong,
    )
    assert graded == "wrong"
    open_ = await sclient.get("/api/learner/misconceptions?state=open", headers=auth)
    assert open_.status_code == 200, open_.text
    assert open_.json()["misconceptions"] == []


BIOLOGY_LESSON = (
    "# Cell organelles\n\nThe mitochondrion is the powerhouse of the cell. Ribosomes make "
    "proteins from amino acids. The nucleus holds the genetic material of the cell.\n\n"
    "- Chloroplasts carry out photosynthesis in plant cells.\n"
    "- Lysosomes contain digestive enzymes that break down waste.\n\n"
    "Recap: the Golgi apparatus packages proteins for transport."
)
# What SmolLM2-135M answered to the quiz prompt (issue 14): repeated options, an answer that
# is none of them.
EMBEDDED_LIKE_ITEM = {
    "question": "What is the cell's role in the human body?",
    "options": ["cell", "organism", "organism", "organism"],
    "answer": "Cell is the smallest unit of life.",
    "why": "Cell is the smallest unit of life.",
    "concept": "Cell is the smallest unit of life.",
}


def quiz_always_invalid(lesson: str) -> Any:
    """A model whose quiz answers are never usable and whose lessons are ``lesson``."""

    def reply(body: dict[str, Any]) -> Reply:
        system = str(body["messages"][0]["content"])
        last = str(body["messages"][-1]["content"])
        if system.startswith("Write multiple-choice quiz questions"):
            found = re.search(r"Questions: (\d+)", last)
            count = int(found.group(1)) if found else 1
            return Content(json.dumps({f"q{k}": EMBEDDED_LIKE_ITEM for k in range(1, count + 1)}))
        if system.startswith(("Give a student short feedback", "A student answered")):
            return respond(body)
        return Content(lesson)

    return reply


async def _key(admin_db: asyncpg.Connection, user_id: str, question_id: str) -> int:
    """The stored correct option (the scripted student knows the answers)."""
    stored = await admin_db.fetchval(
        "SELECT question FROM quiz_questions WHERE user_id = $1::uuid AND id = $2",
        user_id,
        question_id,
    )
    question = json.loads(stored) if isinstance(stored, str) else stored
    return int(question["correct_option_index"])


async def test_a_quiz_the_model_cannot_write_is_built_from_the_lessons_and_graded(
    services: ServicesStack, sclient: httpx.AsyncClient, admin_db: asyncpg.Connection
) -> None:
    """Every quiz answer of the model is invalid: the quiz builds its questions from the
    lessons just taught (labelled extracts), the student's answers are graded by the quiz,
    mastery moves, and the run ends completed, never failed."""
    services.model.set_default(quiz_always_invalid(BIOLOGY_LESSON))
    try:
        user_id, auth = await register(sclient)
        session = await start(sclient, auth)
        answered: dict[str, bool] = {}
        while True:
            found = await until_or_done(sclient, auth, session)
            if found["status"] != "running":
                break
            question = found["current_question"]
            assert question["source"] == "extract"
            right = await _key(admin_db, user_id, question["id"])
            # The first answer wrong, the others right.
            index = right if answered else (right + 1) % len(question["options"])
            answered[question["id"]] = index == right
            await send_answer(sclient, auth, session, question, index)
            assert len(answered) < 40, "the run does not end"
    finally:
        services.model.set_default(respond)

    assert found["status"] == "completed", found["end_reason"]
    steps = found["steps"]
    assert_contiguous_once(steps)
    assert not any(s["action"] in ("fail", "quiz_skipped") for s in steps)
    quizzes = [s for s in steps if s["action"] == "quiz"]
    assert quizzes
    lesson_text = " ".join(BIOLOGY_LESSON.split()).lower()
    for quiz in quizzes:
        for question in quiz["data"]["questions"]:
            assert question["source"] == "extract"
            assert "correct_option_index" not in question
            options = [o.strip().lower() for o in question["options"]]
            assert len(set(options)) == len(options)
            assert all(options)
    # Graded by quiz.grade as the student chose; every key is in its lesson sentence.
    answers = [s for s in steps if s["action"] == "answer"]
    assert {a["data"]["question_id"]: a["data"]["correct"] for a in answers} == answered
    for answer in answers:
        assert answer["data"]["explanation"].startswith("From the lesson: ")
        sentence = answer["data"]["explanation"].removeprefix("From the lesson: ")
        assert sentence.lower().rstrip(".") in lesson_text
    graded = await admin_db.fetch(
        "SELECT question_id, outcome FROM quiz_answers WHERE user_id = $1::uuid", user_id
    )
    assert {r["question_id"]: r["outcome"] == "correct" for r in graded} == answered
    updates = [s for s in steps if s["action"] == "update_mastery"]
    assert updates
    assert updates[0]["data"]["score"] > updates[0]["data"]["score_before"]


async def test_a_quiz_that_cannot_be_made_at_all_is_skipped_and_the_run_completes(
    services: ServicesStack, sclient: httpx.AsyncClient
) -> None:
    """No valid question and a lesson with no sentence to ask about (only short phrases):
    each topic's quiz is a quiz_skipped step with the quiz service's reason, and the run
    completes instead of failing."""
    services.model.set_default(quiz_always_invalid("Count on. Add up. Check back."))
    try:
        _, auth = await register(sclient)
        session = await start(sclient, auth)
        found = await until_or_done(sclient, auth, session)
    finally:
        services.model.set_default(respond)
    assert found["status"] == "completed", found["end_reason"]
    skipped = [s for s in found["steps"] if s["action"] == "quiz_skipped"]
    assert [s["data"]["topic"] for s in skipped] == list(TOPICS)
    for step in skipped:
        assert "0 of 3 questions from the model passed" in step["data"]["reason"]
        assert "built from the source text (lesson)" in step["data"]["reason"]
        assert step["phase"] == "choosing_topic"
    assert found["end_reason"].startswith("every topic is at mastery")
    assert not any(s["action"] == "fail" for s in found["steps"])


LOOPING_LESSON = "They include the nucleus, mitochondria, " + "ribosomes, " * 120
"""A lesson as the embedded model wrote one (see the issue): the tutor never stores it."""


def lessons_always_loop(body: dict[str, Any]) -> Reply:
    """Every lesson loops; quizzes, feedback and diagnoses are well formed."""
    system = str(body["messages"][0]["content"])
    if system.startswith(
        ("Write multiple-choice quiz questions", "Give a student short feedback", "A student")
    ):
        return respond(body)
    return Content(LOOPING_LESSON)


async def test_a_lesson_the_tutor_cannot_write_is_skipped_and_the_run_completes(
    services: ServicesStack, sclient: httpx.AsyncClient
) -> None:
    """The tutor refuses every lesson (answer_unusable: each round loops, nothing to quote):
    each turn is a lesson_skipped step with the tutor's reason, the quiz is still asked and
    answered, and the run completes instead of failing at its first lesson."""
    services.model.set_default(lessons_always_loop)
    try:
        _, auth = await register(sclient)
        session = await start(sclient, auth)
        answered = 0
        while True:
            found = await until_or_done(sclient, auth, session)
            if found["status"] != "running":
                break
            question = found["current_question"]
            await send_answer(sclient, auth, session, question, right_index(question))
            answered += 1
            assert answered < 40, "the run does not end"
    finally:
        services.model.set_default(respond)
    assert found["status"] == "completed", found["end_reason"]
    steps = found["steps"]
    assert not any(s["action"] in ("fail", "lesson") for s in steps)
    skipped = [s for s in steps if s["action"] == "lesson_skipped"]
    assert len(skipped) >= 2
    assert [s["data"]["lesson_number"] for s in skipped[:2]] == [1, 2]
    assert all(s["data"]["reason"] for s in skipped)
    assert "ribosomes, ribosomes" not in json.dumps(steps)
    answers = [s for s in steps if s["action"] == "answer"]
    assert answers
    assert all(a["data"]["correct"] for a in answers)


# ---- the embedded model ------------------------------------------------------------------

LLM_TOPIC = "Cell organelles"
"""The topic of the issue's report: the embedded model wrote no valid question on it, so the
quiz comes from the lessons' text (or the model, when it manages)."""
LLM_TOPICS = (LLM_TOPIC, "Photosynthesis")
"""Two topics: a lesson the model writes in a loop gives no sentence to ask about, and its
topic is then skipped, as declared (on one topic: twice in six CI runs)."""


@pytest.mark.llm
async def test_a_run_on_the_embedded_model_reaches_graded_answers_and_completes(
    stack: Stack, client: httpx.AsyncClient, admin_db: asyncpg.Connection
) -> None:
    """The default stack on the embedded model, a scripted student who answers every
    question right (it reads the stored key, so no feedback or diagnosis call slows the
    run): lessons from the tutor, questions without answers (the model's or extracts of the
    lessons) on at least one of two topics, every answer graded by the quiz, mastery
    updated, and the run ends ``completed``, never ``failed``; a quiz turn with no quiz is
    recorded as skipped, with its reason."""
    user_id, auth = await register(client)
    plan = {
        **PLAN,
        "schedule": [
            {
                "day": 1,
                "theme": "Cells",
                "topics": [
                    {"name": name, "difficulty": "easy", "rationale": ""} for name in LLM_TOPICS
                ],
                "estimated_hours": 1,
            }
        ],
    }
    session, _ = await start_run(client, auth, study_plan=plan, duration_minutes=10)

    chosen: dict[str, int] = {}
    async with asyncio.timeout(900):
        while True:
            found = await status(client, auth, session)
            if found["status"] != "running":
                break
            if found["awaiting_input"]:
                question = found["current_question"]
                assert "correct_option_index" not in question
                assert question["source"] in ("model", "extract")
                chosen[question["id"]] = await _key(admin_db, user_id, question["id"])
                answered = await client.post(
                    f"/api/autopilot/answer/{session}",
                    json={"question_id": question["id"], "answer_index": chosen[question["id"]]},
                    headers=auth,
                )
                # 400 only when the wait or the study time ended meanwhile.
                assert answered.status_code in (200, 400), answered.text
            await asyncio.sleep(0.5)

    steps = found["steps"]
    assert_contiguous_once(steps)
    assert found["status"] == "completed", found["end_reason"]
    assert not any(s["action"] == "fail" for s in steps)
    lessons = [s for s in steps if s["action"] == "lesson"]
    assert lessons, steps
    quizzes = [s for s in steps if s["action"] == "quiz"]
    assert quizzes, [s["reasoning"] for s in steps]
    # Each quiz turn is a quiz or a skip with its reason (a topic quizzed in one round may
    # be skipped in a later one).
    skips = [s for s in steps if s["action"] == "quiz_skipped"]
    assert all(s["data"]["reason"] for s in skips), skips
    assert {s["data"]["topic"] for s in [*quizzes, *skips]} <= set(LLM_TOPICS)
    for quiz in quizzes:
        for question in quiz["data"]["questions"]:
            assert question["id"].startswith("q_")
            assert "correct_option_index" not in question
            options = [o.strip().lower() for o in question["options"]]
            assert len(set(options)) == len(options)
            assert all(options)
    answers = [s for s in steps if s["action"] == "answer"]
    assert answers, "the student reached no graded answer"
    graded = await admin_db.fetch(
        "SELECT question_id, outcome FROM quiz_answers WHERE user_id = $1::uuid", user_id
    )
    verdicts = {r["question_id"]: r["outcome"] for r in graded}
    for answer in answers:
        data = answer["data"]
        assert verdicts[data["question_id"]] == "correct"
        assert data["correct"] is True
    updates = [s for s in steps if s["action"] == "update_mastery"]
    assert updates, [s["reasoning"] for s in steps]
    assert updates[0]["data"]["score"] > updates[0]["data"]["score_before"]
    learner = await client.get("/api/learner/mastery", headers=auth)
    assert learner.status_code == 200, learner.text
    scores = {t["topic"]: t["score"] / 100 for t in learner.json()["topics"]}
    assert updates[-1]["data"]["score"] == pytest.approx(scores[updates[-1]["data"]["topic"]])
