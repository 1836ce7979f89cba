"""The gateway's own API shapes: users, errors, stored requests and plans, stream stages.

Command payloads and results are declared with their commands
(:mod:`exammentor.contracts.commands`); these are the shapes around them. Each has a twin
message in ``proto/gateway.proto`` with the same fields (a test keeps them in step).
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

from exammentor.contracts.kafka_topics import Service
from exammentor.contracts.plan import PlanVerification, StudyPlan

MAX_NAME_CHARS = 80
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 256
MAX_PLAN_LIST_LIMIT = 100
MAX_REQUEST_LIST_LIMIT = 100


class Credentials(BaseModel):
    """Name and password, for register and login."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    password: str = Field(min_length=MIN_PASSWORD_CHARS, max_length=MAX_PASSWORD_CHARS)

    @field_validator("name")
    @classmethod
    def _printable(cls, value: str) -> str:
        value = value.strip()
        if not value or not value.isprintable():
            raise ValueError("name must be printable text")
        return value


class Token(BaseModel):
    """A bearer token and whom it names."""

    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    user_id: UUID
    expires_in: int
    id: UUID
    """``user_id`` again: the original's login answered the user row, and its pages keep
    ``id`` as the user's id (sent back as ``user_id``, which must be the token's user)."""
    name: str
    """The user's name, as the original's login answered it."""


class Error(BaseModel):
    """A final error: a declared code, a message naming the field, details to act on."""

    code: str
    message: str
    details: dict[str, Any] = Field(default_factory=dict)
    request_id: UUID | None = None


class StoredRequest(BaseModel):
    """A request as stored: its status and, once it ended, its result or error."""

    request_id: UUID
    kind: str
    status: str
    result: dict[str, Any] | None = None
    error: Error | None = None
    created_at: dt.datetime
    completed_at: dt.datetime | None = None


class RequestList(BaseModel):
    """The user's newest requests."""

    requests: list[StoredRequest]


class EchoRequest(BaseModel):
    """Body of ``POST /api/system/echo``: a command that needs no model."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(default="", max_length=10_000)
    service: Service = "planner"


class PlanStatus(BaseModel):
    """A ``status`` stage of a plan request."""

    stage: str
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class PlanDraft(BaseModel):
    """A ``draft`` stage: one version of the plan."""

    version: int
    plan: StudyPlan


class PlanCheck(BaseModel):
    """A ``verification`` stage: the exact verification of one version."""

    version: int
    result: PlanVerification


class StoredPlan(BaseModel):
    """One of the user's stored plans, with its verification and history."""

    plan_id: UUID
    session_id: UUID | None = None
    request_id: UUID
    created_at: dt.datetime
    from_cache: bool
    plan: StudyPlan
    verification: PlanVerification | None = None
    history: dict[str, Any] | None = None


class PlanSummary(BaseModel):
    """A stored plan in a list."""

    plan_id: UUID
    session_id: UUID | None = None
    request_id: UUID
    created_at: dt.datetime
    from_cache: bool
    exam_name: str | None = None
    total_days: int | None = None
    coverage_percent: float | None = None
    is_valid: bool | None = None


class PlanList(BaseModel):
    """The user's stored plans, newest first."""

    plans: list[PlanSummary]
