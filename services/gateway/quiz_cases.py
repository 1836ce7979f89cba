"""The quiz's use cases beyond "run a command", shared by the HTTP routes and gRPC.

Both transports call these with bodies already parsed by the core's validation, so they
refuse the same input the same way.
"""

from __future__ import annotations

from typing import Any, TypeVar
from uuid import UUID

from pydantic import BaseModel

from exammentor.contracts.commands import Command
from exammentor.contracts.quiz import (
    QUIZ_DIAGNOSE,
    LearnerMastery,
    MisconceptionDiagnosis,
    MisconceptionQuery,
    MisconceptionRecordView,
    MisconceptionRequest,
    SavedQuizQuery,
    SavedQuizView,
)
from exammentor.db import user_transaction
from exammentor.read_models import quiz as read_models
from services.gateway.core import CommandAnswer, GatewayCore, parse_uuid

P = TypeVar("P", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)


async def run_quiz_command(
    core: GatewayCore,
    command: Command[P, R],
    user: UUID,
    body: P,
    session_id: UUID | None = None,
) -> CommandAnswer[R]:
    """Runs one quiz command for the user (the session is checked by the core)."""
    return await core.run(command, user, body, session_id=session_id)


async def diagnose(
    core: GatewayCore, user: UUID, body: MisconceptionRequest
) -> CommandAnswer[MisconceptionDiagnosis]:
    """``quiz.diagnose`` with the body's ``session_id`` as the command's study session."""
    session_id = parse_uuid("session_id", body.session_id) if body.session_id else None
    return await core.run(QUIZ_DIAGNOSE, user, body, session_id=session_id)


async def mastery(core: GatewayCore, user: UUID) -> LearnerMastery:
    """The user's mastery per concept and topic, each with its evidence."""
    async with user_transaction(core.pool, user) as conn:
        return await read_models.learner_mastery(conn)


async def misconceptions(
    core: GatewayCore, user: UUID, query: MisconceptionQuery
) -> list[MisconceptionRecordView]:
    """The user's misconception records, optionally in one lifecycle state."""
    async with user_transaction(core.pool, user) as conn:
        return await read_models.misconception_views(conn, query.state)


async def saved_quiz(core: GatewayCore, user: UUID, query: SavedQuizQuery) -> SavedQuizView | None:
    """The latest saved quiz of a topic (the query's ``user_id`` is the token's user); None
    when none was saved."""
    async with user_transaction(core.pool, user) as conn:
        found = await read_models.saved_quiz(conn, query.topic_id)
    return None if found.created_at is None else found


def as_json(items: list[Any]) -> list[dict[str, Any]]:
    """Models as JSON-ready dicts."""
    return [i.model_dump(mode="json") for i in items]
