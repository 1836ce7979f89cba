"""The autopilot routes of the HTTP API, with the original's shapes (start, pause, resume,
stop and answer are plain commands, declared in ``exammentor/contracts/bindings.py``; the
reads are here):

- ``POST /api/autopilot/start?session_id=`` ``{study_plan, exam_type, duration_minutes}``
  (and the original's ``user_id``, the token's user only)
  -> ``{session_id, status, target_duration_minutes, started_at, run_number}``;
- ``GET /api/autopilot/status/{id}``: the run's status, steps and present content;
  ``current_phase`` by the original's names (``quizzing`` while a question waits),
  ``phase_detail`` the precise phase (``awaiting_answer``);
- ``POST /api/autopilot/pause|resume|stop/{id}`` -> ``{status, session_id}``;
- ``POST /api/autopilot/answer/{id}`` ``{question_id, answer_index}`` ->
  ``{status: answer_received}``; without ``question_id`` (the original's body), the
  question that waits;
- ``GET /api/autopilot/watch/{id}?after=&run=``: NDJSON, one ``AutopilotWatchEvent`` per
  line with its ``seq``, until the run ends (resume with the last ``seq`` seen; ``run``
  reads an earlier run's log).

Refusals: 404 for an unknown session or one of another user, 400 when the run's state does
not allow the request, 422 for a bad body (the field named), each with the reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query
from fastapi.responses import Response, StreamingResponse

from exammentor.contracts.autopilot import AutopilotStatusResponse
from services.gateway.http_base import GatewayState, User
from services.gateway.reads import MAX_SEQ, WatchQuery


def autopilot_router(state: GatewayState) -> APIRouter:
    """The autopilot's read routes of one gateway instance."""
    router = APIRouter(tags=["autopilot"])
    core = state.core

    @router.get("/api/autopilot/status/{session_id}")
    async def status(session_id: UUID, user: User) -> AutopilotStatusResponse:
        """The run's status, steps, present lesson or waiting question (never its answer)."""
        return await core.autopilot_status(user, session_id)

    @router.get("/api/autopilot/watch/{session_id}")
    async def watch(
        session_id: UUID,
        user: User,
        after: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0,
        run: Annotated[int | None, Query(ge=1, le=MAX_SEQ)] = None,
    ) -> Response:
        """NDJSON: the run's steps and state changes as they happen, each with its ``seq``
        (the newest run, or an earlier one by its ``run`` number)."""
        events = core.autopilot_watch(user, session_id, WatchQuery(after=after, run=run))
        # The first read happens here, so an unknown session is a 404, not a 200 stream.
        try:
            first = await anext(events)
        except StopAsyncIteration:
            first = None

        async def lines() -> AsyncIterator[bytes]:
            if first is not None:
                yield (first.model_dump_json() + "\n").encode()
                async for event in events:
                    yield (event.model_dump_json() + "\n").encode()

        return StreamingResponse(
            lines(), media_type="application/x-ndjson", headers={"Cache-Control": "no-cache"}
        )

    return router
