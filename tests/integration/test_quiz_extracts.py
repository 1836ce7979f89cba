"""Questions built from source text, end to end (gateway -> Kafka -> quiz -> Postgres ->
gateway), with a scripted model that writes what the embedded model wrote: questions whose
options repeat and whose answer is not an option.

The quiz builds the missing questions from the request's context or lesson, labels them
``source: extract``, keeps their answers hidden until graded, grades them in code, and refuses
with ``quiz_unavailable`` only when there is no source text, saying so.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from grpc import aio

from exammentor._proto import quiz_pb2, quiz_pb2_grpc
from exammentor.contracts.quiz import QUIZ_UNAVAILABLE, Question
from exammentor.contracts.tutor import MATERIAL_UNKNOWN
from services.quiz.domain import check_question, normalised
from services.quiz.domain.validation import QuestionDraft
from tests.conftest import SessionEnv
from tests.fakes.scripted_openai import Content, Reply, ScriptedOpenAI
from tests.integration.conftest import ScriptedStack, register, start_stack

pytestmark = pytest.mark.integration

MATERIAL = """Cell organelles.
The mitochondrion is the powerhouse of the cell. Ribosomes make proteins from amino acids.
The nucleus holds the genetic material of the cell.
Chloroplasts carry out photosynthesis in plant cells.
The cell membrane controls what enters and leaves the cell.
Lysosomes contain digestive enzymes that break down waste.
The Golgi apparatus packages proteins for transport.
"""

# What SmolLM2-135M answered to the quiz prompt on the default stack (issue 14): duplicate
# options and an answer that is not one of them.
EMBEDDED_LIKE = {
    "question": "What is the cell's role in the human body?",
    "options": ["cell", "organism", "organism", "organism"],
    "answer": "Cell is the smallest unit of life.",
    "why": "Cell is the smallest unit of life.",
    "concept": "Cell is the smallest unit of life.",
}
VALID = {
    "question": "Which organelle makes ATP?",
    "options": ["mitochondrion", "ribosome", "nucleus", "vacuole"],
    "answer": "mitochondrion",
    "why": "Cellular respiration in the mitochondrion makes ATP.",
    "concept": "organelles",
}


def _asked(body: dict[str, Any]) -> int:
    match = re.search(r"Questions: (\d+)", str(body["messages"][-1]["content"]))
    return int(match.group(1)) if match else 1


def invalid_quiz(body: dict[str, Any]) -> Reply:
    """Every quiz answer unusable; other prompts (feedback) well formed."""
    system = str(body["messages"][0]["content"])
    if system.startswith("Write multiple-choice quiz questions"):
        return Content(json.dumps({f"q{k}": EMBEDDED_LIKE for k in range(1, _asked(body) + 1)}))
    return Content(
        json.dumps({"feedback": "Read the sentence again.", "hint": "Look for the key term in it."})
    )


def one_valid_then_invalid(body: dict[str, Any]) -> Reply:
    """One usable question among unusable ones."""
    system = str(body["messages"][0]["content"])
    if system.startswith("Write multiple-choice quiz questions"):
        items = {f"q{k}": EMBEDDED_LIKE for k in range(1, _asked(body) + 1)}
        items["q1"] = VALID
        return Content(json.dumps(items))
    return invalid_quiz(body)


ExtractStack = ScriptedStack
"""This module's stack: :class:`~tests.integration.conftest.ScriptedStack`."""


@pytest.fixture(scope="module")
async def extract_stack(test_env: SessionEnv) -> AsyncIterator[ExtractStack]:
    async with start_stack(
        test_env, ["quiz"], model=invalid_quiz, gateway={"request_timeout_s": 60}
    ) as stack:
        yield ExtractStack(stack)


@pytest.fixture
async def xclient(extract_stack: ExtractStack) -> AsyncIterator[httpx.AsyncClient]:
    extract_stack.model.reset()
    extract_stack.model.set_default(invalid_quiz)
    async with httpx.AsyncClient(base_url=extract_stack.stack.base_url, timeout=120) as http:
        yield http


async def _stored(admin_db: asyncpg.Connection, user_id: str) -> dict[str, Question]:
    rows = await admin_db.fetch(
        "SELECT id, question FROM quiz_questions WHERE user_id = $1::uuid", user_id
    )
    return {
        r["id"]: Question.model_validate(
            json.loads(r["question"]) if isinstance(r["question"], str) else r["question"]
        )
        for r in rows
    }


def _assert_deliverable(question: Question) -> None:
    options = [normalised(o) for o in question.options]
    assert all(options)
    assert len(set(options)) == len(options)
    assert question.correct_option_index is not None
    assert 0 <= question.correct_option_index < len(options)
    again, _, reasons = check_question(
        QuestionDraft(
            text=question.text,
            question_type=question.question_type,
            options=question.options,
            answer=question.correct_option_index,
            explanation=question.explanation,
            concept=question.concept_tested,
        ),
        topic="Cell biology",
        difficulty="easy",
    )
    assert (reasons, again is not None) == ([], True)


def _quiz_calls(model: ScriptedOpenAI) -> int:
    return sum(
        str(r.messages[0]["content"]).startswith("Write multiple-choice")
        for r in model.chat_requests
    )


@pytest.mark.parametrize("field", ["context", "lesson"])
async def test_invalid_model_output_gives_extracts_from_the_source_text(
    extract_stack: ExtractStack,
    xclient: httpx.AsyncClient,
    admin_db: asyncpg.Connection,
    field: str,
) -> None:
    user_id, auth = await register(xclient)
    reply = await xclient.post(
        "/api/quiz/generate",
        json={"topic": "Cell biology", "num_questions": 5, "difficulty": "easy", field: MATERIAL},
        headers=auth,
    )
    assert reply.status_code == 200, reply.text
    quiz = reply.json()
    assert len(quiz["questions"]) == 5
    assert quiz["shortfall_reason"] == ""
    # With source text the model is asked once: no repair call, no second round.
    assert _quiz_calls(extract_stack.model) == 1
    for question in quiz["questions"]:
        assert question["source"] == "extract"
        assert question["extracted_from"] == field
        assert "correct_option_index" not in question
        assert "explanation" not in question
    # Stored with their answers; every key sits in (or follows from) its source sentence.
    stored = await _stored(admin_db, user_id)
    material = normalised(MATERIAL)
    for view in quiz["questions"]:
        question = stored[view["id"]]
        _assert_deliverable(question)
        sentence = question.explanation.split(": ", 1)[1]
        assert normalised(sentence) in material
        if question.question_type == "multiple_choice":
            key = question.options[question.correct_option_index or 0]
            assert f" {normalised(key)} " in f" {normalised(sentence)} "


async def test_an_extract_is_graded_in_code_and_its_answer_shown_only_then(
    xclient: httpx.AsyncClient, admin_db: asyncpg.Connection
) -> None:
    user_id, auth = await register(xclient)
    reply = await xclient.post(
        "/api/quiz/generate",
        json={"topic": "Cell biology", "num_questions": 3, "context": MATERIAL},
        headers=auth,
    )
    assert reply.status_code == 200, reply.text
    view = reply.json()["questions"][0]
    question = (await _stored(admin_db, user_id))[view["id"]]
    right = question.correct_option_index
    assert right is not None
    wrong = (right + 1) % len(question.options)
    for index, verdict in ((wrong, False), (right, True)):
        graded = await xclient.post(
            "/api/quiz/evaluate",
            json={"question_id": view["id"], "student_answer_index": index},
            headers=auth,
        )
        assert graded.status_code == 200, graded.text
        body = graded.json()
        assert body["is_correct"] is verdict
        assert body["correct_option_index"] == right
        assert body["explanation"] == question.explanation
    outcomes = await admin_db.fetch(
        "SELECT outcome FROM quiz_answers WHERE user_id = $1::uuid ORDER BY answered_at",
        user_id,
    )
    assert [r["outcome"] for r in outcomes] == ["wrong", "correct"]


async def test_the_models_valid_questions_come_first_and_extracts_fill_the_rest(
    extract_stack: ExtractStack, xclient: httpx.AsyncClient
) -> None:
    extract_stack.model.set_default(one_valid_then_invalid)
    _, auth = await register(xclient)
    reply = await xclient.post(
        "/api/quiz/generate",
        json={"topic": "Cell biology", "num_questions": 4, "context": MATERIAL},
        headers=auth,
    )
    assert reply.status_code == 200, reply.text
    questions = reply.json()["questions"]
    assert [q["source"] for q in questions] == ["model", "extract", "extract", "extract"]
    assert questions[0]["text"] == VALID["question"]
    assert questions[0]["extracted_from"] is None


async def test_without_source_text_the_quiz_is_unavailable_and_says_why(
    extract_stack: ExtractStack, xclient: httpx.AsyncClient, admin_db: asyncpg.Connection
) -> None:
    user_id, auth = await register(xclient)
    reply = await xclient.post(
        "/api/quiz/generate",
        json={"topic": "Cell biology", "num_questions": 3, "difficulty": "easy"},
        headers=auth,
    )
    assert reply.status_code == 422, reply.text
    detail = reply.json()["detail"]
    assert detail["code"] == QUIZ_UNAVAILABLE.code
    assert "0 of 3 questions from the model passed the check" in detail["message"]
    assert "no source text to build questions from" in detail["message"]
    # The model was asked in every round (they differ in sampling), and nothing was stored.
    quiz_calls = [
        r
        for r in extract_stack.model.chat_requests
        if str(r.messages[0]["content"]).startswith("Write multiple-choice")
    ]
    assert len({json.dumps(r.body.get("seed")) for r in quiz_calls}) > 1
    assert await _stored(admin_db, user_id) == {}


async def test_source_text_with_nothing_to_ask_about_says_so(
    xclient: httpx.AsyncClient,
) -> None:
    _, auth = await register(xclient)
    reply = await xclient.post(
        "/api/quiz/generate",
        json={
            "topic": "Cell biology",
            "num_questions": 3,
            "lesson": "ribosomes ribosomes ribosomes ribosomes ribosomes ribosomes ribosomes",
        },
        headers=auth,
    )
    assert reply.status_code == 422, reply.text
    message = reply.json()["detail"]["message"]
    assert "built from the source text (lesson)" in message


# The quality bench's "Cell organelles" context: "release" (it ends like an enzyme, -ase) was
# offered as an option beside "water" and "dioxide".
ORGANELLE_FUNCTIONS = (
    "Mitochondria release energy from food by cellular respiration and make ATP. "
    "Chloroplasts are found in plant cells and carry out photosynthesis using chlorophyll. "
    "Ribosomes make proteins by joining amino acids. The Golgi apparatus packs proteins into "
    "vesicles. Lysosomes hold digestive enzymes that break down worn-out parts of the cell. "
    "The nucleus holds the DNA and controls the cell."
)
SHORT_CONTEXT = (
    "Profit is selling price minus cost price, and loss is cost price minus selling price. "
    "Profit percentage is profit divided by cost price, times one hundred."
)


async def test_a_quiz_with_fewer_questions_than_asked_says_so(
    extract_stack: ExtractStack, xclient: httpx.AsyncClient
) -> None:
    _, auth = await register(xclient)
    reply = await xclient.post(
        "/api/quiz/generate",
        json={"topic": "Profit and loss", "num_questions": 5, "context": SHORT_CONTEXT},
        headers=auth,
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert 0 < len(body["questions"]) < 5
    assert body["requested_questions"] == 5
    reason = body["shortfall_reason"]
    assert "0 of 5 questions from the model passed the check" in reason
    assert f"{len(body['questions'])} more built from the source text (context)" in reason
    # The gRPC answer carries the same declared fields (another student: one who saw these
    # questions is not asked them again).
    _, auth = await register(xclient)
    async with aio.insecure_channel(f"127.0.0.1:{extract_stack.stack.gateway.grpc_port}") as ch:
        stub = quiz_pb2_grpc.QuizStub(ch)
        answer = await stub.GenerateQuiz(
            quiz_pb2.GenerateQuizRequest(
                topic="Profit and loss", num_questions=5, context=SHORT_CONTEXT
            ),
            metadata=(("authorization", auth["Authorization"]),),
        )
    assert answer.requested_questions == 5
    assert 0 < len(answer.questions) < 5
    assert "more built from the source text (context)" in answer.shortfall_reason
    # A quiz with all its questions says nothing is missing.
    full = await xclient.post(
        "/api/quiz/generate",
        json={"topic": "Cell biology", "num_questions": 3, "context": MATERIAL},
        headers=auth,
    )
    assert full.status_code == 200, full.text
    assert (len(full.json()["questions"]), full.json()["shortfall_reason"]) == (3, "")


async def test_extract_options_are_nouns_of_the_text_never_a_verb(
    xclient: httpx.AsyncClient,
) -> None:
    _, auth = await register(xclient)
    reply = await xclient.post(
        "/api/quiz/generate",
        json={"topic": "Cell organelles", "num_questions": 5, "context": ORGANELLE_FUNCTIONS},
        headers=auth,
    )
    assert reply.status_code == 200, reply.text
    questions = reply.json()["questions"]
    assert len(questions) >= 3
    assert {q["source"] for q in questions} == {"extract"}
    options = {
        normalised(o) for q in questions if q["options"] != ["True", "False"] for o in q["options"]
    }
    assert options
    verbs = {"release", "make", "hold", "holds", "controls", "packs", "break"}
    assert not {word for option in options for word in option.split()} & verbs
    # Each option is a whole term as the text writes it ("Golgi apparatus", not "apparatus").
    text = f" {normalised(ORGANELLE_FUNCTIONS)} "
    assert all(f" {option} " in text for option in options), options
    assert not options & {"apparatus", "golgi", "respiration"}


PAGES = {
    1: "Cell organelles. The nucleus holds the genetic material of the cell. "
    "Ribosomes make proteins from amino acids.",
    2: "Chloroplasts carry out photosynthesis in plant cells. "
    "Lysosomes contain digestive enzymes that break down waste.",
    3: "The mitochondrion is the powerhouse of the cell. "
    "The Golgi apparatus packages proteins for transport.",
}


async def _material(admin_db: asyncpg.Connection, user_id: str) -> uuid.UUID:
    """A stored 3-page material of the user's, as the tutor stores an upload."""
    material_id = uuid.uuid4()
    await admin_db.execute(
        "INSERT INTO tutor_materials (id, user_id, request_id, title, kind, page_count, chars) "
        "VALUES ($1, $2::uuid, $3, 'organelles.pdf', 'pdf', 3, 300)",
        material_id,
        user_id,
        uuid.uuid4(),
    )
    await admin_db.executemany(
        "INSERT INTO tutor_passages (material_id, user_id, position, page, text) "
        "VALUES ($1, $2::uuid, $3, $4, $5)",
        [(material_id, user_id, page - 1, page, text) for page, text in PAGES.items()],
    )
    return material_id


async def test_extracts_from_stored_material_name_their_material_and_page(
    xclient: httpx.AsyncClient, admin_db: asyncpg.Connection
) -> None:
    user_id, auth = await register(xclient)
    material_id = await _material(admin_db, user_id)
    reply = await xclient.post(
        "/api/quiz/generate",
        json={"topic": "Cell biology", "num_questions": 4, "material_ids": [str(material_id)]},
        headers=auth,
    )
    assert reply.status_code == 200, reply.text
    questions = reply.json()["questions"]
    assert len(questions) == 4
    stored = await _stored(admin_db, user_id)
    for view in questions:
        assert (view["source"], view["extracted_from"]) == ("extract", "material")
        assert view["material_id"] == str(material_id)
        question = stored[view["id"]]
        _assert_deliverable(question)
        # The sentence is on the page the question names.
        sentence = question.explanation.split(": ", 1)[1]
        assert normalised(sentence) in normalised(PAGES[view["page"]])


async def test_another_users_material_is_refused(
    xclient: httpx.AsyncClient, admin_db: asyncpg.Connection
) -> None:
    owner, _ = await register(xclient)
    material_id = await _material(admin_db, owner)
    _, auth = await register(xclient)
    reply = await xclient.post(
        "/api/quiz/generate",
        json={"topic": "Cell biology", "num_questions": 3, "material_ids": [str(material_id)]},
        headers=auth,
    )
    assert reply.status_code == 422, reply.text
    detail = reply.json()["detail"]
    assert detail["code"] == MATERIAL_UNKNOWN.code
    assert "material_ids" in detail["message"]


async def test_grpc_carries_where_an_extract_came_from(
    extract_stack: ExtractStack, xclient: httpx.AsyncClient, admin_db: asyncpg.Connection
) -> None:
    user_id, auth = await register(xclient)
    material_id = await _material(admin_db, user_id)
    meta = (("authorization", auth["Authorization"]),)
    port = extract_stack.stack.gateway.grpc_port
    async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        generated = await quiz_pb2_grpc.QuizStub(channel).GenerateQuiz(
            quiz_pb2.GenerateQuizRequest(
                topic="Cell biology", num_questions=3, material_ids=[str(material_id)]
            ),
            metadata=meta,
        )
    assert len(generated.questions) == 3
    for question in generated.questions:
        assert (question.source, question.extracted_from) == ("extract", "material")
        assert question.material_id == str(material_id)
        assert question.page in PAGES
        assert not hasattr(question, "correct_option_index")
