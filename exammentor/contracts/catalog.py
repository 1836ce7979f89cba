"""Every declared command, in one registry.

A domain declares its commands in its own contract module (``plan.generate`` beside the
kit's in :mod:`exammentor.contracts.commands`; the tutor's in ``contracts/tutor.py`` ...);
this module lists them all, so that docs, tests and tools see every command. Add a domain's
declarations to :data:`DECLARED` when it gains commands.
"""

from __future__ import annotations

from typing import Any

from exammentor.contracts.autopilot import AUTOPILOT_COMMANDS
from exammentor.contracts.commands import PLAN_GENERATE, SYSTEM_ECHO, Command
from exammentor.contracts.kafka_topics import Service
from exammentor.contracts.quiz import QUIZ_COMMANDS
from exammentor.contracts.tutor import TUTOR_COMMANDS

DECLARED: tuple[Command[Any, Any], ...] = (
    *SYSTEM_ECHO.values(),
    PLAN_GENERATE,
    *QUIZ_COMMANDS,
    *TUTOR_COMMANDS,
    *AUTOPILOT_COMMANDS,
)

COMMANDS: dict[tuple[Service, str, int], Command[Any, Any]] = {
    (c.service, c.name, c.version): c for c in DECLARED
}
"""Every declared command, by owning service, name and version."""

if len(COMMANDS) != len(DECLARED):
    raise ValueError("two declarations share a service, name and version")


def commands_of(service: Service) -> list[Command[Any, Any]]:
    """The commands one service handles."""
    return [c for (s, _, _), c in COMMANDS.items() if s == service]
