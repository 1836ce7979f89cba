"""Commands the autopilot service handles.

So far only the kit's ``system.echo``; the autopilot capabilities arrive with their own issue.
"""

from __future__ import annotations

from exammentor.commands import CommandRouter
from exammentor.worker import WorkerResources
from services.autopilot.settings import AutopilotSettings


def install_handlers(router: CommandRouter, resources: WorkerResources[AutopilotSettings]) -> None:
    """Registers the autopilot service's handlers on its router."""
    del router, resources  # used once the service has commands of its own
