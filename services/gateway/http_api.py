"""The HTTP/JSON API (FastAPI): the original's routes plus request lookup.

Every ``/api`` route but register and login needs a bearer token, and the user comes from
the token only. Bodies are validated by pydantic models: a bad body is a 422 naming the
field, never a 500, and nothing is stored for it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from exammentor import metrics
from exammentor.contracts.commands import CommandType, echo
from exammentor.db import Pool
from exammentor.ops import Readiness, ops_routes
from exammentor.relay import RelayChunk
from exammentor.telemetry import start_span
from exammentor.topics import SERVICES
from services.gateway import repo
from services.gateway.dispatch import BrokerUnavailable, Dispatcher, ResultTimeout
from services.gateway.domain import (
    Credentials,
    InvalidToken,
    TokenIssuer,
    TokenResponse,
    hash_password,
    verify_password,
)


class ApiError(Exception):
    """An error answered as ``{"detail": {"code", "message", ...}}`` with a status."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"code": code, "message": message, **extra}


@dataclass
class GatewayState:
    """What the routes use."""

    pool: Pool
    dispatcher: Dispatcher
    tokens: TokenIssuer
    readiness: Readiness
    request_timeout_s: float
    max_body_bytes: int


class EchoRequest(BaseModel):
    """Body of ``POST /api/system/echo``: a command that needs no LLM."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(default="", max_length=10_000)
    service: str = Field(default="planner", pattern="^(" + "|".join(SERVICES) + ")$")


async def current_user(request: Request) -> UUID:
    """The user named by the bearer token (401 with the reason otherwise)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "unauthenticated", "missing bearer token")
    tokens: TokenIssuer = request.app.state.tokens
    try:
        return tokens.verify(token.strip())
    except InvalidToken as exc:
        raise ApiError(401, "unauthenticated", f"invalid token: {exc}") from exc


User = Annotated[UUID, Depends(current_user)]
"""The authenticated user of a route (from the token only)."""


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
                "field": ".".join(str(p) for p in err["loc"] if p != "body") or "body",
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

    async def run_command(
        command: CommandType, user_id: UUID, payload: dict[str, Any]
    ) -> tuple[UUID, RelayChunk | None]:
        try:
            with start_span(f"gateway {command.name}"):
                async with state.dispatcher.dispatch(command, user_id, payload) as run:
                    try:
                        return run.request_id, await run.final(state.request_timeout_s)
                    except ResultTimeout:
                        return run.request_id, None
        except BrokerUnavailable as exc:
            raise ApiError(503, "unavailable", "the command could not be queued; retry") from exc

    def answer(request_id: UUID, chunk: RelayChunk | None, pick: str | None = None) -> Response:
        headers = {"X-Request-Id": str(request_id)}
        if chunk is None:
            return JSONResponse(
                {
                    "request_id": str(request_id),
                    "status": "pending",
                    "location": f"/api/requests/{request_id}",
                },
                status_code=202,
                headers=headers,
            )
        if chunk.kind == "error":
            status = 422 if chunk.data.get("code") not in {"dead_lettered", "unavailable"} else 502
            return JSONResponse({"detail": chunk.data}, status_code=status, headers=headers)
        body = chunk.data.get(pick, chunk.data) if pick else chunk.data
        return JSONResponse(body, headers=headers)

    from services.gateway.plan_routes import plan_router  # imports this module

    app.include_router(plan_router(state))

    @app.post("/api/system/echo")
    async def system_echo(body: EchoRequest, user: User) -> Response:
        request_id, chunk = await run_command(echo(body.service), user, {"text": body.text})
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
