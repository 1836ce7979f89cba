"""Kafka topic names: part of the contract, so integrators name topics the way services do.

- ``{prefix}.cmd.{service}``: commands for one service, keyed by study session.
- ``{prefix}.cmd.{service}.dlq``: commands that failed validation or every retry.
- ``{prefix}.evt.{domain}``: versioned domain events for integrators, keyed by user.
"""

from __future__ import annotations

from typing import Literal, get_args

Service = Literal["planner", "tutor", "quiz", "autopilot"]
"""A worker service: each consumes one command topic in a consumer group of its own."""

SERVICES: tuple[Service, ...] = get_args(Service)
EVENT_DOMAINS = ("plan", "tutor", "quiz", "learner", "misconception", "autopilot", "system")


def command_topic(prefix: str, service: str) -> str:
    """The command topic of ``service``."""
    return f"{prefix}.cmd.{service}"


def dead_letter_topic(prefix: str, service: str) -> str:
    """The dead-letter topic of ``service``'s commands."""
    return f"{command_topic(prefix, service)}.dlq"


def event_topic(prefix: str, domain: str) -> str:
    """The event topic of one domain (``plan``, ``quiz`` ...)."""
    return f"{prefix}.evt.{domain}"


def all_topics(prefix: str) -> list[str]:
    """Every topic the project uses."""
    names = [command_topic(prefix, s) for s in SERVICES]
    names += [dead_letter_topic(prefix, s) for s in SERVICES]
    names += [event_topic(prefix, d) for d in EVENT_DOMAINS]
    return names
