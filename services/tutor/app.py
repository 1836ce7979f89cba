"""Entry point of the tutor service: the kit's worker with this service's commands."""

from __future__ import annotations

from exammentor.worker import run_worker
from services.tutor.handlers import build_router
from services.tutor.settings import TutorSettings


def main() -> None:
    """Runs the tutor service until SIGTERM."""
    run_worker(TutorSettings(), build_router)


if __name__ == "__main__":
    main()
