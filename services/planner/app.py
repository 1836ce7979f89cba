"""Entry point of the planner service: the kit's worker with the planner's commands."""

from __future__ import annotations

from exammentor.worker import run_worker
from services.planner.handlers import install_handlers
from services.planner.settings import PlannerSettings


def main() -> None:
    """Runs the planner until SIGTERM."""
    run_worker(PlannerSettings(), install_handlers)


if __name__ == "__main__":
    main()
