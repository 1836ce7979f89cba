"""Commands the planner handles."""

from __future__ import annotations

from exammentor.commands import CommandRouter
from exammentor.worker import WorkerResources


def build_router(resources: WorkerResources) -> CommandRouter:
    """The planner's commands."""
    del resources
    return CommandRouter("planner")
