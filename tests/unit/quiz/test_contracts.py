"""The quiz contracts: consistent questions, answers hidden from students, bounded requests."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from exammentor.contracts.quiz import (
    MAX_QUESTIONS,
    MIN_QUESTIONS,
    AnalyzePerformanceRequest,
    EvaluateAnswerRequest,
    GenerateQuizRequest,
    Question,
    Quiz,
)
from exammentor.validation import validation_reason
from tests.unit.quiz.factories import blank_question, choice_question

ANSWER_FIELDS = {"correct_option_index", "explanation", "accepted_answers"}


def reason(model: type[Any], body: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(body)
    return validation_reason(caught.value)


def test_the_student_view_has_no_answer() -> None:
    quiz = Quiz(
        topic="Physics", questions=[choice_question(), blank_question()], time_estimate_minutes=4
    )
    view = quiz.student_view().model_dump()
    for question in view["questions"]:
        assert not ANSWER_FIELDS & set(question)
    assert [q["id"] for q in view["questions"]] == ["q1", "b1"]
    assert view["questions"][0]["options"] == choice_question().options


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"correct_option_index": 4}, "correct_option_index must be in 0..3"),
        ({"options": ["a", "b", "c"]}, "has 4 options, not 3"),
        ({"question_type": "true_false"}, "options of a true_false question"),
        ({"explanation": "  "}, "explanation: must not be empty"),
        ({"correct_option_index": -1}, "correct_option_index: Input should be greater"),
    ],
)
def test_an_inconsistent_question_is_refused(changes: dict[str, Any], expected: str) -> None:
    body = choice_question().model_dump() | changes
    assert expected in reason(Question, body)


def test_a_blank_has_answers_and_no_options() -> None:
    body = blank_question().model_dump()
    assert "accepted_answers" in reason(Question, body | {"accepted_answers": []})
    assert "no options" in reason(Question, body | {"options": ["watt"]})


def test_generation_defaults_to_adaptive_difficulty() -> None:
    request = GenerateQuizRequest(topic=" Optics ")
    assert request.difficulty == "adaptive"
    assert request.topic == "Optics"
    assert request.num_questions == 5


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {"topic": "x", "num_questions": MIN_QUESTIONS - 1},
            f"num_questions: Input should be greater than or equal to {MIN_QUESTIONS}",
        ),
        (
            {"topic": "x", "num_questions": MAX_QUESTIONS + 1},
            f"num_questions: Input should be less than or equal to {MAX_QUESTIONS}",
        ),
        ({"topic": "x", "difficulty": "expert"}, "difficulty: Input should be 'easy'"),
        ({"topic": "   "}, "topic: must not be empty"),
        ({"topic": "bad\x00"}, "topic: text contains NUL"),
    ],
)
def test_bad_generation_requests_name_the_field(body: dict[str, Any], field: str) -> None:
    assert field in reason(GenerateQuizRequest, body)


def test_an_answer_index_is_never_negative_or_past_the_options() -> None:
    body = {
        "question": "Which is a vector?",
        "options": ["speed", "velocity", "mass", "time"],
        "correct_option_index": 1,
    }
    assert "student_answer_index: Input should be greater than or equal to 0" in reason(
        EvaluateAnswerRequest, body | {"student_answer_index": -1}
    )
    assert "student_answer_index must be in 0..3" in reason(
        EvaluateAnswerRequest, body | {"student_answer_index": 4}
    )
    assert "student_answer_index: Input should be a valid integer" in reason(
        EvaluateAnswerRequest, body | {"student_answer_index": "1"}
    )
    ok = EvaluateAnswerRequest.model_validate(body | {"student_answer_index": 3})
    assert ok.student_answer_index == 3


def test_a_stored_question_id_needs_no_question_fields() -> None:
    request = EvaluateAnswerRequest(question_id="q_1", student_answer_index=9)
    # Range is checked against the stored question by the grader, not here.
    assert request.student_answer_index == 9
    assert "question: give the question text or a question_id" in reason(
        EvaluateAnswerRequest, {"student_answer_index": 0}
    )


def test_analysis_needs_answers() -> None:
    assert "quiz_answers: List should have at least 1 item" in reason(
        AnalyzePerformanceRequest, {"quiz_answers": [], "topic": "Optics"}
    )
