"""Entry point of the quiz service: the kit's worker with this service's commands."""

from __future__ import annotations

from exammentor.worker import run_worker
from services.quiz.handlers import install_handlers
from services.quiz.settings import QuizSettings


def main() -> None:
    """Runs the quiz service until SIGTERM."""
    run_worker(QuizSettings(), install_handlers)


if __name__ == "__main__":
    main()
