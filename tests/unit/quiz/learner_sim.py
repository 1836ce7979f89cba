"""Simulated students for the learner-model tests and ``bench/learner.py``, and pyBKT run on
the same answers.

pyBKT 1.4.3 (pure Python) needs two things to run here: scikit-learn below 1.6 (its metrics
module breaks on 1.9) and, under numpy 2.4, its E-step's log-likelihood as a scalar (it
returns a 1x1 array that numpy no longer assigns into a scalar slot). :func:`pybkt_fit`
wraps that one call; nothing of pyBKT's model is changed.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from services.quiz.domain import BKTParams


def simulate(params: BKTParams, students: int, answers: int, seed: int) -> list[list[bool]]:
    """Answer sequences drawn from the BKT-with-forgetting model itself.

    Args:
        params: The generating parameters.
        students: Sequences to draw.
        answers: Answers per sequence.
        seed: Random seed.

    Returns:
        One list of right/wrong answers per student.
    """
    rng = np.random.default_rng(seed)
    known = rng.random(students) < params.prior
    draws = rng.random((answers, 2, students))
    rows = np.empty((answers, students), dtype=bool)
    for t in range(answers):
        rows[t] = np.where(known, draws[t, 0] < 1 - params.slip, draws[t, 0] < params.guess)
        known = np.where(known, draws[t, 1] >= params.forget, draws[t, 1] < params.learn)
    return [list(map(bool, column)) for column in rows.T]


@contextmanager
def _pybkt_quiet() -> Iterator[Any]:
    # pyBKT uses pandas options and numpy calls that newer versions warn about; the tests
    # run with warnings as errors, and these are not ours to fix.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pyBKT.fit.EM_fit as em_fit
        from pyBKT.models import Model

        original = em_fit.run

        def run(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            result["total_loglike"] = float(np.asarray(result["total_loglike"]).reshape(-1)[0])
            return result

        em_fit.run = run
        try:
            yield Model
        finally:
            em_fit.run = original


def _frame(sequences: Sequence[Sequence[bool]]) -> Any:
    import pandas as pd  # type: ignore[import-untyped]

    rows = [
        (order, f"s{student}", "concept", int(answer))
        for student, answers in enumerate(sequences)
        for order, answer in enumerate(answers)
    ]
    frame = pd.DataFrame(rows, columns=["order_id", "user_id", "skill_name", "correct"])
    frame["order_id"] = range(len(frame))
    return frame


@dataclass(frozen=True)
class PyBKTResult:
    """pyBKT's fitted parameters and its predictions on the test sequences."""

    params: BKTParams
    predictions: list[float]


def pybkt_fit(
    train: Sequence[Sequence[bool]], test: Sequence[Sequence[bool]], seed: int = 1
) -> PyBKTResult:
    """Fit pyBKT (with forgetting) on ``train`` and predict every answer of ``test``.

    Args:
        train: Training sequences.
        test: Sequences to predict (each answer from the ones before it).
        seed: pyBKT's random seed.

    Returns:
        The parameters and the predictions, in the order of ``test``'s answers.
    """
    with _pybkt_quiet() as model_class:
        model = model_class(seed=seed, num_fits=1, parallel=False)
        model.fit(data=_frame(train), forgets=True)
        predicted = model.predict(data=_frame(test))
        table = model.params()["value"]
    values = {
        name: float(table[("concept", name, "default")])
        for name in ("prior", "learns", "slips", "guesses", "forgets")
    }
    params = BKTParams(
        prior=values["prior"],
        learn=values["learns"],
        slip=values["slips"],
        guess=values["guesses"],
        forget=max(values["forgets"], 0.0),
    )
    # pyBKT returns rows grouped by student; our order is the order_id.
    ordered = predicted.sort_values("order_id")["correct_predictions"]
    return PyBKTResult(params=params, predictions=ordered.tolist())
