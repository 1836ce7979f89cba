"""Tutor service settings."""

from __future__ import annotations

from exammentor.settings import ServiceSettings


class TutorSettings(ServiceSettings):
    """What the tutor service reads from the environment (EXAMMENTOR_*)."""

    service_name: str = "tutor"
