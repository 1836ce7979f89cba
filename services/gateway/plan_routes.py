"""The plan routes of the HTTP API, with the original's shapes.

Each ``POST /api/plan/...`` route sends one ``plan.generate`` v1 command (the planner always
verifies; see ``services/planner/handlers.py``) and answers with its part of the result:

- ``generate`` and ``generate-verified``: the final ``StudyPlan``;
- ``generate-verified-with-history``: the whole :class:`~exammentor.contracts.plan.PlanResult`
  (``final_plan``, ``versions``, ``total_iterations``, ``self_correction_applied``,
  ``verification_summary``, ``from_cache`` ...);
- ``stream-verified``: NDJSON, one line per stage as it happens: ``status``, ``draft``
  (``version``, ``plan``), ``verification`` (``version``, ``result``), then ``complete``
  (the result under ``final_result``, as the original's client reads it) or ``error``.

A request the planner cannot plan without guessing is answered ``200`` with
``{needs_clarification: true, clarifying_question, options}`` on every route.

``GET /api/plans/{plan_id}`` and ``GET /api/plans`` read the user's stored plans.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse, Response, StreamingResponse

from exammentor.contracts.api import MAX_PLAN_LIST_LIMIT
from exammentor.contracts.commands import PLAN_GENERATE
from exammentor.contracts.plan import PlanRequest, PlanResult
from exammentor.messaging.dispatch import ResultTimeout
from exammentor.messaging.result_relay import RelayChunk
from services.gateway.core import CommandStream
from services.gateway.http_base import (
    GatewayState,
    User,
    body_schema,
    json_body,
    pending_response,
)

_PLAN_BODY = body_schema(PlanRequest)
_CLARIFICATION = {"needs_clarification", "clarifying_question", "options", "routing"}

Body = Annotated[PlanRequest, Depends(json_body(PlanRequest, PLAN_GENERATE))]
SessionId = Annotated[
    UUID | None, Query(description="The study session the plan belongs to (optional).")
]


def ndjson_line(run: CommandStream, chunk: RelayChunk) -> dict[str, Any]:
    """One relayed chunk as a line of the ``stream-verified`` response.

    Args:
        run: The command's stream (for its error declarations).
        chunk: Progress, the final result or an error.

    Returns:
        ``{type, ...}``: progress as the planner sent it, ``complete`` with the result under
        ``final_result``, ``error`` with its code, message and request id.
    """
    if chunk.kind == "result":
        return {
            "type": "complete",
            "seq": chunk.seq,
            "request_id": str(run.request_id),
            "final_result": chunk.data,
        }
    if chunk.kind == "error":
        return {"type": "error", "seq": chunk.seq, **run.error(chunk).body()}
    return {"type": "status", **chunk.data, "seq": chunk.seq}


def _encode(line: dict[str, Any]) -> bytes:
    return (json.dumps(line, separators=(",", ":")) + "\n").encode()


def plan_router(state: GatewayState) -> APIRouter:
    """The plan routes of one gateway instance.

    Args:
        state: What the routes use.

    Returns:
        The router, to include in the application.
    """
    router = APIRouter(tags=["plans"])
    core = state.core

    async def answer(
        user: UUID, body: PlanRequest, session_id: UUID | None, *, history: bool
    ) -> Response:
        found = await core.run(PLAN_GENERATE, user, body, session_id=session_id)
        if found.result is None:
            return pending_response(found.request_id)
        result: PlanResult = found.result
        headers = {"X-Request-Id": str(found.request_id)}
        if result.needs_clarification:
            question = result.model_dump(mode="json", include=_CLARIFICATION)
            return JSONResponse(question, headers=headers)
        data = result.model_dump(mode="json")
        headers["X-Plan-Id"] = str(result.plan_id)
        headers["X-From-Cache"] = "true" if result.from_cache else "false"
        return JSONResponse(data if history else data["final_plan"], headers=headers)

    @router.post("/api/plan/generate", openapi_extra=_PLAN_BODY)
    async def generate(user: User, body: Body, session_id: SessionId = None) -> Response:
        """A study plan (``StudyPlan``), verified."""
        return await answer(user, body, session_id, history=False)

    @router.post("/api/plan/generate-verified", openapi_extra=_PLAN_BODY)
    async def generate_verified(user: User, body: Body, session_id: SessionId = None) -> Response:
        """The final plan after the verify-and-fix loop (``StudyPlan``)."""
        return await answer(user, body, session_id, history=False)

    @router.post("/api/plan/generate-verified-with-history", openapi_extra=_PLAN_BODY)
    async def generate_verified_with_history(
        user: User, body: Body, session_id: SessionId = None
    ) -> Response:
        """The final plan with every version, its verification and the diffs."""
        return await answer(user, body, session_id, history=True)

    @router.post("/api/plan/stream-verified", openapi_extra=_PLAN_BODY)
    async def stream_verified(user: User, body: Body, session_id: SessionId = None) -> Response:
        """NDJSON lines as the stages happen; the last is ``complete`` or ``error``."""
        # Entered here, not in the generator: the waiter must exist before the command is
        # published, and a broker that refuses it must still be a 503, not a 200 stream.
        stack = AsyncExitStack()
        run = await stack.enter_async_context(
            core.stream(PLAN_GENERATE, user, body, session_id=session_id)
        )

        async def lines() -> AsyncIterator[bytes]:
            last_seq = 0
            try:
                yield _encode(
                    {
                        "type": "status",
                        "seq": 0,
                        "stage": "accepted",
                        "message": "Request accepted",
                        "request_id": str(run.request_id),
                    }
                )
                async for chunk in run.chunks():
                    last_seq = chunk.seq
                    yield _encode(ndjson_line(run, chunk))
            except ResultTimeout:
                yield _encode(
                    {
                        "type": "error",
                        "seq": last_seq,
                        "code": "still_running",
                        "message": "still running; fetch the result later",
                        "request_id": str(run.request_id),
                        "location": f"/api/requests/{run.request_id}/events?after={last_seq}",
                    }
                )
            finally:
                await stack.aclose()

        return StreamingResponse(
            lines(),
            media_type="application/x-ndjson",
            headers={"X-Request-Id": str(run.request_id), "Cache-Control": "no-cache"},
        )

    @router.get("/api/plans/{plan_id}")
    async def get_plan(plan_id: UUID, user: User) -> Response:
        """One of the user's stored plans, with its verification and history."""
        plan = await core.stored_plan(user, plan_id)
        return JSONResponse(plan.model_dump(mode="json"))

    @router.get("/api/plans")
    async def list_plans(
        user: User,
        session_id: SessionId = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PLAN_LIST_LIMIT)] = 20,
    ) -> Response:
        """The user's stored plans, newest first (summaries)."""
        plans = await core.plans(user, session_id, limit)
        return JSONResponse(plans.model_dump(mode="json"))

    return router
