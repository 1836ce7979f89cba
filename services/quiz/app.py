"""Entry point of the quiz service: the kit's worker with this service's commands."""

from __future__ import annotations

from exammentor.worker import run_worker
from services.quiz.handlers import build_router
from services.quiz.settings import QuizSettings


def main() -> None:
    """Runs the quiz service until SIGTERM."""
    run_worker(QuizSettings(), build_router)


if __name__ == "__main__":
    main()
