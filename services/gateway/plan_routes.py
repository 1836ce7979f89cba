"""The plan routes of the HTTP API that are not made from the binding table, with the
original's shapes.

Each ``POST /api/plan/...`` route sends one ``plan.generate`` v1 command (the planner always
verifies; see ``services/planner/handlers.py``) and answers with its part of the result (the
three plain ones are declared in ``exammentor/contracts/bindings.py``):

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

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse

from exammentor.contracts.api import MAX_PLAN_LIST_LIMIT
from exammentor.contracts.bindings import BY_COMMAND
from exammentor.contracts.commands import PLAN_GENERATE
from exammentor.contracts.plan import PlanRequest
from exammentor.json_codec import dumps_bytes
from exammentor.messaging.dispatch import ResultTimeout
from exammentor.messaging.result_relay import RelayChunk
from services.gateway.core import CommandStream
from services.gateway.http_base import GatewayState, JsonResponse, User, body_schema
from services.gateway.http_commands import request_json, request_key

_PLAN_BODY = body_schema(PlanRequest)

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
    return dumps_bytes(line) + b"\n"


def plan_router(state: GatewayState) -> APIRouter:
    """The plan routes of one gateway instance.

    Args:
        state: What the routes use.

    Returns:
        The router, to include in the application.
    """
    router = APIRouter(tags=["plans"])
    core = state.core

    @router.post("/api/plan/stream-verified", openapi_extra=_PLAN_BODY)
    async def stream_verified(
        request: Request, user: User, session_id: SessionId = None
    ) -> Response:
        """NDJSON lines as the stages happen; the last is ``complete`` or ``error``."""
        # Entered here, not in the generator: the waiter must exist before the command is
        # published, and a broker that refuses it must still be a 503, not a 200 stream.
        stack = AsyncExitStack()
        run = await stack.enter_async_context(
            core.stream(
                BY_COMMAND[PLAN_GENERATE.key],
                user,
                await request_json(request),
                idempotency_key=request_key(request),
                session_id=session_id,
            )
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
        return JsonResponse(plan.model_dump(mode="json"))

    @router.get("/api/plans")
    async def list_plans(
        user: User,
        session_id: SessionId = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PLAN_LIST_LIMIT)] = 20,
    ) -> Response:
        """The user's stored plans, newest first (summaries)."""
        plans = await core.plans(user, session_id, limit)
        return JsonResponse(plans.model_dump(mode="json"))

    return router
