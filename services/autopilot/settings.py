"""Autopilot service settings."""

from __future__ import annotations

from exammentor.contracts.topics import Service
from exammentor.settings import WorkerSettings


class AutopilotSettings(WorkerSettings):
    """What the autopilot service reads from the environment (``EXAMMENTOR_*``)."""

    service_name: Service = "autopilot"
