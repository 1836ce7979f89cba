"""The quiz prompts and how each answer is screened."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from services.quiz.domain import AnsweredQuestion, analyse_answers, grade_answer
from services.quiz.prompts import (
    AnalysisProseAnswer,
    DiagnosisAnswer,
    FeedbackAnswer,
    QuestionItem,
    analysis_messages,
    diagnosis_messages,
    own_feedback,
    quiz_max_tokens,
    quiz_messages,
    quiz_schema,
    screen_analysis,
    screen_diagnosis,
    screen_feedback,
    screen_quiz,
)
from tests.unit.quiz import broken_outputs
from tests.unit.quiz.factories import choice_question

QUESTION = choice_question("q1", correct=1)
WRONG = grade_answer(QUESTION, 0)
RIGHT = grade_answer(QUESTION, 1)


def test_the_quiz_schema_has_one_required_key_per_question_and_no_descriptions() -> None:
    schema = quiz_schema(3).model_json_schema()
    assert schema["required"] == ["q1", "q2", "q3"]
    assert "description" not in schema
    item = schema["$defs"]["QuestionItem"]
    assert item["properties"]["options"]["minItems"] == 4
    assert item["properties"]["options"]["maxItems"] == 4
    assert quiz_max_tokens(3) > quiz_max_tokens(1)


def test_the_prompt_names_the_newest_targets_and_clips_the_material() -> None:
    messages = quiz_messages(
        "Optics",
        count=2,
        difficulty="easy",
        context="lens " * 1000,
        targets=["t1", "t2", "t3", "t4"],
        avoid=["Old question?"],
    )
    last = messages[-1]["content"]
    assert "Test these mistakes the student made: t1; t2; t3" in last
    assert "t4" not in last
    assert "Do not ask: Old question?" in last
    assert len(last) < 1500
    assert messages[0]["content"].endswith("Reply with JSON only.")


def test_a_usable_answer_passes_and_a_mostly_broken_one_goes_back_with_reasons() -> None:
    good = quiz_schema(1).model_validate_json(broken_outputs.LETTER_ANSWER)
    check = screen_quiz(good, count=1, topic="Astronomy", difficulty="easy")
    assert check.questions[0].correct_answer == "Mercury"
    bad = quiz_schema(3).model_validate_json(broken_outputs.ONE_GOOD_TWO_BAD)
    with pytest.raises(ValueError, match=r"q2: options: 1 distinct") as caught:
        screen_quiz(bad, count=3, topic="Biology", difficulty="easy")
    assert "q3: text: empty" in str(caught.value)


def test_half_usable_is_kept_and_says_it_is_short() -> None:
    data = json.loads(broken_outputs.ECHOED_EXAMPLE)
    check = screen_quiz(
        quiz_schema(2).model_validate(data), count=2, topic="Physics", difficulty="easy"
    )
    assert len(check.questions) == 1
    assert check.short_by == 1


def test_feedback_may_not_contradict_the_verdict() -> None:
    with pytest.raises(ValueError, match="was not correct"):
        screen_feedback(
            FeedbackAnswer(
                feedback="Correct! Speed is a vector.", hint="Check the direction it points."
            ),
            WRONG,
        )
    feedback, hint = screen_feedback(
        FeedbackAnswer(
            feedback="Speed has no direction, so it is not a vector.",
            hint="Ask whether the quantity points somewhere.",
        ),
        WRONG,
    )
    assert feedback.startswith("Speed has no direction")
    assert hint.endswith("somewhere.")


def test_looping_feedback_is_refused() -> None:
    with pytest.raises(ValueError, match="repeats itself"):
        screen_feedback(
            FeedbackAnswer(feedback="the the the the the the the the the.", hint="Look again."),
            WRONG,
        )


def test_own_feedback_states_the_answer() -> None:
    feedback, hint = own_feedback(QUESTION, WRONG)
    assert "'velocity'" in feedback
    assert QUESTION.concept_tested in hint
    assert own_feedback(QUESTION, RIGHT)[0].startswith("Correct.")


def redemption(**changes: object) -> QuestionItem:
    fields: dict[str, object] = {
        "question": "Which of these has a direction?",
        "options": ["displacement", "distance", "speed", "mass"],
        "answer": "displacement",
        "why": "Displacement points from start to end.",
        "concept": "anything",
    }
    return QuestionItem.model_validate(fields | changes)


def diagnosis(item: QuestionItem) -> DiagnosisAnswer:
    return DiagnosisAnswer(
        confusion="Thinks speed has a direction.",
        counter_example="A car going round a roundabout keeps its speed but changes velocity.",
        explanation="Velocity is speed with a direction.",
        redemption=item,
    )


def test_a_diagnosis_carries_a_checked_redemption_on_the_same_concept() -> None:
    result = screen_diagnosis(diagnosis(redemption()), QUESTION, "Mechanics")
    assert result.redemption_question.concept_tested == QUESTION.concept_tested
    assert result.redemption_question.correct_answer == "displacement"
    analysis = result.analysis(WRONG)
    assert analysis.wrong_option_chosen == "speed"
    assert "velocity" in diagnosis_messages(QUESTION, WRONG)[-1]["content"]


def test_a_redemption_that_repeats_the_question_or_is_broken_is_sent_back() -> None:
    with pytest.raises(ValueError, match="redemption: text: the student saw this question"):
        screen_diagnosis(diagnosis(redemption(question=QUESTION.text)), QUESTION, "Mechanics")
    with pytest.raises(ValueError, match="redemption: answer:"):
        screen_diagnosis(diagnosis(redemption(answer="velocity")), QUESTION, "Mechanics")


def test_analysis_prose_may_quote_only_computed_numbers() -> None:
    figures = analyse_answers(
        [
            AnsweredQuestion(
                answer_id="a1",
                question=QUESTION,
                answer=1,
                answered_at=dt.datetime(2025, 3, 1, tzinfo=dt.UTC),
                topic="Mechanics",
            )
        ]
    )
    assert "Right: 1 of 1" in analysis_messages(figures)[-1]["content"]
    summary, _ = screen_analysis(
        AnalysisProseAnswer(
            summary="You got 1 of 1 right, a score of 100. Vectors look solid.",
            encouragement="Keep going like this.",
        ),
        figures,
    )
    assert summary.startswith("You got 1 of 1")
    with pytest.raises(ValueError, match="the numbers 7 are not in the results"):
        screen_analysis(
            AnalysisProseAnswer(
                summary="You got 7 right out of 1 question today.",
                encouragement="Keep going, you can do this.",
            ),
            figures,
        )
