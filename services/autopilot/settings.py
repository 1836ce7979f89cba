"""Autopilot service settings."""

from __future__ import annotations

from exammentor.settings import ServiceSettings


class AutopilotSettings(ServiceSettings):
    """What the autopilot service reads from the environment (EXAMMENTOR_*)."""

    service_name: str = "autopilot"
