"""Commands the tutor service handles.

So far only the kit's ``system.echo``; the tutor capabilities arrive with their own issue.
"""

from __future__ import annotations

from exammentor.commands import CommandRouter
from exammentor.worker import WorkerResources


def build_router(resources: WorkerResources) -> CommandRouter:
    """The tutor service's commands."""
    del resources  # used once the service has commands of its own
    return CommandRouter("tutor")
