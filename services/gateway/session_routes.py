"""Study sessions over HTTP, with the original's routes (the user comes from the token only).

- ``POST /api/session/start`` ``{exam_type}`` -> ``{session_id}``;
- ``GET /api/session/{id}/state`` -> ``{phase, context}``;
- ``POST /api/session/{id}/save`` ``{context, phase}``: the phase may also come as a query
  parameter (the original's server wanted it there while its client sent it in the body);
  a move the state machine does not allow is a 409 naming both phases;
- ``GET /api/session/{id}/history``: the audit log; ``GET /api/sessions``: the caller's
  sessions. Another user's session is a 404, as is one that does not exist.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query

from exammentor.contracts.sessions import (
    MAX_LIST_LIMIT,
    Phase,
    SaveSessionRequest,
    SessionHistory,
    SessionList,
    SessionSaved,
    SessionStarted,
    SessionState,
    StartSessionRequest,
)
from services.gateway.http_base import GatewayState, User, body_schema, json_body
from services.gateway.inputs import parse


def session_router(state: GatewayState) -> APIRouter:
    """The study-session routes of one gateway instance."""
    router = APIRouter(tags=["sessions"])
    core = state.core

    @router.post(
        "/api/session/start", openapi_extra=body_schema(StartSessionRequest), status_code=200
    )
    async def start(
        user: User,
        body: Annotated[StartSessionRequest, Depends(json_body(StartSessionRequest))],
    ) -> SessionStarted:
        """A new study session in ``INTAKE``."""
        return await core.start_session(user, body)

    @router.get("/api/session/{session_id}/state")
    async def get_state(session_id: UUID, user: User) -> SessionState:
        """The session's phase and context."""
        return await core.session_state(user, session_id)

    @router.post("/api/session/{session_id}/save", openapi_extra=body_schema(SaveSessionRequest))
    async def save(
        session_id: UUID,
        user: User,
        body: Annotated[SaveSessionRequest, Depends(json_body(SaveSessionRequest))],
        phase: Annotated[Phase | None, Query(description="The original's form of `phase`.")] = None,
    ) -> SessionSaved:
        """Stores the context and, when allowed, moves to ``phase``."""
        if phase is not None and body.phase is None:
            body = parse(SaveSessionRequest, {**body.model_dump(), "phase": phase})
        return await core.save_session(user, session_id, body)

    @router.get("/api/session/{session_id}/history")
    async def history(session_id: UUID, user: User) -> SessionHistory:
        """The session's audit log, oldest first."""
        return await core.session_history(user, session_id)

    @router.get("/api/sessions")
    async def list_sessions(
        user: User, limit: Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT)] = 20
    ) -> SessionList:
        """The caller's sessions, newest first."""
        return await core.sessions(user, limit)

    return router
