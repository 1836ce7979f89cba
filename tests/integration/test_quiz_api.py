"""The quiz end to end through gateway -> Kafka -> quiz -> Postgres -> relay -> gateway, with
a scripted model that writes well-formed answers (the embedded model's own runs are in
``test_quiz_llm.py``).

A gateway and a quiz worker of their own, on a topic prefix of their own, so the shared
stack's quiz worker (with the real model) never takes these commands.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import grpc
import httpx
import pytest
from grpc import aio

from exammentor._proto import quiz_pb2, quiz_pb2_grpc
from exammentor.messaging.topic_admin import ensure_topics
from exammentor.settings import LLMSettings
from services.gateway.app import Gateway
from services.gateway.settings import GatewaySettings
from services.quiz.domain import DEFAULT_BKT_PARAMS, BKTParams, update_mastery
from services.quiz.fit import FitRefusedError, fit_learner_params
from services.quiz.fit import main as fit_main
from services.quiz.repo import concept_key
from tests.conftest import SessionEnv
from tests.fakes.scripted_openai import Content, Reply, ScriptedOpenAI
from tests.infra import unique_name
from tests.integration.conftest import Stack, register, start_worker
from tests.unit.quiz.learner_sim import simulate

pytestmark = pytest.mark.integration

CAPITALS = [
    ("What is the capital of France?", ["Paris", "Lyon", "Nice", "Lille"], "Paris"),
    ("What is the capital of Italy?", ["Rome", "Milan", "Turin", "Naples"], "Rome"),
    ("What is the capital of Spain?", ["Madrid", "Seville", "Bilbao", "Malaga"], "Madrid"),
    ("What is the capital of Japan?", ["Tokyo", "Osaka", "Kyoto", "Nagoya"], "Tokyo"),
    ("What is the capital of Kenya?", ["Nairobi", "Mombasa", "Kisumu", "Eldoret"], "Nairobi"),
    ("What is the capital of Peru?", ["Lima", "Cusco", "Arequipa", "Trujillo"], "Lima"),
]


def _item(n: int) -> dict[str, Any]:
    text, options, answer = CAPITALS[n % len(CAPITALS)]
    return {
        "question": text,
        "options": options,
        "answer": answer,
        "why": f"{answer} is the capital city.",
        "concept": "European capitals",
    }


def respond(body: dict[str, Any]) -> Reply:
    """Well-formed answers for each of the quiz's prompts."""
    system = str(body["messages"][0]["content"])
    last = str(body["messages"][-1]["content"])
    if system.startswith("Write multiple-choice quiz questions"):
        count = int(re.search(r"Questions: (\d+)", last).group(1))  # type: ignore[union-attr]
        avoid = last.split("Do not ask:", 1)[1] if "Do not ask:" in last else ""
        fresh = [i for i in range(len(CAPITALS)) if CAPITALS[i][0] not in avoid]
        return Content(json.dumps({f"q{k + 1}": _item(fresh[k]) for k in range(count)}))
    if system.startswith("Give a student short feedback"):
        return Content(
            json.dumps(
                {
                    "feedback": "That option is a large city but not the capital city.",
                    "hint": "Check which city holds the seat of government.",
                }
            )
        )
    if system.startswith("A student answered a quiz question wrongly"):
        return Content(
            json.dumps(
                {
                    "confusion": "Takes the largest city for the capital.",
                    "counter_example": "Sydney is larger than Canberra, yet Canberra is the "
                    "capital of Australia.",
                    "explanation": "A capital is where the government sits, not the biggest city.",
                    "redemption": {
                        "question": "Which city is the capital of Australia?",
                        "options": ["Canberra", "Sydney", "Melbourne", "Perth"],
                        "answer": "Canberra",
                        "why": "The federal government sits in Canberra.",
                        "concept": "capitals",
                    },
                }
            )
        )
    return Content(
        json.dumps(
            {
                "summary": "You answered some questions right. Keep practising the capitals.",
                "encouragement": "You are making steady progress.",
            }
        )
    )


@dataclasses.dataclass
class QuizStack:
    stack: Stack
    model: ScriptedOpenAI
    env: SessionEnv


@pytest.fixture(scope="module")
async def quiz_stack(test_env: SessionEnv) -> AsyncIterator[QuizStack]:
    env = dataclasses.replace(test_env, topic_prefix=unique_name("qz"))
    await ensure_topics(env.kafka())
    model = ScriptedOpenAI(default=respond)
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
    worker = await start_worker(env, "quiz", llm)
    yield QuizStack(Stack(gateway, [worker]), model, env)
    await worker.stop()
    await gateway.stop()
    await model.__aexit__(None, None, None)


@pytest.fixture
async def qclient(quiz_stack: QuizStack) -> AsyncIterator[httpx.AsyncClient]:
    quiz_stack.model.reset()
    async with httpx.AsyncClient(base_url=quiz_stack.stack.base_url, timeout=120) as http:
        yield http


async def _generate(http: httpx.AsyncClient, auth: dict[str, str], n: int = 3) -> dict[str, Any]:
    reply = await http.post(
        "/api/quiz/generate",
        json={"topic": "Capitals", "num_questions": n, "difficulty": "medium"},
        headers=auth,
    )
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


async def test_a_generated_quiz_is_stored_with_ids_and_sent_without_answers(
    qclient: httpx.AsyncClient,
) -> None:
    _, auth = await register(qclient)
    quiz = await _generate(qclient, auth)
    assert quiz["topic"] == "Capitals"
    assert len(quiz["questions"]) == 3
    assert quiz["shortfall_reason"] == ""
    for question in quiz["questions"]:
        assert question["id"].startswith("q_")
        assert len(question["options"]) == 4
        assert "correct_option_index" not in question
        assert "explanation" not in question
    again = await _generate(qclient, auth)
    assert {q["text"] for q in again["questions"]}.isdisjoint(
        {q["text"] for q in quiz["questions"]}
    ), "questions seen recently are not repeated"


async def test_evaluate_grades_the_stored_question_whatever_the_body_claims(
    qclient: httpx.AsyncClient,
) -> None:
    _, auth = await register(qclient)
    quiz = await _generate(qclient, auth, 1)
    question = quiz["questions"][0]
    right = next(i for i, o in enumerate(question["options"]) if o in {c[2] for c in CAPITALS})
    wrong = (right + 1) % 4
    # The body says the wrong option is correct: the stored question decides.
    reply = await qclient.post(
        "/api/quiz/evaluate",
        json={
            "question_id": question["id"],
            "question": "anything",
            "options": ["a", "b", "c", "d"],
            "correct_option_index": wrong,
            "student_answer_index": wrong,
        },
        headers=auth,
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["is_correct"] is False
    assert body["outcome"] == "wrong"
    assert body["correct_option_index"] == right
    assert body["feedback"]
    assert body["hint_for_similar"]
    mastery = (await qclient.get("/api/learner/mastery", headers=auth)).json()
    assert mastery["topics"][0]["topic"] == "Capitals"
    assert len(mastery["topics"][0]["evidence"]) == 1
    assert mastery["concepts"][0]["evidence"] == mastery["topics"][0]["evidence"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"topic": "Capitals", "num_questions": 0}, "num_questions"),
        ({"topic": "Capitals", "num_questions": 21}, "num_questions"),
        ({"topic": "Capitals", "difficulty": "extreme"}, "difficulty"),
        ({"topic": "   "}, "topic"),
        ({}, "topic"),
    ],
)
async def test_bad_generate_bodies_are_a_422_naming_the_field(
    qclient: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    _, auth = await register(qclient)
    reply = await qclient.post("/api/quiz/generate", json=body, headers=auth)
    assert reply.status_code == 422, reply.text
    assert field in reply.json()["detail"]["message"]
    if field == "num_questions" and body["num_questions"] == 21:
        assert "20" in reply.json()["detail"]["message"]


async def test_bad_answers_are_refused_naming_the_field_and_nothing_is_stored(
    qclient: httpx.AsyncClient, admin_db: asyncpg.Connection
) -> None:
    _, auth = await register(qclient)
    quiz = await _generate(qclient, auth, 1)
    qid = quiz["questions"][0]["id"]
    before = await admin_db.fetchval("SELECT count(*) FROM quiz_answers")
    out_of_range = await qclient.post(
        "/api/quiz/evaluate", json={"question_id": qid, "student_answer_index": 4}, headers=auth
    )
    assert out_of_range.status_code == 422, out_of_range.text
    assert "student_answer_index" in out_of_range.json()["detail"]["message"]
    negative = await qclient.post(
        "/api/quiz/evaluate", json={"question_id": qid, "student_answer_index": -1}, headers=auth
    )
    assert negative.status_code == 422
    assert "student_answer_index" in negative.json()["detail"]["message"]
    unknown = await qclient.post(
        "/api/quiz/evaluate",
        json={"question_id": "q_nope", "student_answer_index": 0},
        headers=auth,
    )
    assert unknown.status_code == 404
    assert "question_id" in unknown.json()["detail"]["message"]
    _, other = await register(qclient)
    theirs = await qclient.post(
        "/api/quiz/evaluate", json={"question_id": qid, "student_answer_index": 0}, headers=other
    )
    assert theirs.status_code == 404, "another user's question is none of yours"
    assert await admin_db.fetchval("SELECT count(*) FROM quiz_answers") == before


async def test_misconception_lifecycle_open_redeemed_rechecked_resolved_and_reopened(
    qclient: httpx.AsyncClient, admin_db: asyncpg.Connection
) -> None:
    user_id, auth = await register(qclient)
    session = await qclient.post("/api/session/start", json={"exam_type": "none"}, headers=auth)
    assert session.status_code in (200, 201), session.text
    session_id = session.json()["session_id"]
    quiz = await _generate(qclient, auth, 1)
    question = quiz["questions"][0]
    right = next(i for i, o in enumerate(question["options"]) if o in {c[2] for c in CAPITALS})
    wrong = (right + 1) % 4
    await qclient.post(
        "/api/quiz/evaluate",
        json={"question_id": question["id"], "student_answer_index": wrong},
        headers=auth,
    )
    diagnosis = await qclient.post(
        "/api/quiz/misconception",
        json={
            "question_id": question["id"],
            "student_answer_index": wrong,
            "session_id": session_id,
        },
        headers=auth,
    )
    assert diagnosis.status_code == 200, diagnosis.text
    found = diagnosis.json()
    assert found["state"] == "open"
    redemption = found["redemption_question"]
    assert "correct_option_index" not in redemption
    assert found["counter_example"]
    history = (await qclient.get(f"/api/session/{session_id}/history", headers=auth)).json()
    assert "misconception_buster" in json.dumps(history)
    listed = (await qclient.get("/api/learner/misconceptions?state=open", headers=auth)).json()
    assert [m["id"] for m in listed["misconceptions"]] == [found["misconception_id"]]

    canberra = redemption["options"].index("Canberra")
    redeemed = await qclient.post(
        "/api/quiz/evaluate",
        json={"question_id": redemption["id"], "student_answer_index": canberra},
        headers=auth,
    )
    assert redeemed.json()["is_correct"] is True
    listed = (await qclient.get("/api/learner/misconceptions?state=redeemed", headers=auth)).json()
    assert listed["misconceptions"][0]["recheck_due"] is not None

    # Make the re-check due now (as if its FSRS due date had come), then answer right.
    await _make_due(admin_db, found["misconception_id"])
    resolved = await qclient.post(
        "/api/quiz/evaluate",
        json={"question_id": question["id"], "student_answer_index": right},
        headers=auth,
    )
    assert resolved.json()["is_correct"] is True
    listed = (await qclient.get("/api/learner/misconceptions?state=resolved", headers=auth)).json()
    assert [m["id"] for m in listed["misconceptions"]] == [found["misconception_id"]]

    # Wrong again: reopened.
    await qclient.post(
        "/api/quiz/evaluate",
        json={"question_id": question["id"], "student_answer_index": wrong},
        headers=auth,
    )
    listed = (await qclient.get("/api/learner/misconceptions?state=open", headers=auth)).json()
    assert listed["misconceptions"][0]["reopened_times"] == 1
    bad_state = await qclient.get("/api/learner/misconceptions?state=gone", headers=auth)
    assert bad_state.status_code == 422
    assert "state" in bad_state.json()["detail"]["message"]
    del user_id


async def _make_due(admin_db: asyncpg.Connection, misconception_id: str) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    await admin_db.execute(
        "UPDATE misconception_records SET recheck_due = $2, record = jsonb_set(record, "
        "'{recheck_due}', to_jsonb($3::text)) WHERE id = $1",
        misconception_id,
        past,
        past.isoformat(),
    )


async def test_performance_is_recomputed_from_the_answer_log_not_the_clients_claim(
    qclient: httpx.AsyncClient,
) -> None:
    _, auth = await register(qclient)
    quiz = await _generate(qclient, auth, 2)
    first, second = quiz["questions"]
    for question in (first, second):
        right = next(i for i, o in enumerate(question["options"]) if o in {c[2] for c in CAPITALS})
        await qclient.post(
            "/api/quiz/evaluate",
            json={"question_id": question["id"], "student_answer_index": (right + 1) % 4},
            headers=auth,
        )
    reply = await qclient.post(
        "/api/analyze/performance",
        json={
            "topic": "Capitals",
            "quiz_answers": [
                {"question_id": first["id"], "is_correct": True, "student_answer_index": 0},
                {"question_id": second["id"], "is_correct": True, "student_answer_index": 0},
            ],
        },
        headers=auth,
    )
    assert reply.status_code == 200, reply.text
    analysis = reply.json()
    assert analysis["overall_score"] == 0
    assert analysis["correct"] == 0
    assert analysis["answered"] == 2


async def test_saved_quizzes_come_back_without_answers_until_answered(
    qclient: httpx.AsyncClient,
) -> None:
    _, auth = await register(qclient)
    question = {
        "id": "q1",
        "text": "What is the capital of Chile?",
        "options": ["Santiago", "Valparaiso", "Concepcion", "Antofagasta"],
        "correct_option_index": 0,
        "explanation": "Santiago is the capital.",
        "concept_tested": "capitals",
    }
    nothing = await qclient.get("/api/quiz/persistence?user_id=me&topic_id=geo-1", headers=auth)
    assert nothing.status_code == 200
    assert nothing.text == "null"  # the original's answer; its page tests for null
    saved = await qclient.post(
        "/api/quiz/persistence",
        json={"user_id": "me", "topic_id": "geo-1", "questions": [question]},
        headers=auth,
    )
    assert saved.status_code == 200, saved.text
    got = (
        await qclient.get("/api/quiz/persistence?user_id=me&topic_id=geo-1", headers=auth)
    ).json()
    stored = got["questions"][0]
    assert stored["answered"] is False
    assert stored["correct_option_index"] is None
    await qclient.post(
        "/api/quiz/evaluate",
        json={"question_id": stored["id"], "student_answer_index": 1},
        headers=auth,
    )
    got = (
        await qclient.get("/api/quiz/persistence?user_id=me&topic_id=geo-1", headers=auth)
    ).json()
    assert got["questions"][0]["answered"] is True
    assert got["questions"][0]["correct_option_index"] == 0
    missing = await qclient.get("/api/quiz/persistence?user_id=me", headers=auth)
    assert missing.status_code == 422
    assert "topic_id" in missing.json()["detail"]["message"]


async def test_saving_questions_without_their_answers_is_refused_by_name(
    qclient: httpx.AsyncClient,
) -> None:
    # The original's quiz page saves the quiz it generated; here that quiz has no answers.
    _, auth = await register(qclient)
    quiz = await _generate(qclient, auth, n=2)
    refused = await qclient.post(
        "/api/quiz/persistence",
        json={"user_id": "me", "topic_id": "geo-2", "questions": quiz["questions"]},
        headers=auth,
    )
    assert refused.status_code == 422
    detail = refused.json()["detail"]
    assert detail["code"] == "answers_withheld"
    assert "correct_option_index" in detail["message"]
    assert "/api/quiz/evaluate" in detail["message"]
    assert quiz["questions"][0]["id"] in detail["message"]
    blank = {
        "id": "b1",
        "text": "The capital of Chile is ___.",
        "question_type": "fill_in_the_blank",
        "explanation": "Santiago is the capital.",
        "concept_tested": "capitals",
    }
    refused = await qclient.post(
        "/api/quiz/persistence",
        json={"user_id": "me", "topic_id": "geo-2", "questions": [blank]},
        headers=auth,
    )
    assert refused.json()["detail"]["code"] == "answers_withheld"
    assert "accepted_answers" in refused.json()["detail"]["message"]
    # Nothing was stored; the generated questions are graded by id as they are.
    nothing = await qclient.get("/api/quiz/persistence?user_id=me&topic_id=geo-2", headers=auth)
    assert nothing.json() is None
    graded = await qclient.post(
        "/api/quiz/evaluate",
        json={"question_id": quiz["questions"][0]["id"], "student_answer_index": 0},
        headers=auth,
    )
    assert graded.status_code == 200, graded.text
    assert isinstance(graded.json()["correct_option_index"], int)


# ---- the gRPC twin -----------------------------------------------------------------------


@pytest.fixture
async def quiz_stub(quiz_stack: QuizStack) -> AsyncIterator[quiz_pb2_grpc.QuizStub]:
    quiz_stack.model.reset()
    address = f"127.0.0.1:{quiz_stack.stack.gateway.grpc_port}"
    async with aio.insecure_channel(address) as channel:
        yield quiz_pb2_grpc.QuizStub(channel)


def _bearer(auth: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return (("authorization", auth["Authorization"]),)


async def _refusal(call: Any) -> tuple[grpc.StatusCode, str, str]:
    with pytest.raises(aio.AioRpcError) as refused:
        await call
    trailing = dict(refused.value.trailing_metadata() or ())
    return refused.value.code(), refused.value.details() or "", str(trailing.get("error-code"))


async def test_the_grpc_twin_generates_grades_and_reads_like_http(
    quiz_stub: quiz_pb2_grpc.QuizStub, qclient: httpx.AsyncClient
) -> None:
    _, auth = await register(qclient)
    meta = _bearer(auth)
    quiz = await quiz_stub.GenerateQuiz(
        quiz_pb2.GenerateQuizRequest(topic="Capitals", num_questions=2, difficulty="medium"),
        metadata=meta,
    )
    assert len(quiz.questions) == 2
    assert quiz.request_id
    assert quiz.quiz_id
    question = quiz.questions[0]
    # The message type has no field for an answer: nothing to leak, nothing set.
    assert "correct_option_index" not in question.DESCRIPTOR.fields_by_name
    right = next(i for i, o in enumerate(question.options) if o in {c[2] for c in CAPITALS})
    wrong = (right + 1) % 4

    graded = await quiz_stub.EvaluateAnswer(
        quiz_pb2.EvaluateAnswerRequest(
            question_id=question.id, student_answer_index=wrong, correct_option_index=wrong
        ),
        metadata=meta,
    )
    assert (graded.is_correct, graded.outcome) == (False, "wrong")
    assert graded.correct_option_index == right, "the stored question decides"
    assert graded.feedback
    assert graded.hint_for_similar

    diagnosis = await quiz_stub.DiagnoseMisconception(
        quiz_pb2.MisconceptionRequest(question_id=question.id, student_answer_index=wrong),
        metadata=meta,
    )
    assert diagnosis.state == "open"
    assert diagnosis.redemption_question.id
    listed = await quiz_stub.ListMisconceptions(
        quiz_pb2.MisconceptionQuery(state="open"), metadata=meta
    )
    assert [m.id for m in listed.misconceptions] == [diagnosis.misconception_id]

    analysis = await quiz_stub.AnalyzePerformance(
        quiz_pb2.AnalyzePerformanceRequest(
            topic="Capitals",
            quiz_answers=[
                quiz_pb2.QuizAnswerItem(question_id=question.id, is_correct=True),
            ],
        ),
        metadata=meta,
    )
    assert (analysis.answered, analysis.correct, analysis.overall_score) == (1, 0, 0)

    mastery = await quiz_stub.GetMastery(quiz_pb2.LearnerMasteryRequest(), metadata=meta)
    over_http = (await qclient.get("/api/learner/mastery", headers=auth)).json()
    assert [c.evidence[:] for c in mastery.concepts] == [
        c["evidence"] for c in over_http["concepts"]
    ]
    assert mastery.topics[0].topic == "Capitals"

    saved = await quiz_stub.SaveQuiz(
        quiz_pb2.SavedQuizRequest(
            user_id="me",
            topic_id="geo-grpc",
            questions=[
                quiz_pb2.Question(
                    id="q1",
                    text="What is the capital of Chile?",
                    options=["Santiago", "Valparaiso", "Concepcion", "Antofagasta"],
                    correct_option_index=0,
                    explanation="Santiago is the capital.",
                    concept_tested="capitals",
                )
            ],
        ),
        metadata=meta,
    )
    got = await quiz_stub.GetSavedQuiz(
        quiz_pb2.SavedQuizQuery(user_id="me", topic_id="geo-grpc"), metadata=meta
    )
    assert got.questions[0].id == saved.questions[0].id
    assert not got.questions[0].answered
    assert not got.questions[0].HasField("correct_option_index")
    # None saved: proto3 has no null, so a view without questions or created_at.
    nothing = await quiz_stub.GetSavedQuiz(
        quiz_pb2.SavedQuizQuery(user_id="me", topic_id="never-saved"), metadata=meta
    )
    assert list(nothing.questions) == []
    assert not nothing.HasField("created_at")
    keyless = quiz_pb2.SavedQuizRequest(
        user_id="me",
        topic_id="geo-grpc",
        questions=[
            quiz_pb2.Question(
                id="q2",
                text="What is the capital of Peru?",
                options=["Lima", "Cusco", "Arequipa", "Trujillo"],
                explanation="Lima is the capital.",
                concept_tested="capitals",
            )
        ],
    )
    code, _, error_code = await _refusal(quiz_stub.SaveQuiz(keyless, metadata=meta))
    assert (code, error_code) == (grpc.StatusCode.INVALID_ARGUMENT, "answers_withheld")


@pytest.mark.parametrize(
    ("request_", "field", "http_body"),
    [
        (
            quiz_pb2.GenerateQuizRequest(topic="Capitals", num_questions=0),
            "num_questions",
            {"topic": "Capitals", "num_questions": 0},
        ),
        (
            quiz_pb2.GenerateQuizRequest(topic="Capitals", num_questions=21),
            "num_questions",
            {"topic": "Capitals", "num_questions": 21},
        ),
        (
            quiz_pb2.GenerateQuizRequest(topic="Capitals", difficulty="extreme"),
            "difficulty",
            {"topic": "Capitals", "difficulty": "extreme"},
        ),
        (quiz_pb2.GenerateQuizRequest(topic="   "), "topic", {"topic": "   "}),
        (quiz_pb2.GenerateQuizRequest(), "topic", {}),
    ],
)
async def test_bad_generate_requests_over_grpc_are_refused_as_over_http(
    quiz_stub: quiz_pb2_grpc.QuizStub,
    qclient: httpx.AsyncClient,
    request_: quiz_pb2.GenerateQuizRequest,
    field: str,
    http_body: dict[str, Any],
) -> None:
    _, auth = await register(qclient)
    status, details, code = await _refusal(quiz_stub.GenerateQuiz(request_, metadata=_bearer(auth)))
    assert status == grpc.StatusCode.INVALID_ARGUMENT
    assert field in details
    over_http = await qclient.post("/api/quiz/generate", json=http_body, headers=auth)
    assert over_http.status_code == 422
    assert code == over_http.json()["detail"]["code"]


async def test_bad_answers_over_grpc_are_refused_by_field_and_nothing_is_stored(
    quiz_stub: quiz_pb2_grpc.QuizStub, qclient: httpx.AsyncClient, admin_db: asyncpg.Connection
) -> None:
    _, auth = await register(qclient)
    meta = _bearer(auth)
    quiz = await _generate(qclient, auth, 1)
    qid = quiz["questions"][0]["id"]
    before = await admin_db.fetchval("SELECT count(*) FROM quiz_answers")
    for index in (4, -1):
        status, details, _ = await _refusal(
            quiz_stub.EvaluateAnswer(
                quiz_pb2.EvaluateAnswerRequest(question_id=qid, student_answer_index=index),
                metadata=meta,
            )
        )
        assert status == grpc.StatusCode.INVALID_ARGUMENT, index
        assert "student_answer_index" in details
    status, details, code = await _refusal(
        quiz_stub.EvaluateAnswer(
            quiz_pb2.EvaluateAnswerRequest(question_id="q_nope", student_answer_index=0),
            metadata=meta,
        )
    )
    assert (status, code) == (grpc.StatusCode.NOT_FOUND, "question_not_found")
    assert "question_id" in details
    _, other = await register(qclient)
    status, _, _ = await _refusal(
        quiz_stub.EvaluateAnswer(
            quiz_pb2.EvaluateAnswerRequest(question_id=qid, student_answer_index=0),
            metadata=_bearer(other),
        )
    )
    assert status == grpc.StatusCode.NOT_FOUND, "another user's question is none of yours"
    status, details, _ = await _refusal(
        quiz_stub.ListMisconceptions(quiz_pb2.MisconceptionQuery(state="gone"), metadata=meta)
    )
    assert status == grpc.StatusCode.INVALID_ARGUMENT
    assert "state" in details
    status, _, _ = await _refusal(quiz_stub.GetMastery(quiz_pb2.LearnerMasteryRequest()))
    assert status == grpc.StatusCode.UNAUTHENTICATED
    assert await admin_db.fetchval("SELECT count(*) FROM quiz_answers") == before


# ---- the operator's refit of the learner model ---------------------------------------------

TRUE_PARAMS = BKTParams(prior=0.6, learn=0.25, slip=0.08, guess=0.25, forget=0.02)
FIT_CONCEPT = "European capitals"
"""The concept the scripted model's questions test, so the service's grades use the fit."""


async def _seed_answer_log(
    admin_db: asyncpg.Connection, students: int, answers: int
) -> list[uuid.UUID]:
    """Students who answered one question on ``FIT_CONCEPT`` repeatedly, drawn from
    ``TRUE_PARAMS``; returns their ids."""
    question = {
        "id": "q_fit",
        "text": "Which city is the capital of France?",
        "options": ["Paris", "Lyon", "Nice", "Lille"],
        "correct_option_index": 0,
        "explanation": "Paris is the capital.",
        "concept_tested": FIT_CONCEPT,
    }
    ids: list[uuid.UUID] = []
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    for n, sequence in enumerate(simulate(TRUE_PARAMS, students, answers, seed=7)):
        user = uuid.uuid4()
        ids.append(user)
        await admin_db.execute(
            "INSERT INTO users (id, name, password_hash) VALUES ($1, $2, 'seeded')",
            user,
            f"fit-{user.hex[:12]}",
        )
        await admin_db.execute(
            "INSERT INTO quiz_questions (user_id, id, quiz_id, topic, concept, question) "
            "VALUES ($1, 'q_fit', $2, 'Capitals', $3, $4::jsonb)",
            user,
            uuid.uuid4(),
            FIT_CONCEPT,
            json.dumps(question),
        )
        await admin_db.executemany(
            "INSERT INTO quiz_answers (id, user_id, question_id, request_id, topic, concept, "
            "answer, outcome, answered_at) VALUES ($1, $2, 'q_fit', $1, 'Capitals', $3, "
            "'null', $4, $5)",
            [
                (
                    uuid.uuid4(),
                    user,
                    FIT_CONCEPT,
                    "correct" if right else "wrong",
                    start + dt.timedelta(days=n, minutes=t),
                )
                for t, right in enumerate(sequence)
            ],
        )
    return ids


async def test_the_operator_fit_writes_parameters_the_service_then_grades_with(
    qclient: httpx.AsyncClient,
    admin_db: asyncpg.Connection,
    quiz_stack: QuizStack,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = quiz_stack.env
    seeded = await _seed_answer_log(admin_db, students=60, answers=12)
    try:
        # A role that row-level security binds cannot read the whole log: refused by name.
        with pytest.raises(FitRefusedError, match="DATABASE_URL"):
            await fit_learner_params(env.app_dsn)
        dry = await asyncio.to_thread(fit_main, ["--database-url", env.admin_dsn, "--dry-run"])
        assert dry == 0
        assert "would write" in capsys.readouterr().out
        assert await admin_db.fetchval("SELECT count(*) FROM learner_params") == 0

        status = await asyncio.to_thread(fit_main, ["--database-url", env.admin_dsn])
        printed = capsys.readouterr().out
        assert status == 0, printed
        assert concept_key(FIT_CONCEPT) in printed
        row = await admin_db.fetchrow(
            "SELECT prior, learn, slip, guess, forget, answers FROM learner_params "
            "WHERE concept_key = $1",
            concept_key(FIT_CONCEPT),
        )
        assert row is not None
        assert row["answers"] >= 60 * 12
        fitted = BKTParams(**{k: row[k] for k in ("prior", "learn", "slip", "guess", "forget")})
        # Recovered near the generating parameters, far from the defaults it started from.
        assert abs(fitted.prior - TRUE_PARAMS.prior) < 0.15
        assert abs(fitted.slip - TRUE_PARAMS.slip) < 0.08
        assert abs(fitted.guess - TRUE_PARAMS.guess) < 0.12
        assert abs(fitted.prior - DEFAULT_BKT_PARAMS.prior) > 0.15
        assert (
            await admin_db.fetchval("SELECT count(*) FROM learner_params WHERE concept_key = '*'")
            == 1
        )

        # The service grades the next answer with the fitted parameters, no restart.
        _, auth = await register(qclient)
        question = (await _generate(qclient, auth, 1))["questions"][0]
        assert question["concept_tested"] == FIT_CONCEPT
        right = next(i for i, o in enumerate(question["options"]) if o in {c[2] for c in CAPITALS})
        graded = await qclient.post(
            "/api/quiz/evaluate",
            json={"question_id": question["id"], "student_answer_index": right},
            headers=auth,
        )
        assert graded.json()["is_correct"] is True
        mastery = (await qclient.get("/api/learner/mastery", headers=auth)).json()
        p_mastery = mastery["concepts"][0]["p_mastery"]
        assert p_mastery == pytest.approx(update_mastery(fitted.prior, True, fitted))
        with_defaults = update_mastery(DEFAULT_BKT_PARAMS.prior, True, DEFAULT_BKT_PARAMS)
        assert abs(p_mastery - with_defaults) > 0.05
    finally:
        # learner_params is shared by every user of the session's database.
        await admin_db.execute("DELETE FROM learner_params")
        await admin_db.execute("DELETE FROM users WHERE id = ANY($1::uuid[])", seeded)


# ---- stored questions asked again near the student's level (Elo) ---------------------------


async def _store_question(
    admin_db: asyncpg.Connection, user: str, n: int, text: str, rating: float, age: dt.timedelta
) -> None:
    question = {
        "id": f"q_bank_{n}",
        "text": text,
        "options": [f"{text} A", f"{text} B", f"{text} C", f"{text} D"],
        "correct_option_index": 0,
        "explanation": "Option A is right.",
        "concept_tested": "banked facts",
    }
    await admin_db.execute(
        "INSERT INTO quiz_questions (user_id, id, quiz_id, topic, concept, question, "
        "item_rating, item_answers, created_at) VALUES ($1, $2, $3, 'Bank', 'banked facts', "
        "$4::jsonb, $5, 10, now() - $6::interval)",
        uuid.UUID(user),
        question["id"],
        uuid.uuid4(),
        json.dumps(question),
        rating,
        age,
    )


async def test_stored_questions_near_the_students_level_are_asked_again_before_writing_new(
    qclient: httpx.AsyncClient, admin_db: asyncpg.Connection, quiz_stack: QuizStack
) -> None:
    user, auth = await register(qclient)
    # 50 questions seen in the last hour (never repeated), and six older ones whose ratings
    # put a new student's expected success at 0.95, 0.82, 0.70, 0.50, 0.27 and 0.05.
    for n in range(50):
        await _store_question(admin_db, user, n, f"Recent fact {n}?", 0.0, dt.timedelta(hours=1))
    ratings = [-3.0, -1.5, -0.85, 0.0, 1.0, 3.0]
    for n, rating in enumerate(ratings, start=100):
        await _store_question(admin_db, user, n, f"Older fact {n}?", rating, dt.timedelta(days=30))

    quiz = await qclient.post(
        "/api/quiz/generate", json={"topic": "Bank", "num_questions": 2}, headers=auth
    )
    assert quiz.status_code == 200, quiz.text
    texts = [q["text"] for q in quiz.json()["questions"]]
    assert texts == ["Older fact 102?", "Older fact 101?"], "nearest 0.70 first, within 0.15"
    assert [q["difficulty"] for q in quiz.json()["questions"]] == ["easy", "easy"]
    assert not quiz_stack.model.chat_requests, "no question had to be written"

    # Nothing else stored is near enough: the model writes the next quiz.
    again = await qclient.post(
        "/api/quiz/generate", json={"topic": "Bank", "num_questions": 2}, headers=auth
    )
    assert again.status_code == 200, again.text
    assert not {q["text"] for q in again.json()["questions"]} & {
        f"Older fact {n}?" for n in range(100, 106)
    }
    assert quiz_stack.model.chat_requests
