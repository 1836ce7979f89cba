"""The wire envelopes of commands (gateway -> services) and domain events (services -> anyone).

Both are versioned: ``type`` names what happened or is asked, ``version`` the shape of the
payload. A consumer that meets a version it does not know dead-letters the command rather
than guess.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field


def utcnow() -> datetime:
    """The current time, timezone-aware (UTC)."""
    return datetime.now(UTC)


class CommandEnvelope(BaseModel):
    """A command on a service's command topic, keyed by study session (or user)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command_id: UUID = Field(default_factory=uuid4)
    type: str = Field(min_length=1, max_length=100)
    version: int = Field(default=1, ge=1)
    request_id: UUID
    user_id: UUID
    session_id: UUID | None = None
    reply_to: str | None = Field(
        default=None, description="host:port of the gateway relay that holds the client"
    )
    issued_at: datetime = Field(default_factory=utcnow)
    payload: dict[str, Any] = Field(default_factory=dict)

    @property
    def key(self) -> bytes:
        """Partition key: one study session (or, without one, one user) stays in order."""
        return str(self.session_id or self.user_id).encode()


class EventEnvelope(BaseModel):
    """A domain event as integrators receive it on an event topic."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: UUID = Field(default_factory=uuid4)
    type: str
    version: int = Field(ge=1)
    occurred_at: datetime = Field(default_factory=utcnow)
    user_id: UUID
    session_id: UUID | None = None
    request_id: UUID | None = None
    payload: dict[str, Any]

    @property
    def domain(self) -> str:
        """The first part of the type (``plan`` of ``plan.generated``): names the topic."""
        return self.type.split(".", 1)[0]

    @property
    def key(self) -> bytes:
        """Partition key: events of one user stay in order."""
        return str(self.user_id).encode()
