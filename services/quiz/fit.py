"""``exammentor-learner-fit`` (``python -m services.quiz.fit``): the operator's refit of the
learner model's knowledge-tracing parameters from the stored answer log.

Rules it keeps:

- It reads every student's answers, so it connects with the owner's ``DATABASE_URL`` and
  turns row security off for its transaction: a role that row-level security binds gets an
  error naming the fix, never a silent fit on nobody's answers.
- One fit per concept (by its normalised name, the key the service looks up) with enough
  answers, and one pooled fit (``*``) over every concept, which the service uses for a
  concept without its own. Each fit starts from the last fit of its key (or the pooled fit,
  or the defaults), so a refit moves the parameters only as far as new evidence warrants.
- A key with fewer answers than :attr:`FitPolicy.min_answers` keeps what it had: nothing is
  written for it, and the service goes on using the pooled fit or the defaults.
- All rows are written in one transaction; the quiz service reads them on its next answer
  (``learner_params``), with no restart.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace

import asyncpg

from exammentor.contracts.quiz import LearnerFitResult
from exammentor.settings import DatabaseSettings
from services.quiz import repo
from services.quiz.domain import (
    DEFAULT_BKT_PARAMS,
    DEFAULT_FIT_POLICY,
    BKTFit,
    BKTParams,
    FitPolicy,
    Observation,
    fit_bkt,
)

POOLED = "*"
"""The key of the fit over every concept (``repo.fitted_params`` falls back to it)."""

_OBSERVATIONS: dict[str, Observation] = {"correct": True, "wrong": False, "skipped": None}


class FitRefusedError(Exception):
    """The fit cannot read the whole answer log with this connection."""


@dataclass(frozen=True)
class AnswerLog:
    """The answer log as knowledge tracing reads it: per concept key, one sequence of
    observations per student, in answer order."""

    by_concept: dict[str, list[list[Observation]]]

    @property
    def pooled(self) -> list[list[Observation]]:
        """Every (student, concept) sequence."""
        return [seq for sequences in self.by_concept.values() for seq in sequences]


async def read_answer_log(conn: asyncpg.Connection) -> AnswerLog:
    """Every student's answers, grouped by concept and student.

    Args:
        conn: An owner's connection inside a transaction.

    Returns:
        The log.

    Raises:
        FitRefusedError: The role is bound by row-level security.
    """
    try:
        # Off, not bypassed: a role that row security binds now fails instead of reading
        # only the rows of no user (a fit on an empty log would look like a success).
        rows = await repo.every_answer_outcome(conn)
    except asyncpg.InsufficientPrivilegeError as exc:
        raise FitRefusedError(
            "DATABASE_URL: the fit reads every student's answers; connect as the schema's "
            f"owner with BYPASSRLS or as a superuser (the server said: {exc})"
        ) from exc
    sequences: dict[tuple[str, object], list[Observation]] = defaultdict(list)
    for user_id, concept, outcome in rows:
        sequences[repo.concept_key(concept), user_id].append(_OBSERVATIONS[outcome])
    by_concept: dict[str, list[list[Observation]]] = defaultdict(list)
    for (key, _), observations in sequences.items():
        by_concept[key].append(observations)
    return AnswerLog(dict(by_concept))


def _result(fit: BKTFit) -> LearnerFitResult:
    p = fit.params
    return LearnerFitResult(
        prior=p.prior,
        learn=p.learn,
        slip=p.slip,
        guess=p.guess,
        forget=p.forget,
        answers=fit.answers,
        sequences=fit.sequences,
        log_likelihood=fit.log_likelihood,
    )


def fit_answer_log(
    log: AnswerLog, previous: dict[str, BKTParams], policy: FitPolicy = DEFAULT_FIT_POLICY
) -> dict[str, LearnerFitResult]:
    """The fits worth writing: the pooled one and each concept's with enough answers.

    Args:
        log: The answer log.
        previous: The parameters stored now, by key.
        policy: How to fit.

    Returns:
        Key -> fitted parameters, only for keys that were actually fitted.
    """
    fitted: dict[str, LearnerFitResult] = {}
    pooled_start = previous.get(POOLED, DEFAULT_BKT_PARAMS)
    if any(o is not None for seq in log.pooled for o in seq):
        pooled = fit_bkt(log.pooled, start=pooled_start, policy=policy)
        if pooled.fitted:
            fitted[POOLED] = _result(pooled)
            pooled_start = pooled.params
    for key, sequences in sorted(log.by_concept.items()):
        if not any(o is not None for seq in sequences for o in seq):
            continue
        found = fit_bkt(sequences, start=previous.get(key, pooled_start), policy=policy)
        if found.fitted:
            fitted[key] = _result(found)
    return fitted


async def fit_learner_params(
    dsn: str, *, policy: FitPolicy = DEFAULT_FIT_POLICY, write: bool = True
) -> dict[str, LearnerFitResult]:
    """Reads the answer log, fits, and writes ``learner_params`` in one transaction.

    Args:
        dsn: The owner's connection string (``DATABASE_URL``).
        policy: How to fit (``min_answers`` included).
        write: False for a dry run that only reports.

    Returns:
        What was (or would be) written, by concept key (``*``: the pooled fit).

    Raises:
        FitRefusedError: The role cannot read every student's answers.
    """
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            log = await read_answer_log(conn)
            previous = await repo.fitted_params(conn)
            # EM is CPU work: off the event loop.
            fits = await asyncio.to_thread(fit_answer_log, log, previous, policy)
            if write and fits:
                await repo.save_fitted_params(conn, fits)
        return fits
    finally:
        await conn.close()


def _out(line: str = "") -> None:
    sys.stdout.write(line + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``exammentor-learner-fit``.

    Args:
        argv: The arguments (the process's when None).

    Returns:
        The exit status: 0 on success, 1 when refused, 2 for bad arguments.
    """
    parser = argparse.ArgumentParser(
        prog="exammentor-learner-fit",
        description="Fit the learner model's BKT parameters from the stored answer log.",
    )
    parser.add_argument(
        "--database-url", default=None, help="owner's connection string (default DATABASE_URL)"
    )
    parser.add_argument(
        "--min-answers",
        type=int,
        default=DEFAULT_FIT_POLICY.min_answers,
        help="answers a concept needs before it gets a fit of its own",
    )
    parser.add_argument("--dry-run", action="store_true", help="report without writing")
    args = parser.parse_args(argv)
    if args.min_answers < 1:
        parser.error("--min-answers must be at least 1")
    dsn = args.database_url or DatabaseSettings().database_url
    policy = replace(DEFAULT_FIT_POLICY, min_answers=args.min_answers)
    try:
        fits = asyncio.run(fit_learner_params(dsn, policy=policy, write=not args.dry_run))
    except FitRefusedError as exc:
        _out(f"refused: {exc}")
        return 1
    _out(
        f"{'concept':<32} {'prior':>6} {'learn':>6} {'slip':>6} {'guess':>6} {'forget':>6} "
        f"{'answers':>8} {'students':>8}"
    )
    for key, f in fits.items():
        _out(
            f"{key[:32]:<32} {f.prior:>6.3f} {f.learn:>6.3f} {f.slip:>6.3f} {f.guess:>6.3f} "
            f"{f.forget:>6.3f} {f.answers:>8} {f.sequences:>8}"
        )
    verb = "would write" if args.dry_run else "wrote"
    _out(f"{verb} {len(fits)} fit(s); concepts under {policy.min_answers} answers keep theirs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
