"""Mastery per concept and topic with its evidence; the analysis recomputed from the log."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.quiz.domain import (
    DEFAULT_BKT_PARAMS,
    AnsweredQuestion,
    AnswerRecord,
    BKTParams,
    analyse_answers,
    concept_mastery,
    mastery_status,
    performance_analysis,
    topic_mastery,
    trace_mastery,
)
from tests.unit.quiz.factories import blank_question, choice_question

T0 = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)


def record(n: int, concept: str, outcome: str, topic: str = "Mechanics") -> AnswerRecord:
    return AnswerRecord(
        answer_id=f"a{n}",
        question_id=f"q{n}",
        concept=concept,
        topic=topic,
        outcome=outcome,
        answered_at=T0 + dt.timedelta(minutes=n),
    )


def test_a_concept_estimate_is_the_trace_of_its_answers_with_their_ids() -> None:
    log = [
        record(3, "forces", "wrong"),
        record(1, "forces", "correct"),
        record(2, "forces", "skipped"),
        record(4, "Forces", "correct"),
    ]
    (estimate,) = concept_mastery(log)
    assert estimate.evidence == ("a1", "a3", "a4")
    assert estimate.answered == 3
    assert estimate.correct == 2
    expected = trace_mastery([True, None, False, True], DEFAULT_BKT_PARAMS)[-1]
    assert estimate.p_mastery == pytest.approx(expected)


def test_fitted_parameters_are_used_per_concept() -> None:
    easy = BKTParams(prior=0.9, learn=0.5, slip=0.05, guess=0.2, forget=0.0)
    log = [record(1, "forces", "correct"), record(2, "energy", "correct")]
    by_concept = {e.concept: e for e in concept_mastery(log, {"FORCES": easy})}
    assert by_concept["forces"].p_mastery > by_concept["energy"].p_mastery


@given(st.floats(0, 1), st.integers(0, 5))
def test_statuses_follow_the_thresholds(p: float, answered: int) -> None:
    status = mastery_status(p, answered)
    if answered == 0:
        assert status == "pending"
    elif p >= 0.85:
        assert status == "mastered"
    elif p >= 0.5:
        assert status == "learning"
    else:
        assert status == "weak"


def test_a_topic_is_the_mean_of_its_concepts_with_all_their_evidence() -> None:
    log = [
        record(1, "forces", "correct"),
        record(2, "forces", "correct"),
        record(3, "energy", "wrong"),
        record(4, "waves", "correct", topic="Waves"),
        record(5, "sound", "skipped", topic="Sound"),
    ]
    concepts = concept_mastery(log)
    topics = {t.topic: t for t in topic_mastery(concepts)}
    mechanics = topics["Mechanics"]
    means = [c.p_mastery for c in concepts if c.topic == "Mechanics"]
    assert mechanics.score == round(100 * sum(means) / 2, 1)
    assert set(mechanics.evidence) == {"a1", "a2", "a3"}
    assert mechanics.weakest is not None
    assert mechanics.weakest.concept == "energy"
    assert topics["Sound"].status == "pending"
    assert topics["Sound"].score == 0
    assert topics["Sound"].evidence == ()


def answered(n: int, question_id: str, answer: int | str | None, **kw: object) -> AnsweredQuestion:
    question = kw.pop("question", None) or choice_question(question_id, **kw)  # type: ignore[arg-type]
    return AnsweredQuestion(
        answer_id=f"a{n}",
        question=question,
        answer=answer,
        answered_at=T0 + dt.timedelta(minutes=n),
        topic="Mechanics",
    )


def test_the_analysis_recomputes_every_grade_and_figure() -> None:
    answers = [
        answered(1, "q1", 1, concept="vectors"),
        answered(2, "q2", 0, concept="vectors"),
        answered(3, "q3", None, concept="forces"),
        answered(4, "b1", "watt", question=blank_question("b1", "units")),
    ]
    figures = analyse_answers(answers)
    assert (figures.answered, figures.correct, figures.skipped) == (4, 2, 1)
    assert figures.overall_score == 50.0
    assert [g.outcome for g in figures.grades] == ["correct", "wrong", "skipped", "correct"]
    (wrong,) = figures.wrong_answers
    assert (wrong.answer_id, wrong.chosen, wrong.correct) == ("a2", "speed", "velocity")
    analysis = performance_analysis(figures)
    assert analysis.overall_score == 50.0
    assert analysis.summary == "2 of 4 answers right (50%), 1 skipped."
    assert [m.concept for m in analysis.misconceptions] == ["vectors"]
    (topic,) = analysis.topic_mastery
    assert topic.status in {"weak", "learning"}
    assert set(topic.evidence) == {"a1", "a2", "a4"}
    assert [r.priority for r in analysis.recommendations] == [1]
    assert analysis.recommendations[0].topic == "Mechanics"


def test_model_prose_is_used_only_for_words() -> None:
    figures = analyse_answers([answered(1, "q1", 1)])
    analysis = performance_analysis(figures, summary="Nice work.", encouragement="Keep going.")
    assert (analysis.summary, analysis.encouragement) == ("Nice work.", "Keep going.")
    assert analysis.overall_score == 100.0


def test_a_topic_answered_wrong_scores_below_one_answered_right() -> None:
    log = [
        record(1, "forces", "wrong"),
        record(2, "waves", "correct", topic="Waves"),
        record(3, "waves", "correct", topic="Waves"),
        record(4, "forces", "wrong"),
    ]
    topics = topic_mastery(concept_mastery(log))
    weakest = min(topics, key=lambda t: t.score)
    assert (weakest.topic, weakest.status) == ("Mechanics", "weak")
    assert max(topics, key=lambda t: t.score).topic == "Waves"
