"""Study sessions: the original's study state machine and the shapes of its routes.

A session moves through phases by actions (the original's ``agent`` actions)::

    INTAKE --generate_plan--> PLANNING --start_topic--> LEARNING --take_quiz--> QUIZZING
    QUIZZING --submit_answers--> ANALYZING --next_topic--> PLANNING
                                 ANALYZING --complete--> COMPLETED

Any other move is refused and leaves the phase unchanged. Every save (and every other
event of the session, such as a misconception diagnosis) is appended to the session's audit
log atomically, numbered from 1.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal, get_args
from uuid import UUID

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

Phase = Literal["INTAKE", "PLANNING", "LEARNING", "QUIZZING", "ANALYZING", "COMPLETED"]
PHASES: tuple[Phase, ...] = get_args(Phase)

TRANSITIONS: dict[tuple[Phase, Phase], str] = {
    ("INTAKE", "PLANNING"): "generate_plan",
    ("PLANNING", "LEARNING"): "start_topic",
    ("LEARNING", "QUIZZING"): "take_quiz",
    ("QUIZZING", "ANALYZING"): "submit_answers",
    ("ANALYZING", "PLANNING"): "next_topic",
    ("ANALYZING", "COMPLETED"): "complete",
}
"""The allowed moves, each with the original's action name."""

MAX_EXAM_TYPE_CHARS = 100
MAX_CONTEXT_BYTES = 64_000
"""A session's context is a scratchpad for the front end, not a store for material."""
MAX_LIST_LIMIT = 100


class InvalidTransition(Exception):
    """A move the state machine does not allow; the message names both phases."""

    def __init__(self, current: Phase, wanted: Phase) -> None:
        allowed = sorted(to for (frm, to) in TRANSITIONS if frm == current)
        super().__init__(
            f"phase: a session in {current} cannot move to {wanted} "
            f"(from {current}: {', '.join(allowed) or 'no move'})"
        )
        self.current = current
        self.wanted = wanted
        self.allowed = allowed


def transition_action(current: Phase, wanted: Phase) -> str:
    """The action a move stands for (``save`` when the phase stays).

    Raises:
        InvalidTransition: The state machine does not allow the move.
    """
    if current == wanted:
        return "save"
    action = TRANSITIONS.get((current, wanted))
    if action is None:
        raise InvalidTransition(current, wanted)
    return action


class StartSessionRequest(BaseModel):
    """Body of ``POST /api/session/start``. The user comes from the token; the original's
    clients also send ``user_id``, accepted only when it is the token's user."""

    model_config = ConfigDict(extra="forbid")

    exam_type: str = Field(default="none", min_length=1, max_length=MAX_EXAM_TYPE_CHARS)
    user_id: UUID | None = None


class SessionStarted(BaseModel):
    """A new session's id."""

    session_id: UUID


class SessionState(BaseModel):
    """Where a session is: its phase and the front end's context."""

    phase: Phase
    context: dict[str, Any]


class SaveSessionRequest(BaseModel):
    """Body of ``POST /api/session/{id}/save``: the context, and the phase to move to.

    ``context_data`` is the original client's name of ``context`` (its server read
    ``context``): either is accepted, both at once is refused naming ``context_data``.
    """

    model_config = ConfigDict(extra="forbid")

    context: dict[str, Any] = Field(
        default_factory=dict, validation_alias=AliasChoices("context", "context_data")
    )
    phase: Phase | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_context(cls, data: Any) -> Any:
        if isinstance(data, dict) and "context" in data and "context_data" in data:
            # Raised as a ValidationError of its own so the error names the field (a
            # validator's own errors have no location).
            raise ValidationError.from_exception_data(
                cls.__name__,
                [
                    InitErrorDetails(
                        type=PydanticCustomError(
                            "context_given_twice",
                            "context_data is the original's name of context: send one of them",
                        ),
                        loc=("context_data",),
                        input=data["context_data"],
                    )
                ],
            )
        return data


class SessionSaved(BaseModel):
    """The answer to a save: the phase the session is now in."""

    ok: bool = True
    phase: Phase


class Session(BaseModel):
    """One session in a list."""

    session_id: UUID
    exam_type: str
    phase: Phase
    created_at: dt.datetime
    updated_at: dt.datetime


class SessionList(BaseModel):
    """The caller's sessions, newest first."""

    sessions: list[Session]


class SessionHistoryEntry(BaseModel):
    """One entry of a session's audit log."""

    seq: int = Field(ge=1)
    at: dt.datetime
    action: str
    from_phase: Phase
    to_phase: Phase
    data: dict[str, Any] = Field(default_factory=dict)


class SessionHistory(BaseModel):
    """A session's audit log, oldest first."""

    entries: list[SessionHistoryEntry]
