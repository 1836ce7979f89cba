"""Checking and repairing model-written questions: broken outputs, repairs, properties."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exammentor.contracts.quiz import MULTIPLE_CHOICE_OPTIONS, TRUE_FALSE_OPTIONS, Question
from services.quiz.domain import (
    BLANK,
    QuestionCheck,
    QuestionDraft,
    check_question,
    check_questions,
    normalised,
    question_id,
)
from services.quiz.prompts import quiz_drafts, quiz_schema
from tests.unit.quiz import broken_outputs


def drafts_of(text: str) -> list[QuestionDraft]:
    data = json.loads(text)
    answer = quiz_schema(len(data)).model_validate(data)
    return quiz_drafts(answer, len(data), "medium")


def check(text: str, requested: int | None = None, **kwargs: object) -> QuestionCheck:
    drafts = drafts_of(text)
    return check_questions(
        drafts,
        requested=requested or len(drafts),
        topic="Science",
        difficulty="medium",
        **kwargs,  # type: ignore[arg-type]
    )


def mc(**overrides: object) -> QuestionDraft:
    fields: dict[str, object] = {
        "text": "Which planet is largest?",
        "options": ["Jupiter", "Mars", "Venus", "Earth"],
        "answer": 0,
        "explanation": "Jupiter has the largest radius and mass.",
        "concept": "planets",
    }
    fields.update(overrides)
    return QuestionDraft.model_validate(fields)


def only(draft: QuestionDraft) -> tuple[Question | None, list[str], list[str]]:
    return check_question(draft, topic="Astronomy", difficulty="easy")


# --- Broken outputs of the embedded model ------------------------------------------------


def test_duplicate_options_leave_too_few_and_are_reported() -> None:
    result = check(broken_outputs.DUPLICATE_OPTIONS)
    assert result.questions == ()
    assert result.short_by == 1
    (problem,) = result.problems()
    assert problem.startswith("q1: options: 2 distinct non-empty options")
    assert "duplicate of 'mitochondria'" in problem


def test_two_correct_answers_are_refused() -> None:
    result = check(broken_outputs.TWO_CORRECT)
    assert result.questions == ()
    assert result.problems() == [
        "q1: answer: 2 options marked correct; exactly one must be correct"
    ]


def test_an_index_out_of_range_is_refused_with_the_range() -> None:
    result = check(broken_outputs.INDEX_OUT_OF_RANGE)
    assert result.problems() == [
        "q1: answer: index 7 is out of range 0..3; copy the correct option's text"
    ]
    question, _, reasons = only(mc(answer=4))
    assert question is None
    assert reasons == ["answer: index 4 is out of range 0..3; copy the correct option's text"]
    assert only(mc(answer=-1))[2] == [
        "answer: index -1 is out of range 0..3; copy the correct option's text"
    ]


def test_empty_fields_are_each_reported() -> None:
    result = check(broken_outputs.EMPTY_FIELDS)
    reasons = result.problems()
    assert "q1: text: empty; write the question" in reasons
    assert "q1: explanation: empty; say why the answer is right" in reasons
    assert "q1: answer: missing; give the correct option" in reasons


def test_the_question_repeated_as_an_option_is_left_out_and_then_too_few_remain() -> None:
    result = check(broken_outputs.QUESTION_AS_OPTION)
    assert result.questions == ()
    assert "the question repeated as an option left out" in result.problems()[0]


def test_the_question_repeated_as_the_answer_is_refused() -> None:
    result = check(broken_outputs.QUESTION_AS_ANSWER)
    assert result.problems() == [
        "q1: answer: the correct option repeats the question; write the answer"
    ]


def test_a_repeated_question_is_refused_and_the_quiz_falls_short() -> None:
    result = check(broken_outputs.ECHOED_EXAMPLE)
    assert len(result.questions) == 1
    assert result.short_by == 1
    assert result.problems() == ["q2: text: repeats q1; ask something different"]


def test_looping_text_is_refused() -> None:
    result = check(broken_outputs.LOOPING)
    assert "q1: text: it repeats itself; ask one clear question" in result.problems()


def test_a_letter_answer_and_option_labels_are_repaired() -> None:
    result = check(broken_outputs.LETTER_ANSWER)
    (question,) = result.questions
    assert question.options == ["Venus", "Mercury", "Earth", "Mars"]
    assert question.correct_option_index == 1
    assert "q1: option labels removed" in result.repairs


def test_one_good_question_among_bad_ones_is_kept() -> None:
    result = check(broken_outputs.ONE_GOOD_TWO_BAD)
    assert [q.text for q in result.questions] == ["What gas do plants take in for photosynthesis?"]
    assert result.short_by == 2
    assert {r.position for r in result.rejections} == {2, 3}


# --- Repairs -----------------------------------------------------------------------------


def test_whitespace_and_quotes_are_tidied() -> None:
    question, repairs, reasons = only(
        mc(
            text='  "Which   planet\n is largest?" ',
            options=[" Jupiter ", "Mars", "Venus", "Earth"],
        )
    )
    assert reasons == []
    assert question is not None
    assert question.text == "Which planet is largest?"
    assert question.options[0] == "Jupiter"
    assert repairs == []


@pytest.mark.parametrize("answer", ["Jupiter", "jupiter.", "A", "(a)", "option A", "0", 0])
def test_the_answer_is_accepted_as_text_letter_or_index(answer: object) -> None:
    question, _, reasons = only(mc(answer=answer))
    assert reasons == []
    assert question is not None
    assert question.correct_option_index == 0


def test_extra_options_are_cut_to_four_keeping_the_correct_one() -> None:
    question, repairs, _ = only(
        mc(options=["Mars", "Venus", "Earth", "Mercury", "Jupiter"], answer="Jupiter")
    )
    assert question is not None
    assert question.options == ["Mars", "Venus", "Earth", "Jupiter"]
    assert question.correct_option_index == 3
    assert "5 options cut to 4" in repairs


def test_a_duplicate_among_five_options_is_dropped() -> None:
    question, repairs, _ = only(mc(options=["Jupiter", "Mars", "mars", "Venus", "Earth"]))
    assert question is not None
    assert question.options == ["Jupiter", "Mars", "Venus", "Earth"]
    assert "left out a duplicate of 'mars'" in repairs


def test_missing_concept_and_unknown_difficulty_take_the_request_s() -> None:
    question, repairs, _ = only(mc(concept="", difficulty="super hard"))
    assert question is not None
    assert question.concept_tested == "Astronomy"
    assert question.difficulty == "easy"
    assert "concept missing: the topic used" in repairs


def test_true_false_is_recognised_and_normalised() -> None:
    question, _, reasons = only(
        QuestionDraft(
            text="The Sun is a star.",
            question_type="True/False",
            options=["false", "TRUE"],
            answer="true",
            explanation="The Sun is a G-type main-sequence star.",
            concept="stars",
        )
    )
    assert reasons == []
    assert question is not None
    assert question.question_type == "true_false"
    assert tuple(question.options) == TRUE_FALSE_OPTIONS
    assert question.correct_option_index == 0


def test_an_answer_of_a_superscript_digit_is_refused_not_a_crash() -> None:
    # "²".isdigit() is True but int("²") raises: hypothesis found it; the model can write it.
    _, _, reasons = only(
        QuestionDraft(
            text="What is the square of x written as?",
            question_type="multiple_choice",
            options=["x1", "x2", "x3", "x4"],
            answer="²",
            explanation="A square is a power of two.",
            concept="powers",
        )
    )
    assert reasons == ["answer: '²' is not one of the options; copy one exactly"]


def test_true_false_with_other_options_is_refused() -> None:
    _, _, reasons = only(
        QuestionDraft(
            text="The Sun is a star.",
            question_type="true_false",
            options=["yes", "no"],
            answer="yes",
            explanation="It is.",
            concept="stars",
        )
    )
    assert reasons == ["options: a true/false question has the options True and False only"]


def test_fill_in_the_blank_gets_one_blank_and_its_answers() -> None:
    question, repairs, reasons = only(
        QuestionDraft(
            text="The largest planet is [blank].",
            question_type="fill in the blank",
            answer="Jupiter",
            accepted_answers=["jupiter", "planet Jupiter"],
            explanation="Jupiter is the largest planet.",
            concept="planets",
        )
    )
    assert reasons == []
    assert question is not None
    assert question.text == f"The largest planet is {BLANK}."
    assert question.accepted_answers == ["Jupiter", "planet Jupiter"]
    assert question.options == []
    assert question.correct_option_index is None
    assert f"blank written as {BLANK}" in repairs


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("The largest planet is Jupiter.", "text: no blank; mark the missing word with ___"),
        ("___ is larger than ___.", "text: 2 blanks; a question has exactly one ___"),
        ("Jupiter, the largest planet, is ___.", "text: it already contains the answer 'Jupiter'"),
    ],
)
def test_bad_blanks_are_refused(text: str, reason: str) -> None:
    _, _, reasons = only(
        QuestionDraft(
            text=text,
            question_type="fill_in_the_blank",
            answer="Jupiter",
            explanation="Jupiter is the largest.",
            concept="planets",
        )
    )
    assert reason in reasons


def test_more_questions_than_requested_are_dropped_with_a_note() -> None:
    drafts = [mc(text=f"Which planet is number {i}?") for i in range(4)]
    result = check_questions(drafts, requested=2, topic="Astronomy", difficulty="easy")
    assert len(result.questions) == 2
    assert result.short_by == 0
    assert sum("more questions than the 2 requested" in r for r in result.repairs) == 2


def test_questions_seen_recently_are_not_asked_again() -> None:
    result = check_questions(
        [mc()],
        requested=1,
        topic="Astronomy",
        difficulty="easy",
        seen=["which planet is LARGEST"],
    )
    assert result.questions == ()
    assert result.problems() == ["q1: text: the student saw this question recently; ask another"]


def test_question_ids_are_stable_and_ignore_spelling() -> None:
    assert question_id("Astro", "Which planet?") == question_id("astro", "which  planet")
    assert question_id("Astro", "Which planet?") != question_id("Astro", "Which star?")


# --- Properties --------------------------------------------------------------------------

_texts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=30)
_answers = st.one_of(
    st.none(),
    st.integers(-3, 8),
    _texts,
    st.sampled_from(["A", "b", "A and C", "true", "False"]),
    st.lists(st.integers(0, 5), max_size=3),
)
_drafts = st.builds(
    QuestionDraft,
    text=st.one_of(_texts, st.sampled_from(["What is ___?", "Is water wet?"])),
    question_type=st.sampled_from(
        ["", "multiple_choice", "true_false", "fill_in_the_blank", "mcq", "essay"]
    ),
    options=st.lists(st.one_of(_texts, st.sampled_from(["True", "false", "A) x"])), max_size=6),
    answer=_answers,
    explanation=_texts,
    concept=_texts,
    difficulty=st.sampled_from(["", "easy", "hard", "weird"]),
    accepted_answers=st.lists(_texts, max_size=2),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_drafts, max_size=6), st.integers(1, 5))
def test_whatever_the_model_writes_every_kept_question_is_good(
    drafts: list[QuestionDraft], requested: int
) -> None:
    result = check_questions(drafts, requested=requested, topic="T", difficulty="medium")
    assert len(result.questions) <= requested
    assert len(result.questions) + len(result.rejections) <= len(drafts)
    assert result.short_by == requested - len(result.questions)
    texts = [normalised(q.text) for q in result.questions]
    assert len(set(texts)) == len(texts)
    for question in result.questions:
        assert normalised(question.text)
        assert normalised(question.explanation)
        assert normalised(question.concept_tested)
        if question.question_type == "multiple_choice":
            keys = [normalised(o) for o in question.options]
            assert len(keys) == MULTIPLE_CHOICE_OPTIONS
            assert len(set(keys)) == MULTIPLE_CHOICE_OPTIONS
            assert all(keys)
            assert normalised(question.text) not in keys
        if question.question_type == "fill_in_the_blank":
            assert question.text.count(BLANK) == 1
            assert question.accepted_answers
        else:
            assert question.correct_option_index is not None
            assert 0 <= question.correct_option_index < len(question.options)
    for rejection in result.rejections:
        assert rejection.reasons


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.text(alphabet="abcdefgh ", min_size=1, max_size=8), min_size=4, max_size=4),
    st.integers(0, 3),
)
def test_a_good_draft_survives_with_its_answer(options: list[str], index: int) -> None:
    keys = [normalised(o) for o in options]
    draft = mc(options=options, answer=index, text="Pick the one?")
    question, _, reasons = only(draft)
    if len(set(keys)) == 4 and all(keys):
        assert reasons == []
        assert question is not None
        assert normalised(question.correct_answer) == keys[index]
    else:
        assert question is None
