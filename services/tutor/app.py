"""Entry point of the tutor service: the kit's worker with this service's commands."""

from __future__ import annotations

from exammentor.worker import run_worker
from services.tutor.handlers import install_handlers
from services.tutor.settings import TutorSettings


def main() -> None:
    """Runs the tutor service until SIGTERM."""
    run_worker(TutorSettings(), install_handlers)


if __name__ == "__main__":
    main()
