"""The plan routes of the HTTP API, with the original's shapes.

Each ``POST /api/plan/...`` route sends one ``plan.generate`` v1 command (the planner always
verifies; see ``services/planner/handlers.py``) and answers with its part of the result:

- ``generate`` and ``generate-verified``: the final ``StudyPlan``;
- ``generate-verified-with-history``: ``{final_plan, versions, total_iterations,
  self_correction_applied, verification_summary, from_cache, ...}``;
- ``stream-verified``: NDJSON, one line per stage as it happens: ``status``, ``draft``
  (``version``, ``plan``), ``verification`` (``version``, ``result``), then ``complete``
  (the history) or ``error``.

A request the planner cannot plan without guessing is answered ``200`` with
``{needs_clarification: true, clarifying_question, options}`` on every route.

Bodies are read here rather than by FastAPI so that bad input gets the right status and
names the field: a body that is not UTF-8 or not JSON, a blank goal, days out of range
-> 422; a syllabus over the limit -> 413 with the limit. Nothing is stored for them.

``GET /api/plans/{plan_id}`` and ``GET /api/plans`` read the user's stored plans.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError

from exammentor.contracts.commands import PLAN_GENERATE
from exammentor.contracts.plan import MAX_SYLLABUS_CHARS, PlanRequest
from exammentor.db import user_transaction
from exammentor.relay import RelayChunk
from exammentor.validation import field_name
from services.gateway.dispatch import BrokerUnavailable, ResultTimeout
from services.gateway.http_base import (
    ApiError,
    GatewayState,
    User,
    error_response,
    pending_response,
    run_command,
)
from services.planner import repo as plans

_PLAN_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": PlanRequest.model_json_schema()}},
    }
}


async def plan_request(request: Request) -> PlanRequest:
    """The body as a :class:`PlanRequest`, or an error naming the field and the reason.

    Args:
        request: The HTTP request.

    Returns:
        The validated request.

    Raises:
        ApiError: 413 for a syllabus over the limit, 422 for anything else invalid.
    """
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        reason = f"not UTF-8 text (invalid byte at position {exc.start})"
        raise ApiError(
            422,
            "invalid_request",
            f"body: {reason}",
            errors=[{"field": "body", "reason": reason, "type": "text_not_utf8"}],
        ) from exc
    try:
        # json.loads keeps a lone surrogate ("\ud800"), so the model's check can name the
        # field that holds it; pydantic's own parser would only say "invalid JSON".
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        reason = f"not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        raise ApiError(
            422,
            "invalid_request",
            f"body: {reason}",
            errors=[{"field": "body", "reason": reason, "type": "json_invalid"}],
        ) from exc
    try:
        return PlanRequest.model_validate(data)
    except ValidationError as exc:
        errors = [
            {"field": field_name(err["loc"]), "reason": err["msg"], "type": err["type"]}
            for err in exc.errors(include_url=False)
        ]
        if any(err["type"] == "syllabus_too_large" for err in errors):
            raise ApiError(
                413,
                "syllabus_too_large",
                f"syllabus_text is over the limit of {MAX_SYLLABUS_CHARS:,} characters",
                limit=MAX_SYLLABUS_CHARS,
                errors=errors,
            ) from exc
        message = "; ".join(f"{err['field']}: {err['reason']}" for err in errors)
        raise ApiError(422, "invalid_request", message, errors=errors) from exc


Body = Annotated[PlanRequest, Depends(plan_request)]
SessionId = Annotated[
    UUID | None, Query(description="The study session the plan belongs to (optional).")
]


def ndjson_line(chunk: RelayChunk) -> dict[str, Any]:
    """One relayed chunk as a line of the ``stream-verified`` response.

    Args:
        chunk: Progress, the final result or an error.

    Returns:
        ``{type, ...}``: progress as the planner sent it, ``complete`` with the result,
        ``error`` with its code and message.
    """
    if chunk.kind == "result":
        return {"type": "complete", **chunk.data}
    if chunk.kind == "error":
        return {"type": "error", **chunk.data}
    return {"type": "status", **chunk.data}


def _encode(line: dict[str, Any]) -> bytes:
    return (json.dumps(line, separators=(",", ":")) + "\n").encode()


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    """A stored row with its ids and timestamps as JSON strings."""
    return {
        key: str(value) if isinstance(value, UUID | dt.datetime) else value
        for key, value in row.items()
    }


def plan_router(state: GatewayState) -> APIRouter:
    """The plan routes of one gateway instance.

    Args:
        state: What the routes use (pool, dispatcher, timeout).

    Returns:
        The router, to include in the application.
    """
    router = APIRouter(tags=["plans"])

    async def check_session(user: UUID, session_id: UUID | None) -> None:
        if session_id is None:
            return
        async with user_transaction(state.pool, user) as conn:
            if not await plans.session_exists(conn, session_id):
                raise ApiError(
                    404, "session_not_found", f"session_id: no study session {session_id}"
                )

    async def run(
        user: UUID, body: PlanRequest, session_id: UUID | None
    ) -> tuple[UUID, RelayChunk | None]:
        await check_session(user, session_id)
        return await run_command(
            state, PLAN_GENERATE, user, body.model_dump(mode="json"), session_id=session_id
        )

    def answer(request_id: UUID, chunk: RelayChunk | None, *, history: bool) -> Response:
        if chunk is None:
            return pending_response(request_id)
        if chunk.kind == "error":
            return error_response(request_id, chunk)
        headers = {"X-Request-Id": str(request_id)}
        data = chunk.data
        if data.get("needs_clarification"):
            return JSONResponse(data, headers=headers)
        headers["X-Plan-Id"] = str(data.get("plan_id", ""))
        headers["X-From-Cache"] = "true" if data.get("from_cache") else "false"
        return JSONResponse(data if history else data["final_plan"], headers=headers)

    @router.post("/api/plan/generate", openapi_extra=_PLAN_BODY)
    async def generate(user: User, body: Body, session_id: SessionId = None) -> Response:
        """A study plan (``StudyPlan``), verified."""
        request_id, chunk = await run(user, body, session_id)
        return answer(request_id, chunk, history=False)

    @router.post("/api/plan/generate-verified", openapi_extra=_PLAN_BODY)
    async def generate_verified(user: User, body: Body, session_id: SessionId = None) -> Response:
        """The final plan after the verify-and-fix loop (``StudyPlan``)."""
        request_id, chunk = await run(user, body, session_id)
        return answer(request_id, chunk, history=False)

    @router.post("/api/plan/generate-verified-with-history", openapi_extra=_PLAN_BODY)
    async def generate_verified_with_history(
        user: User, body: Body, session_id: SessionId = None
    ) -> Response:
        """The final plan with every version, its verification and the diffs."""
        request_id, chunk = await run(user, body, session_id)
        return answer(request_id, chunk, history=True)

    @router.post("/api/plan/stream-verified", openapi_extra=_PLAN_BODY)
    async def stream_verified(user: User, body: Body, session_id: SessionId = None) -> Response:
        """NDJSON lines as the stages happen; the last is ``complete`` or ``error``."""
        await check_session(user, session_id)
        # Entered here, not in the generator: the waiter must exist before the command is
        # published, and a broker that refuses it must still be a 503, not a 200 stream.
        stack = AsyncExitStack()
        try:
            dispatched = await stack.enter_async_context(
                state.dispatcher.dispatch(
                    PLAN_GENERATE, user, body.model_dump(mode="json"), session_id=session_id
                )
            )
        except BrokerUnavailable as exc:
            await stack.aclose()
            raise ApiError(503, "unavailable", "the command could not be queued; retry") from exc
        request_id = dispatched.request_id

        async def lines() -> AsyncIterator[bytes]:
            try:
                yield _encode(
                    {
                        "type": "status",
                        "stage": "accepted",
                        "message": "Request accepted",
                        "request_id": str(request_id),
                    }
                )
                async for chunk in dispatched.chunks(state.request_timeout_s):
                    yield _encode(ndjson_line(chunk))
            except ResultTimeout:
                yield _encode(
                    {
                        "type": "error",
                        "code": "timeout",
                        "message": "still running; fetch the result later",
                        "request_id": str(request_id),
                        "location": f"/api/requests/{request_id}",
                    }
                )
            finally:
                await stack.aclose()

        return StreamingResponse(
            lines(),
            media_type="application/x-ndjson",
            headers={"X-Request-Id": str(request_id), "Cache-Control": "no-cache"},
        )

    @router.get("/api/plans/{plan_id}")
    async def get_plan(plan_id: UUID, user: User) -> Response:
        """One of the user's stored plans, with its verification and history."""
        async with user_transaction(state.pool, user) as conn:
            row = await plans.get_study_plan(conn, plan_id)
        if row is None:
            raise ApiError(404, "not_found", f"no plan {plan_id}")
        return JSONResponse(_jsonable(row))

    @router.get("/api/plans")
    async def list_plans(
        user: User,
        session_id: SessionId = None,
        limit: Annotated[int, Query(ge=1, le=plans.MAX_LIST_LIMIT)] = 20,
    ) -> Response:
        """The user's stored plans, newest first (summaries)."""
        async with user_transaction(state.pool, user) as conn:
            rows = await plans.list_study_plans(conn, session_id=session_id, limit=limit)
        return JSONResponse({"plans": [_jsonable(row) for row in rows]})

    return router
