"""Bayesian Knowledge Tracing with forgetting: the learner model of one student and concept.

The model is a two-state hidden Markov model. A student either knows the concept or not;
before the first answer they know it with probability ``prior``. Each answer is right with
probability ``1 - slip`` when they know it and ``guess`` when they do not. After each answer
a student who did not know it learns it with probability ``learn``, one who knew it forgets
it with probability ``forget``.

- :func:`update_mastery` is the per-answer update the service runs: Bayes' rule on the
  answer, then the learning/forgetting step. A skipped answer is no evidence and changes
  nothing.
- :func:`fit_bkt` fits the five parameters by expectation-maximisation (Baum-Welch) over
  many students' answer sequences of one concept. The forward-backward pass is scaled at
  every step, so long sequences cannot underflow, and the M-step adds ``pseudo_answers`` of
  the starting parameters (a Beta prior), so a small log moves them only as far as its
  evidence warrants. Below ``min_answers`` the defaults are returned untouched.
- ``guess`` and ``slip`` are kept at most ``max_guess``/``max_slip`` so that "knows it" keeps
  meaning "answers better" (the model is not identifiable otherwise), and every parameter
  stays inside ``[floor, 1 - floor]`` so no probability becomes 0 or 1.

Everything is deterministic: the same sequences give the same fit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Self

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.quiz.domain.errors import NoAnswersError

Observation = bool | None
"""An answer as evidence: right, wrong, or ``None`` for no evidence (skipped)."""

_EPS = 1e-9
FloatArray = npt.NDArray[np.float64]


class BKTParams(BaseModel):
    """The five parameters of one concept's knowledge tracing."""

    model_config = ConfigDict(frozen=True)

    prior: float = Field(gt=0, lt=1)
    """P(knows the concept) before the first answer."""
    learn: float = Field(gt=0, lt=1)
    """P(learns it) after an answer, when not known."""
    slip: float = Field(gt=0, lt=1)
    """P(wrong answer) when known."""
    guess: float = Field(gt=0, lt=1)
    """P(right answer) when not known."""
    forget: float = Field(ge=0, lt=1)
    """P(forgets it) after an answer, when known."""

    @model_validator(mode="after")
    def _knowing_helps(self) -> Self:
        if self.guess + self.slip >= 1:
            raise ValueError(
                f"guess {self.guess:g} + slip {self.slip:g} must be below 1, or knowing the "
                "concept would not make a right answer likelier"
            )
        return self


DEFAULT_BKT_PARAMS = BKTParams(prior=0.3, learn=0.15, slip=0.1, guess=0.2, forget=0.03)
"""Used before a concept has enough answers to fit: typical values for quiz items (a guess
near chance for four options, some forgetting between sessions)."""


@dataclass(frozen=True)
class FitPolicy:
    """How :func:`fit_bkt` fits; the defaults are what the operator command uses.

    Attributes:
        min_answers: Fewer answers than this return the starting parameters unfitted.
        max_iterations: EM iterations per start.
        tolerance: Stop when the log-likelihood per answer improves by less than this.
        pseudo_answers: Weight of the starting parameters in each M-step, in answers.
        floor: Every parameter stays in ``[floor, 1 - floor]``.
        max_guess: Upper bound of ``guess``.
        max_slip: Upper bound of ``slip``.
        extra_starts: Further starting points tried besides the given one; the fit with the
            highest likelihood wins (EM finds a local optimum).
    """

    min_answers: int = 50
    max_iterations: int = 200
    tolerance: float = 1e-7
    pseudo_answers: float = 2.0
    floor: float = 1e-4
    max_guess: float = 0.5
    max_slip: float = 0.5
    extra_starts: tuple[BKTParams, ...] = field(
        default=(
            BKTParams(prior=0.5, learn=0.3, slip=0.2, guess=0.3, forget=0.1),
            BKTParams(prior=0.1, learn=0.05, slip=0.05, guess=0.1, forget=0.01),
        )
    )


DEFAULT_FIT_POLICY = FitPolicy()


class BKTFit(BaseModel):
    """The result of :func:`fit_bkt`."""

    model_config = ConfigDict(frozen=True)

    params: BKTParams
    fitted: bool
    """False when there were too few answers and the starting parameters came back."""
    log_likelihood: float
    """Of the answers under ``params``."""
    iterations: int
    converged: bool
    answers: int
    sequences: int


# --- One student -------------------------------------------------------------------------


def _clamp(p: float) -> float:
    return min(1.0 - _EPS, max(_EPS, p))


def predict_correct(p_mastery: float, params: BKTParams) -> float:
    """P(the next answer is right) given P(knows the concept).

    Args:
        p_mastery: Current P(knows it).
        params: The concept's parameters.

    Returns:
        The probability of a right answer.
    """
    p = _clamp(p_mastery)
    return p * (1 - params.slip) + (1 - p) * params.guess


def posterior_mastery(p_mastery: float, correct: bool, params: BKTParams) -> float:
    """P(knew the concept) after seeing one answer (Bayes' rule, before any learning).

    Args:
        p_mastery: P(knows it) before the answer.
        correct: Whether the answer was right.
        params: The concept's parameters.

    Returns:
        The updated probability, inside ``(0, 1)``.
    """
    p = _clamp(p_mastery)
    if correct:
        known, unknown = p * (1 - params.slip), (1 - p) * params.guess
    else:
        known, unknown = p * params.slip, (1 - p) * (1 - params.guess)
    # Both terms are positive because every parameter is inside (0, 1).
    return _clamp(known / (known + unknown))


def update_mastery(p_mastery: float, correct: Observation, params: BKTParams) -> float:
    """P(knows the concept) before the next answer, after this one.

    Args:
        p_mastery: P(knows it) before this answer.
        correct: The answer: right, wrong, or ``None`` (skipped: no evidence, no change).
        params: The concept's parameters.

    Returns:
        The new probability.
    """
    if correct is None:
        return p_mastery
    post = posterior_mastery(p_mastery, correct, params)
    return _clamp(post * (1 - params.forget) + (1 - post) * params.learn)


def trace_mastery(observations: Sequence[Observation], params: BKTParams) -> list[float]:
    """P(knows the concept) after each answer of one student, starting from the prior.

    Args:
        observations: The student's answers in order.
        params: The concept's parameters.

    Returns:
        One probability per observation (unchanged at a skip).
    """
    p = params.prior
    trace: list[float] = []
    for correct in observations:
        p = update_mastery(p, correct, params)
        trace.append(p)
    return trace


def predict_answers(observations: Sequence[Observation], params: BKTParams) -> list[float]:
    """P(right) of each answer given only the answers before it (no peeking).

    Args:
        observations: The student's answers in order.
        params: The concept's parameters.

    Returns:
        One prediction per observation (skips included, predicted like any other).
    """
    p = params.prior
    predictions: list[float] = []
    for correct in observations:
        predictions.append(predict_correct(p, params))
        p = update_mastery(p, correct, params)
    return predictions


# --- Many students at once ---------------------------------------------------------------


@dataclass(frozen=True)
class _Batch:
    """Sequences left-aligned in a matrix: ``answers`` 0/1, ``mask`` where an answer is."""

    answers: FloatArray
    mask: npt.NDArray[np.bool_]

    @classmethod
    def of(cls, sequences: Sequence[Sequence[Observation]]) -> _Batch:
        kept = [[1.0 if a else 0.0 for a in seq if a is not None] for seq in sequences]
        kept = [seq for seq in kept if seq]
        width = max((len(seq) for seq in kept), default=0)
        answers = np.zeros((len(kept), width))
        mask = np.zeros((len(kept), width), dtype=bool)
        for i, seq in enumerate(kept):
            answers[i, : len(seq)] = seq
            mask[i, : len(seq)] = True
        return cls(answers, mask)

    @property
    def count(self) -> int:
        return int(self.mask.sum())


def _transition(params: BKTParams) -> FloatArray:
    # Rows: from (unknown, known); columns: to (unknown, known).
    return np.array(
        [[1 - params.learn, params.learn], [params.forget, 1 - params.forget]], dtype=np.float64
    )


def _emissions(batch: _Batch, params: BKTParams) -> FloatArray:
    """P(the observed answer | state), shape (students, answers, 2); 1 where no answer."""
    right = batch.answers
    emit = np.empty((*right.shape, 2))
    emit[..., 0] = right * params.guess + (1 - right) * (1 - params.guess)
    emit[..., 1] = right * (1 - params.slip) + (1 - right) * params.slip
    emit[~batch.mask] = 1.0
    return emit


def _forward(
    batch: _Batch, params: BKTParams
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Scaled forward pass: filtered state, the predicted state before each answer, the
    scale factors (P(answer | earlier answers)) and the emissions."""
    n, width = batch.answers.shape
    trans = _transition(params)
    emit = _emissions(batch, params)
    alpha = np.empty((n, width, 2))
    before = np.empty((n, width, 2))
    scale = np.ones((n, width))
    state = np.tile([1 - params.prior, params.prior], (n, 1))
    for t in range(width):
        if t:
            state = alpha[:, t - 1] @ trans
        before[:, t] = state
        joint = state * emit[:, t]
        scale[:, t] = joint.sum(axis=1)
        alpha[:, t] = joint / scale[:, t, None]
    return alpha, before, scale, emit


def _e_step(batch: _Batch, params: BKTParams) -> tuple[float, dict[str, tuple[float, float]]]:
    """Expected counts (numerator, denominator) of each parameter, and the log-likelihood."""
    alpha, _, scale, emit = _forward(batch, params)
    trans = _transition(params)
    n, width = batch.answers.shape
    beta = np.ones((n, width, 2))
    for t in range(width - 2, -1, -1):
        beta[:, t] = (emit[:, t + 1] * beta[:, t + 1] / scale[:, t + 1, None]) @ trans.T
    gamma = alpha * beta
    gamma /= gamma.sum(axis=2, keepdims=True)
    # xi[n, t, i, j] = P(state i at t, state j at t+1 | answers), for real transitions only.
    moves = batch.mask[:, 1:]
    xi = (
        alpha[:, :-1, :, None]
        * trans[None, None]
        * (emit[:, 1:] * beta[:, 1:] / scale[:, 1:, None])[:, :, None, :]
    )
    xi = xi * moves[..., None, None]
    mask = batch.mask
    right = batch.answers * mask
    wrong = (1 - batch.answers) * mask
    counts = {
        "prior": (float(gamma[:, 0, 1].sum()), float(n)),
        "learn": (float(xi[..., 0, 1].sum()), float(xi[..., 0, :].sum())),
        "forget": (float(xi[..., 1, 0].sum()), float(xi[..., 1, :].sum())),
        "guess": (float((gamma[..., 0] * right).sum()), float((gamma[..., 0] * mask).sum())),
        "slip": (float((gamma[..., 1] * wrong).sum()), float((gamma[..., 1] * mask).sum())),
    }
    log_likelihood = float(np.log(scale[mask]).sum())
    return log_likelihood, counts


def _m_step(
    counts: dict[str, tuple[float, float]], anchor: BKTParams, policy: FitPolicy
) -> BKTParams:
    values: dict[str, float] = {}
    for name, (numerator, denominator) in counts.items():
        weight = policy.pseudo_answers
        value = (numerator + weight * getattr(anchor, name)) / (denominator + weight)
        values[name] = min(1 - policy.floor, max(policy.floor, value))
    values["guess"] = min(values["guess"], policy.max_guess)
    values["slip"] = min(values["slip"], policy.max_slip)
    return BKTParams(**values)


def log_likelihood(sequences: Sequence[Sequence[Observation]], params: BKTParams) -> float:
    """Log-likelihood of answer sequences under ``params`` (natural log).

    Args:
        sequences: One sequence of answers per student.
        params: The parameters.

    Returns:
        The log-likelihood (0 for no answers).
    """
    batch = _Batch.of(sequences)
    if not batch.count:
        return 0.0
    _, _, scale, _ = _forward(batch, params)
    return float(np.log(scale[batch.mask]).sum())


def _fit_from(
    batch: _Batch, start: BKTParams, anchor: BKTParams, policy: FitPolicy
) -> tuple[BKTParams, float, int, bool]:
    params = start
    previous = -math.inf
    per_answer = 1.0 / batch.count
    for iteration in range(1, policy.max_iterations + 1):
        ll, counts = _e_step(batch, params)
        if ll * per_answer - previous * per_answer < policy.tolerance:
            return params, ll, iteration, True
        previous = ll
        params = _m_step(counts, anchor, policy)
    ll, _ = _e_step(batch, params)
    return params, ll, policy.max_iterations, False


def fit_bkt(
    sequences: Sequence[Sequence[Observation]],
    *,
    start: BKTParams = DEFAULT_BKT_PARAMS,
    policy: FitPolicy = DEFAULT_FIT_POLICY,
) -> BKTFit:
    """Fit one concept's parameters to students' answer sequences by EM (Baum-Welch).

    Args:
        sequences: One sequence per student, answers in time order; ``None`` (skipped) is
            left out.
        start: Starting point and the Beta prior's centre (the defaults, or the last fit).
        policy: How to fit.

    Returns:
        The best fit over ``start`` and the policy's extra starts, or ``start`` unfitted
        when there are fewer than ``policy.min_answers`` answers.

    Raises:
        NoAnswersError: No answers at all.
    """
    batch = _Batch.of(sequences)
    if not batch.count:
        raise NoAnswersError("no answers to fit: every sequence is empty or skipped")
    rows = int(batch.answers.shape[0])
    if batch.count < policy.min_answers:
        ll, _ = _e_step(batch, start)
        return BKTFit(
            params=start,
            fitted=False,
            log_likelihood=ll,
            iterations=0,
            converged=False,
            answers=batch.count,
            sequences=rows,
        )
    best: tuple[BKTParams, float, int, bool] | None = None
    for origin in (start, *policy.extra_starts):
        found = _fit_from(batch, origin, start, policy)
        if best is None or found[1] > best[1]:
            best = found
    assert best is not None  # at least ``start`` was tried
    params, ll, iterations, converged = best
    return BKTFit(
        params=params,
        fitted=True,
        log_likelihood=ll,
        iterations=iterations,
        converged=converged,
        answers=batch.count,
        sequences=rows,
    )


def predict_batch(
    sequences: Sequence[Sequence[Observation]], params: BKTParams
) -> list[list[float]]:
    """:func:`predict_answers` for many students at once (the same numbers, faster).

    Args:
        sequences: One sequence per student; skips are left out.
        params: The parameters.

    Returns:
        One list of predictions per non-empty sequence, in order.
    """
    batch = _Batch.of(sequences)
    if not batch.count:
        return []
    _, before, _, _ = _forward(batch, params)
    right = before[..., 1] * (1 - params.slip) + before[..., 0] * params.guess
    return [row[mask].tolist() for row, mask in zip(right, batch.mask, strict=True)]


# --- Judging predictions -----------------------------------------------------------------


def log_loss(predictions: Sequence[float], outcomes: Sequence[bool]) -> float:
    """Mean negative log-likelihood of outcomes under predicted probabilities.

    Args:
        predictions: P(right) per answer.
        outcomes: What happened.

    Returns:
        The mean log loss (natural log); predictions are clipped to ``[1e-9, 1 - 1e-9]``.

    Raises:
        NoAnswersError: No answers.
    """
    if not outcomes:
        raise NoAnswersError("no answers to score")
    p = np.clip(np.asarray(predictions, dtype=np.float64), _EPS, 1 - _EPS)
    y = np.asarray(outcomes, dtype=np.float64)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


def roc_auc(predictions: Sequence[float], outcomes: Sequence[bool]) -> float:
    """Area under the ROC curve: P(a right answer was predicted higher than a wrong one).

    Ties count half (the Mann-Whitney statistic with average ranks).

    Args:
        predictions: P(right) per answer.
        outcomes: What happened.

    Returns:
        The AUC, or 0.5 when the outcomes are all the same (nothing to rank).
    """
    y = np.asarray(outcomes, dtype=bool)
    positives = int(y.sum())
    negatives = len(y) - positives
    if not positives or not negatives:
        return 0.5
    scores = np.asarray(predictions, dtype=np.float64)
    # Average ranks (1-based) over runs of equal scores.
    _, run, sizes = np.unique(scores, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(sizes) - (sizes - 1) / 2)[run]
    return float((ranks[y].sum() - positives * (positives + 1) / 2) / (positives * negatives))
