"""The HTTP/JSON API (FastAPI): the original's routes plus request lookup.

Every ``/api`` route but register and login needs a bearer token, and the user comes from
the token only. Bodies are validated by pydantic models: a bad body is a 422 naming the
field, never a 500, and nothing is stored for it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated
from uuid import UUID

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from exammentor import metrics
from exammentor.contracts.commands import echo
from exammentor.ops import ops_routes
from exammentor.relay import RelayChunk
from exammentor.topics import SERVICES
from exammentor.validation import field_name
from services.gateway import repo
from services.gateway.domain import Credentials, TokenResponse, hash_password, verify_password
from services.gateway.http_base import (
    ApiError,
    GatewayState,
    User,
    error_response,
    pending_response,
    run_command,
)
from services.gateway.plan_routes import plan_router


class EchoRequest(BaseModel):
    """Body of ``POST /api/system/echo``: a command that needs no LLM."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(default="", max_length=10_000)
    service: str = Field(default="planner", pattern="^(" + "|".join(SERVICES) + ")$")


def create_http_app(state: GatewayState) -> FastAPI:
    """The FastAPI application of one gateway instance."""
    app = FastAPI(title="ExamMentor gateway", version="1")
    app.state.tokens = state.tokens
    for route in ops_routes(state.readiness):
        app.router.routes.append(route)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse({"detail": exc.body}, status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "field": field_name(err["loc"]),
                "reason": err["msg"],
            }
            for err in exc.errors()
        ]
        return JSONResponse({"detail": {"code": "invalid_request", "errors": errors}}, 422)

    @app.middleware("http")
    async def _limits_and_metrics(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > state.max_body_bytes:
            response: Response = JSONResponse(
                {
                    "detail": {
                        "code": "body_too_large",
                        "message": f"request body over {state.max_body_bytes} bytes",
                    }
                },
                status_code=413,
            )
        else:
            response = await call_next(request)
        route = request.scope.get("route")
        metrics.HTTP_REQUESTS.labels(
            getattr(route, "path", "unmatched"), str(response.status_code)
        ).inc()
        return response

    @app.post("/api/users/register", status_code=201)
    async def register(body: Credentials) -> TokenResponse:
        try:
            user_id = await repo.create_user(state.pool, body.name, hash_password(body.password))
        except repo.NameTaken as exc:
            raise ApiError(409, "name_taken", f"the name {body.name!r} is taken") from exc
        return state.tokens.issue(user_id, body.name)

    @app.post("/api/users/login")
    async def login(body: Credentials) -> TokenResponse:
        found = await repo.credentials(state.pool, body.name)
        if not verify_password(found[1] if found else None, body.password) or found is None:
            raise ApiError(401, "bad_credentials", "unknown name or wrong password")
        return state.tokens.issue(found[0], body.name)

    def answer(request_id: UUID, chunk: RelayChunk | None) -> Response:
        if chunk is None:
            return pending_response(request_id)
        if chunk.kind == "error":
            return error_response(request_id, chunk)
        return JSONResponse(chunk.data, headers={"X-Request-Id": str(request_id)})

    app.include_router(plan_router(state))

    @app.post("/api/system/echo")
    async def system_echo(body: EchoRequest, user: User) -> Response:
        request_id, chunk = await run_command(state, echo(body.service), user, {"text": body.text})
        return answer(request_id, chunk)

    @app.get("/api/requests/{request_id}")
    async def get_request(request_id: UUID, user: User) -> Response:
        row = await repo.get_request(state.pool, user, request_id)
        if row is None:
            raise ApiError(404, "not_found", f"no request {request_id}")
        return JSONResponse(
            {
                "request_id": str(row["id"]),
                "kind": row["kind"],
                "status": row["status"],
                "result": row["result"],
                "error": row["error"],
                "created_at": row["created_at"].isoformat(),
                "completed_at": row["completed_at"].isoformat() if row["completed_at"] else None,
            }
        )

    @app.get("/api/requests/{request_id}/events")
    async def get_request_events(
        request_id: UUID, user: User, after: Annotated[int, Query(ge=0)] = 0
    ) -> Response:
        if await repo.get_request(state.pool, user, request_id) is None:
            raise ApiError(404, "not_found", f"no request {request_id}")
        events = await repo.request_events(state.pool, user, request_id, after)

        async def lines() -> AsyncIterator[bytes]:
            for event in events:
                yield (json.dumps(event) + "\n").encode()

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    return app
