"""Commands the quiz service handles.

So far only the kit's ``system.echo``; the quiz capabilities arrive with their own issue.
"""

from __future__ import annotations

from exammentor.commands import CommandRouter
from exammentor.worker import WorkerResources
from services.quiz.settings import QuizSettings


def install_handlers(router: CommandRouter, resources: WorkerResources[QuizSettings]) -> None:
    """Registers the quiz service's handlers on its router."""
    del router, resources  # used once the service has commands of its own
