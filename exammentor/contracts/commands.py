"""Every command, declared once: name, version, owning service, payload, result and errors.

A :class:`Command` is the whole contract of one command type. Everything else is derived
from it:

- the worker registers a handler against it (a handler for another service's command fails
  at start-up) and dead-letters a ``type@version`` no declaration names;
- the handler returns the declared result model, and a refusal must use one of the declared
  error codes (an undeclared code is a bug: it is retried and dead-lettered, never shown);
- the gateway publishes to the owning service's topic and answers each error code with the
  HTTP status and the gRPC status code declared beside it.

Adding a command is one declaration (here, or in its domain's contract module, listed in
:mod:`exammentor.contracts.catalog`), one handler, and one thin route per transport.
A new field with a default is a compatible change within a version; anything else is a new
version, handled beside the old one until every gateway sends the new one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from exammentor.contracts.kafka_topics import SERVICES, Service
from exammentor.contracts.plan import PlanRequest, PlanResult

P = TypeVar("P", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)


@dataclass(frozen=True)
class ErrorCode:
    """A machine-readable reason a request ends in error, and how each transport says it.

    ``grpc_status`` is the name of a ``grpc.StatusCode`` (a string, so the contracts do not
    depend on grpcio).
    """

    code: str
    http_status: int
    grpc_status: str
    summary: str


INVALID_REQUEST = ErrorCode(
    "invalid_request", 422, "INVALID_ARGUMENT", "A field is invalid; the message names it."
)
UNAUTHENTICATED = ErrorCode(
    "unauthenticated", 401, "UNAUTHENTICATED", "No bearer token, or one that is not valid."
)
BAD_CREDENTIALS = ErrorCode(
    "bad_credentials", 401, "UNAUTHENTICATED", "Unknown name or wrong password."
)
NAME_TAKEN = ErrorCode("name_taken", 409, "ALREADY_EXISTS", "Another user has this name.")
NOT_FOUND = ErrorCode(
    "not_found", 404, "NOT_FOUND", "No such resource of the caller's (another user's is none)."
)
SESSION_NOT_FOUND = ErrorCode(
    "session_not_found", 404, "NOT_FOUND", "No study session with this id of the caller's."
)
INVALID_TRANSITION = ErrorCode(
    "invalid_transition",
    409,
    "FAILED_PRECONDITION",
    "The study session's phase does not allow this; the message names both phases.",
)
USER_MISMATCH = ErrorCode(
    "user_mismatch",
    403,
    "PERMISSION_DENIED",
    "A user_id in the body names someone other than the token's user.",
)
CORS_REFUSED = ErrorCode(
    "cors_refused",
    403,
    "PERMISSION_DENIED",
    "A browser's preflight asked for an origin, method or header the gateway does not allow; "
    "the message names which (origins: EXAMMENTOR_CORS_ORIGINS).",
)
BODY_TOO_LARGE = ErrorCode(
    "body_too_large", 413, "INVALID_ARGUMENT", "The request body is over the size limit."
)
UNAVAILABLE = ErrorCode(
    "unavailable", 503, "UNAVAILABLE", "The command could not be queued; retry later."
)
DEAD_LETTERED = ErrorCode(
    "dead_lettered",
    502,
    "INTERNAL",
    "The command failed on every attempt and was set aside for an operator.",
)
TOO_MANY_ATTEMPTS = ErrorCode(
    "too_many_attempts",
    429,
    "RESOURCE_EXHAUSTED",
    "Too many register or login attempts for this name or from this address; retry after "
    "retry_after_s seconds (HTTP: the Retry-After header).",
)
MAINTENANCE = ErrorCode(
    "maintenance",
    503,
    "UNAVAILABLE",
    "The service is in maintenance: writes are refused, reads work; retry after "
    "retry_after_s seconds (HTTP: the Retry-After header; gRPC: retry-after metadata).",
)

STILL_RUNNING = ErrorCode(
    "still_running",
    202,
    "DEADLINE_EXCEEDED",
    "No result within the gateway's wait; the request goes on: fetch it by its id.",
)

QUEUED = ErrorCode(
    "queued",
    202,
    "UNAVAILABLE",
    "The command is stored but the broker did not take it in time; it is sent when the broker"
    " answers. Follow the request by its id, or retry with the same Idempotency-Key.",
)
IDEMPOTENCY_CONFLICT = ErrorCode(
    "idempotency_conflict",
    409,
    "ALREADY_EXISTS",
    "The Idempotency-Key was used for a different request of this user.",
)
EXPIRED = ErrorCode(
    "expired",
    504,
    "DEADLINE_EXCEEDED",
    "No service took the request, or it did not finish, in time; send it again.",
)

GATEWAY_ERRORS: tuple[ErrorCode, ...] = (
    INVALID_REQUEST,
    UNAUTHENTICATED,
    BAD_CREDENTIALS,
    NAME_TAKEN,
    NOT_FOUND,
    SESSION_NOT_FOUND,
    INVALID_TRANSITION,
    USER_MISMATCH,
    CORS_REFUSED,
    BODY_TOO_LARGE,
    UNAVAILABLE,
    DEAD_LETTERED,
    STILL_RUNNING,
    TOO_MANY_ATTEMPTS,
    MAINTENANCE,
)
"""Errors the gateway itself answers, before or around any command."""

COMMAND_ERRORS: tuple[ErrorCode, ...] = (DEAD_LETTERED,)
"""Errors any command may end with, besides its own."""


@dataclass(frozen=True)
class Command(Generic[P, R]):
    """One command type at one version: who handles it, what it takes, what it returns."""

    name: str
    version: int
    service: Service
    payload: type[P]
    result: type[R]
    errors: tuple[ErrorCode, ...] = ()
    summary: str = ""
    _codes: dict[str, ErrorCode] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.service not in SERVICES:
            raise ValueError(f"{self.name}: unknown service {self.service!r}")
        codes = {e.code: e for e in (*COMMAND_ERRORS, *self.errors)}
        object.__setattr__(self, "_codes", codes)

    @property
    def key(self) -> str:
        """``name@version``, as logs and dead letters name it."""
        return f"{self.name}@{self.version}"

    def declares(self, code: str) -> bool:
        """Whether the command may end with the error ``code``."""
        return code in self._codes

    def error(self, code: str) -> ErrorCode:
        """The declaration of one of this command's error codes.

        Raises:
            KeyError: The command does not declare ``code``.
        """
        return self._codes[code]


class EchoPayload(BaseModel):
    """``system.echo`` v1: a command that needs no model, through the whole pipeline."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(default="", max_length=10_000)


class EchoResult(BaseModel):
    """What ``system.echo`` returns: the text, and which service answered."""

    echo: str
    service: Service


def _echo(service: Service) -> Command[EchoPayload, EchoResult]:
    return Command(
        "system.echo",
        1,
        service,
        EchoPayload,
        EchoResult,
        summary=f"Echo through the {service}: the pipeline's no-model round trip.",
    )


SYSTEM_ECHO: dict[Service, Command[EchoPayload, EchoResult]] = {s: _echo(s) for s in SERVICES}
"""``system.echo`` v1, one declaration per service (every worker answers it)."""

SYLLABUS_TOO_LARGE = ErrorCode(
    "syllabus_too_large", 413, "INVALID_ARGUMENT", "syllabus_text is over the size limit."
)

PLAN_GENERATE: Command[PlanRequest, PlanResult] = Command(
    "plan.generate",
    1,
    "planner",
    PlanRequest,
    PlanResult,
    errors=(
        SESSION_NOT_FOUND,
        SYLLABUS_TOO_LARGE,
        ErrorCode(
            "unknown_exam", 422, "INVALID_ARGUMENT", "exam_type names no exam the planner knows."
        ),
        ErrorCode(
            "capacity_exceeded",
            422,
            "FAILED_PRECONDITION",
            "The syllabus does not fit the days; the error carries the hours.",
        ),
        ErrorCode("syllabus_empty", 422, "INVALID_ARGUMENT", "No topic could be read."),
        ErrorCode("no_study_days", 422, "INVALID_ARGUMENT", "No day is left to study on."),
        ErrorCode("planning_failed", 422, "FAILED_PRECONDITION", "The plan could not be made."),
    ),
    summary=(
        "Route, schedule, verify, fix and explain a study plan. Every plan route sends it: "
        "verification is exact and costs no model call, so every plan is verified."
    ),
)
