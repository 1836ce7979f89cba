"""Entry point of the autopilot service: the kit's worker with this service's commands."""

from __future__ import annotations

from exammentor.worker import run_worker
from services.autopilot.handlers import install_handlers
from services.autopilot.settings import AutopilotSettings


def main() -> None:
    """Runs the autopilot service until SIGTERM."""
    run_worker(AutopilotSettings(), install_handlers)


if __name__ == "__main__":
    main()
