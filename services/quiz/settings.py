"""Quiz service settings."""

from __future__ import annotations

from exammentor.contracts.topics import Service
from exammentor.settings import WorkerSettings


class QuizSettings(WorkerSettings):
    """What the quiz service reads from the environment (``EXAMMENTOR_*``)."""

    service_name: Service = "quiz"
