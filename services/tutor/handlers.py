"""Commands the tutor service handles.

So far only the kit's ``system.echo``; the tutor capabilities arrive with their own issue.
"""

from __future__ import annotations

from exammentor.commands import CommandRouter
from exammentor.worker import WorkerResources
from services.tutor.settings import TutorSettings


def install_handlers(router: CommandRouter, resources: WorkerResources[TutorSettings]) -> None:
    """Registers the tutor service's handlers on its router."""
    del router, resources  # used once the service has commands of its own
