"""Learner-model benchmark: replay a simulated population through the mastery model.

Two populations are drawn from the same BKT-with-forgetting model: one to fit on, one to
replay. Every answer of the replayed population is predicted from the answers before it, by

- ``ours (EM fit)``: :func:`services.quiz.domain.fit_bkt` on the training population;
- ``ours (defaults)``: the parameters the service uses before there is data;
- ``pyBKT``: pyBKT 1.4.3 with forgetting, fitted on the same training population;
- ``true model``: the generating parameters (the best any model can do on average);
- ``constant``: the training population's share of right answers, for everyone.

It prints log loss and AUC of each, the time to fit, and updates per second: one
:func:`update_mastery` call per answer as the service runs it, and the batched replay.
No assertions on times; run it with ``python -m bench.learner`` from the repository root.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from services.quiz.domain import (
    DEFAULT_BKT_PARAMS,
    BKTParams,
    fit_bkt,
    log_loss,
    predict_batch,
    roc_auc,
    update_mastery,
)
from tests.unit.quiz.learner_sim import pybkt_fit, simulate

T = TypeVar("T")

TRUE_PARAMS = BKTParams(prior=0.25, learn=0.12, slip=0.08, guess=0.22, forget=0.04)


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    model: str
    log_loss: float
    auc: float
    fit_seconds: float | None
    params: BKTParams | None


def _flat(sequences: Sequence[Sequence[bool]]) -> list[bool]:
    return [answer for sequence in sequences for answer in sequence]


def _score(
    model: str,
    predictions: Sequence[float],
    outcomes: Sequence[bool],
    fit_seconds: float | None = None,
    params: BKTParams | None = None,
) -> Row:
    return Row(
        model, log_loss(predictions, outcomes), roc_auc(predictions, outcomes), fit_seconds, params
    )


def _timed(call: Callable[[], T]) -> tuple[T, float]:
    started = time.perf_counter()
    result = call()
    return result, time.perf_counter() - started


def _updates_per_second(sequences: Sequence[Sequence[bool]], params: BKTParams) -> float:
    """One scalar update per answer, student by student, as the service replays a log."""
    started = time.perf_counter()
    count = 0
    for sequence in sequences:
        p = params.prior
        for answer in sequence:
            p = update_mastery(p, answer, params)
            count += 1
    return count / (time.perf_counter() - started)


def _params(params: BKTParams | None) -> str:
    if params is None:
        return ""
    return (
        f"prior {params.prior:.3f} learn {params.learn:.3f} slip {params.slip:.3f} "
        f"guess {params.guess:.3f} forget {params.forget:.3f}"
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(
        description="Replay a simulated population through the mastery model."
    )
    parser.add_argument("--students", type=int, default=1000)
    parser.add_argument("--answers", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-pybkt", action="store_true", help="leave pyBKT out")
    args = parser.parse_args(argv)

    train = simulate(TRUE_PARAMS, args.students, args.answers, seed=args.seed)
    replay = simulate(TRUE_PARAMS, args.students, args.answers, seed=args.seed + 1)
    outcomes = _flat(replay)
    rows: list[Row] = []

    fit, fit_seconds = _timed(lambda: fit_bkt(train))
    batch, batch_seconds = _timed(lambda: predict_batch(replay, fit.params))
    rows.append(_score("ours (EM fit)", _flat_floats(batch), outcomes, fit_seconds, fit.params))
    rows.append(
        _score(
            "ours (defaults)",
            _flat_floats(predict_batch(replay, DEFAULT_BKT_PARAMS)),
            outcomes,
            params=DEFAULT_BKT_PARAMS,
        )
    )
    if not args.no_pybkt:
        theirs, theirs_seconds = _timed(lambda: pybkt_fit(train, replay))
        rows.append(_score("pyBKT", theirs.predictions, outcomes, theirs_seconds, theirs.params))
    rows.append(
        _score(
            "true model",
            _flat_floats(predict_batch(replay, TRUE_PARAMS)),
            outcomes,
            params=TRUE_PARAMS,
        )
    )
    share = sum(_flat(train)) / len(_flat(train))
    rows.append(_score("constant", [share] * len(outcomes), outcomes))
    scalar_rate = _updates_per_second(replay, fit.params)

    print(
        f"population: {args.students} students x {args.answers} answers to fit, as many to "
        f"replay ({len(outcomes):,} predictions); EM: {fit.iterations} iterations, "
        f"converged {fit.converged}"
    )
    print(f"{'model':<17} {'log loss':>9} {'AUC':>7} {'fit s':>7}  parameters")
    for row in rows:
        fitted = f"{row.fit_seconds:7.2f}" if row.fit_seconds is not None else f"{'-':>7}"
        print(f"{row.model:<17} {row.log_loss:9.4f} {row.auc:7.4f} {fitted}  {_params(row.params)}")
    print(
        f"updates/s: {scalar_rate:,.0f} one at a time (update_mastery); "
        f"{len(outcomes) / batch_seconds:,.0f} batched (predict_batch)"
    )


def _flat_floats(rows: Sequence[Sequence[float]]) -> list[float]:
    return [value for row in rows for value in row]


if __name__ == "__main__":
    main()
