"""Quiz service settings."""

from __future__ import annotations

from exammentor.settings import ServiceSettings


class QuizSettings(ServiceSettings):
    """What the quiz service reads from the environment (EXAMMENTOR_*)."""

    service_name: str = "quiz"
