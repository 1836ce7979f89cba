"""Entry point of the autopilot service: the kit's worker with this service's commands."""

from __future__ import annotations

from exammentor.worker import run_worker
from services.autopilot.handlers import build_router
from services.autopilot.settings import AutopilotSettings


def main() -> None:
    """Runs the autopilot service until SIGTERM."""
    run_worker(AutopilotSettings(), build_router)


if __name__ == "__main__":
    main()
