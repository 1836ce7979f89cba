"""Which service handles which command type: the gateway's routing table.

Payload models live with the domain contracts (``exammentor.contracts.plan`` ...); each
command type has a version, and a service dead-letters versions it does not know.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CommandType:
    """A command's name, payload version and the service that handles it."""

    name: str
    version: int
    service: str


PLAN_GENERATE = CommandType("plan.generate", 1, "planner")
"""Route, schedule, verify, fix and explain a study plan (payload: ``PlanRequest``).

Every plan route sends it (generate, generate-verified, -with-history, stream-verified):
verification is exact and costs no model call, so every plan is verified, and the routes
differ only in what they return. Result: the verified-plan history plus ``plan_id``,
``verification``, ``routing`` ..., or ``{needs_clarification: true, clarifying_question}``.
"""


def echo(service: str) -> CommandType:
    """``system.echo`` v1 to one service: the pipeline's no-LLM round trip."""
    return CommandType("system.echo", 1, service)
