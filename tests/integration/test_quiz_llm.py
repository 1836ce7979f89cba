"""The quiz end to end with the embedded model (SmolLM2-135M), on both transports: generate,
answer, grade, analyse, and the ``learner.mastery_changed`` event read back from Kafka.

The model is weak, so what is asserted is what the code guarantees whatever it writes:
questions that passed the checks (or a shortfall that says why), no answer before answering,
a verdict computed from the stored question, figures recomputed from the answer log.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from grpc import aio

from exammentor._proto import quiz_pb2, quiz_pb2_grpc
from exammentor.contracts.envelope import EventEnvelope
from exammentor.contracts.events import MasteryChangedV1
from exammentor.contracts.kafka_topics import event_topic
from services.quiz.domain import DEFAULT_BKT_PARAMS
from tests.conftest import SessionEnv
from tests.integration.conftest import Stack, register

pytestmark = [pytest.mark.integration, pytest.mark.llm]

TOPIC = "Capital cities"
MATERIAL = (
    "Paris is the capital of France. Rome is the capital of Italy. Madrid is the capital of "
    "Spain. Berlin is the capital of Germany."
)
"""At temperature 0 the embedded model writes one valid question of two for this material
(its other one repeats an option); on many topics it writes none (see docs/quiz.md)."""


def _check_question(question: dict[str, Any]) -> None:
    assert question["id"]
    assert question["text"].strip()
    assert question["concept_tested"].strip()
    assert "correct_option_index" not in question
    assert "explanation" not in question
    if question.get("question_type", "multiple_choice") == "multiple_choice":
        assert len(question["options"]) == 4
        assert len({o.strip().lower() for o in question["options"]}) == 4


async def _mastery_events(
    env: SessionEnv, users: set[str], timeout_s: float = 60
) -> dict[str, list[MasteryChangedV1]]:
    """The ``learner.mastery_changed`` events of ``users`` on the session's event topic."""
    consumer = AIOKafkaConsumer(
        event_topic(env.topic_prefix, "learner"),
        bootstrap_servers=env.servers.kafka_bootstrap,
        group_id=f"quiz-llm-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    found: dict[str, list[MasteryChangedV1]] = {u: [] for u in users}
    await consumer.start()
    try:
        async with asyncio.timeout(timeout_s):
            while not all(found.values()):
                batch = await consumer.getmany(timeout_ms=1000)
                for records in batch.values():
                    for record in records:
                        assert record.value is not None
                        envelope = EventEnvelope.model_validate_json(record.value)
                        user = str(envelope.user_id)
                        if envelope.type == MasteryChangedV1.TYPE and user in found:
                            assert envelope.version == MasteryChangedV1.VERSION
                            found[user].append(MasteryChangedV1.model_validate(envelope.payload))
    finally:
        await consumer.stop()
    return found


async def test_generate_answer_grade_and_analyse_with_the_embedded_model_on_both_transports(
    stack: Stack, client: httpx.AsyncClient, test_env: SessionEnv
) -> None:
    # ---- HTTP ----
    http_user, auth = await register(client)
    reply = await client.post(
        "/api/quiz/generate",
        json={"topic": TOPIC, "context": MATERIAL, "num_questions": 2, "difficulty": "easy"},
        headers=auth,
    )
    assert reply.status_code == 200, reply.text
    quiz = reply.json()
    assert 1 <= len(quiz["questions"]) <= 2
    if len(quiz["questions"]) < 2:
        assert quiz["shortfall_reason"], "a short quiz says why"
    for question in quiz["questions"]:
        _check_question(question)
    question = quiz["questions"][0]
    graded = await client.post(
        "/api/quiz/evaluate",
        json={"question_id": question["id"], "student_answer_index": 0},
        headers=auth,
    )
    assert graded.status_code == 200, graded.text
    verdict = graded.json()
    assert verdict["is_correct"] == (verdict["correct_option_index"] == 0)
    assert verdict["outcome"] == ("correct" if verdict["is_correct"] else "wrong")
    assert verdict["feedback"].strip()
    analysis = await client.post(
        "/api/analyze/performance",
        json={
            "topic": TOPIC,
            "quiz_answers": [{"question_id": question["id"], "is_correct": True}],
        },
        headers=auth,
    )
    assert analysis.status_code == 200, analysis.text
    figures = analysis.json()
    assert figures["answered"] == 1
    assert figures["correct"] == int(verdict["is_correct"]), "recomputed, not the claim"
    assert figures["overall_score"] == (100 if verdict["is_correct"] else 0)
    assert figures["summary"].strip()

    # ---- gRPC ----
    grpc_user, grpc_auth = await register(client)
    meta = (("authorization", grpc_auth["Authorization"]),)
    async with aio.insecure_channel(f"127.0.0.1:{stack.gateway.grpc_port}") as channel:
        stub = quiz_pb2_grpc.QuizStub(channel)
        generated = await stub.GenerateQuiz(
            quiz_pb2.GenerateQuizRequest(
                topic=TOPIC, context=MATERIAL, num_questions=2, difficulty="easy"
            ),
            metadata=meta,
        )
        assert 1 <= len(generated.questions) <= 2
        first = generated.questions[0]
        assert first.id
        assert len(first.options) == (2 if first.question_type == "true_false" else 4)
        answer = await stub.EvaluateAnswer(
            quiz_pb2.EvaluateAnswerRequest(question_id=first.id, student_answer_index=1),
            metadata=meta,
        )
        assert answer.is_correct == (answer.correct_option_index == 1)
        performance = await stub.AnalyzePerformance(
            quiz_pb2.AnalyzePerformanceRequest(
                topic=TOPIC,
                quiz_answers=[quiz_pb2.QuizAnswerItem(question_id=first.id, is_correct=True)],
            ),
            metadata=meta,
        )
        assert (performance.answered, performance.correct) == (1, int(answer.is_correct))
        mastery = await stub.GetMastery(quiz_pb2.LearnerMasteryRequest(), metadata=meta)
        assert len(mastery.concepts) == 1
        assert len(mastery.concepts[0].evidence) == 1

    # ---- events ----
    events = await _mastery_events(test_env, {http_user, grpc_user})
    http_event = events[http_user][0]
    assert http_event.concept == question["concept_tested"]
    assert http_event.attempts == 1
    before = http_event.p_mastery_before
    prior = DEFAULT_BKT_PARAMS.prior if before is None else before  # no fit in this session
    assert (http_event.p_mastery > prior) == verdict["is_correct"]
    grpc_event = events[grpc_user][0]
    assert grpc_event.concept == first.concept_tested
    assert grpc_event.p_mastery == pytest.approx(mastery.concepts[0].p_mastery)


ORGANELLE_FUNCTIONS = (
    "Mitochondria release energy from food by cellular respiration and make ATP. "
    "Chloroplasts are found in plant cells and carry out photosynthesis using chlorophyll. "
    "Ribosomes make proteins by joining amino acids. The Golgi apparatus packs proteins into "
    "vesicles. Lysosomes hold digestive enzymes that break down worn-out parts of the cell. "
    "The nucleus holds the DNA and controls the cell."
)
"""The quality bench's "Cell organelles" context, where an extract offered "release"."""


async def test_a_quiz_on_the_embedded_model_has_five_questions_whose_extract_options_are_nouns(
    client: httpx.AsyncClient,
) -> None:
    _, auth = await register(client)
    reply = await client.post(
        "/api/quiz/generate",
        json={"topic": "Cell organelles", "context": ORGANELLE_FUNCTIONS, "num_questions": 5},
        headers=auth,
    )
    assert reply.status_code == 200, reply.text
    quiz = reply.json()
    # What the model could not write is built from the context: the quiz is whole.
    assert len(quiz["questions"]) == 5, quiz["shortfall_reason"]
    assert (quiz["requested_questions"], quiz["shortfall_reason"]) == (5, "")
    for question in quiz["questions"]:
        _check_question(question)
        assert question["source"] in ("model", "extract")
    extract_options = {
        o.lower()
        for q in quiz["questions"]
        if q["source"] == "extract" and q.get("question_type") != "true_false"
        for o in q["options"]
    }
    assert "release" not in extract_options
