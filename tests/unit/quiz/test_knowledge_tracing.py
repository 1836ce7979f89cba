"""Bayesian Knowledge Tracing with forgetting: the update, predictions, and fitting by EM."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.quiz.domain import (
    DEFAULT_BKT_PARAMS,
    BKTParams,
    FitPolicy,
    NoAnswersError,
    fit_bkt,
    log_likelihood,
    log_loss,
    posterior_mastery,
    predict_answers,
    predict_batch,
    predict_correct,
    roc_auc,
    trace_mastery,
    update_mastery,
)
from tests.unit.quiz.learner_sim import pybkt_fit, simulate

PARAMS = BKTParams(prior=0.3, learn=0.2, slip=0.1, guess=0.25, forget=0.05)
TRUE = BKTParams(prior=0.3, learn=0.15, slip=0.1, guess=0.2, forget=0.05)

probabilities = st.floats(0.0, 1.0)
params_strategy = st.builds(
    BKTParams,
    prior=st.floats(0.01, 0.99),
    learn=st.floats(0.01, 0.99),
    slip=st.floats(0.01, 0.45),
    guess=st.floats(0.01, 0.45),
    forget=st.floats(0.0, 0.5),
)


def flat(sequences: list[list[bool]]) -> list[bool]:
    return [a for s in sequences for a in s]


# --- The update --------------------------------------------------------------------------


def test_the_update_matches_a_hand_computation() -> None:
    # Right answer from 0.3: 0.3*0.9 / (0.3*0.9 + 0.7*0.25) = 0.27 / 0.445
    post = 0.27 / 0.445
    assert posterior_mastery(0.3, True, PARAMS) == pytest.approx(post)
    assert update_mastery(0.3, True, PARAMS) == pytest.approx(post * 0.95 + (1 - post) * 0.2)
    # Wrong answer: 0.3*0.1 / (0.03 + 0.7*0.75)
    post = 0.03 / (0.03 + 0.525)
    assert update_mastery(0.3, False, PARAMS) == pytest.approx(post * 0.95 + (1 - post) * 0.2)
    assert predict_correct(0.3, PARAMS) == pytest.approx(0.3 * 0.9 + 0.7 * 0.25)


def test_a_skip_is_no_evidence() -> None:
    assert update_mastery(0.42, None, PARAMS) == 0.42
    assert trace_mastery([True, None, False], PARAMS)[1] == trace_mastery([True], PARAMS)[0]


@given(probabilities, params_strategy)
def test_a_right_answer_never_lowers_belief_and_a_wrong_one_never_raises_it(
    p: float, params: BKTParams
) -> None:
    right, wrong = posterior_mastery(p, True, params), posterior_mastery(p, False, params)
    clamped = min(1 - 1e-9, max(1e-9, p))
    assert right >= clamped - 1e-12
    assert wrong <= clamped + 1e-12
    for value in (right, wrong, update_mastery(p, True, params), update_mastery(p, False, params)):
        assert 0 < value < 1


@settings(max_examples=50, deadline=None)
@given(params_strategy, st.lists(st.one_of(st.booleans(), st.none()), max_size=40))
def test_the_batch_predictions_equal_the_one_student_ones(
    params: BKTParams, answers: list[bool | None]
) -> None:
    one = [
        p for p, a in zip(predict_answers(answers, params), answers, strict=True) if a is not None
    ]
    batch = predict_batch([answers], params)
    assert batch == ([] if not one else [pytest.approx(one)])


def test_long_sequences_stay_finite() -> None:
    sequences = [[True] * 5000, [False] * 5000, [i % 3 == 0 for i in range(5000)]]
    ll = log_likelihood(sequences, DEFAULT_BKT_PARAMS)
    assert math.isfinite(ll)
    assert ll < 0
    assert all(0 < p < 1 for row in predict_batch(sequences, DEFAULT_BKT_PARAMS) for p in row)
    fit = fit_bkt(sequences)
    assert math.isfinite(fit.log_likelihood)


def test_guess_and_slip_must_leave_knowing_useful() -> None:
    with pytest.raises(ValidationError, match="must be below 1"):
        BKTParams(prior=0.5, learn=0.1, slip=0.6, guess=0.5, forget=0.0)


# --- Metrics -----------------------------------------------------------------------------


def test_auc_counts_ties_half_and_log_loss_is_the_mean() -> None:
    assert roc_auc([0.9, 0.8, 0.2, 0.1], [True, True, False, False]) == 1.0
    assert roc_auc([0.1, 0.2, 0.8, 0.9], [True, True, False, False]) == 0.0
    assert roc_auc([0.5, 0.5], [True, False]) == 0.5
    assert roc_auc([0.3, 0.6], [True, True]) == 0.5
    assert log_loss([0.8, 0.4], [True, False]) == pytest.approx(
        -(math.log(0.8) + math.log(0.6)) / 2
    )
    with pytest.raises(NoAnswersError):
        log_loss([], [])


# --- Fitting -----------------------------------------------------------------------------


def test_too_few_answers_keep_the_defaults() -> None:
    fit = fit_bkt([[True, False, True]])
    assert not fit.fitted
    assert fit.params == DEFAULT_BKT_PARAMS
    assert fit.answers == 3
    with pytest.raises(NoAnswersError):
        fit_bkt([[None, None], []])


def test_the_fit_is_deterministic_and_raises_the_likelihood() -> None:
    data = simulate(TRUE, 200, 20, seed=5)
    first, second = fit_bkt(data), fit_bkt(data)
    assert first == second
    assert first.fitted
    assert first.log_likelihood > log_likelihood(data, DEFAULT_BKT_PARAMS)


def test_parameters_are_recovered_from_simulated_students() -> None:
    data = simulate(TRUE, 1000, 40, seed=11)
    fit = fit_bkt(data, start=BKTParams(prior=0.5, learn=0.3, slip=0.25, guess=0.35, forget=0.1))
    assert fit.converged
    for name, tolerance in (
        ("prior", 0.05),
        ("learn", 0.04),
        ("slip", 0.02),
        ("guess", 0.03),
        ("forget", 0.02),
    ):
        assert getattr(fit.params, name) == pytest.approx(getattr(TRUE, name), abs=tolerance)


def test_bounds_keep_the_fit_identifiable() -> None:
    # Everyone answers at chance: EM would drift to guess ~ 1 - slip; the bounds stop it.
    data = simulate(
        BKTParams(prior=0.01, learn=0.01, slip=0.45, guess=0.45, forget=0.5), 200, 20, seed=3
    )
    fit = fit_bkt(data, policy=FitPolicy(max_guess=0.4, max_slip=0.4))
    assert fit.params.guess <= 0.4
    assert fit.params.slip <= 0.4


def test_the_fit_predicts_as_well_as_the_true_model_and_pybkt() -> None:
    train = simulate(TRUE, 300, 30, seed=21)
    test = simulate(TRUE, 300, 30, seed=22)
    outcomes = flat(test)
    ours = fit_bkt(train)
    theirs = pybkt_fit(train, test)
    scores = {}
    for name, predictions in (
        ("ours", [p for row in predict_batch(test, ours.params) for p in row]),
        ("true", [p for row in predict_batch(test, TRUE) for p in row]),
        ("pybkt", theirs.predictions),
        ("constant", [sum(flat(train)) / len(flat(train))] * len(outcomes)),
    ):
        scores[name] = (log_loss(predictions, outcomes), roc_auc(predictions, outcomes))
    # Within 1% log loss and 0.01 AUC of the generating model and of pyBKT ...
    for reference in ("true", "pybkt"):
        assert scores["ours"][0] <= scores[reference][0] * 1.01
        assert scores["ours"][1] >= scores[reference][1] - 0.01
    # ... and far better than knowing only the average.
    assert scores["ours"][0] < scores["constant"][0] - 0.05
    assert scores["ours"][1] > 0.7
    # The two fits agree on the parameters too.
    for name in ("prior", "learn", "slip", "guess", "forget"):
        assert getattr(ours.params, name) == pytest.approx(getattr(theirs.params, name), abs=0.03)
