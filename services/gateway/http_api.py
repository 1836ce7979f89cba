"""The HTTP/JSON API (FastAPI): a thin adapter over :class:`~services.gateway.core.GatewayCore`.

Every ``/api`` route but register and login needs a bearer token, and the user comes from
the token only. Bodies are read through the core's validation: a bad body is a 422 naming
the field (or the status its error code declares), never a 500, and nothing is stored for
it. Browser front ends are first-class: CORS for the origins an operator configures (none by
default), with the headers a streaming ``fetch`` reads (``X-Request-Id`` ...) exposed. Every
preflight is answered, on every path: 200 with the allowances, or 403 ``cors_refused`` naming
the origin, method or header that is not allowed (never a bare 405).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated
from uuid import UUID

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers

from exammentor.contracts.api import (
    MAX_REQUEST_LIST_LIMIT,
    Credentials,
    RequestList,
    StoredRequest,
    Token,
)
from exammentor.contracts.commands import (
    CORS_REFUSED,
    INVALID_REQUEST,
    MAINTENANCE,
    TOO_MANY_ATTEMPTS,
)
from exammentor.json_codec import dumps_bytes
from exammentor.ops.routes import ops_routes
from exammentor.telemetry import records_spans
from exammentor.validation import field_name
from services.gateway.autopilot_routes import autopilot_router
from services.gateway.http_base import (
    GatewayState,
    JsonResponse,
    RequestMetrics,
    User,
    body_schema,
    error_response,
    json_body,
)
from services.gateway.http_commands import command_router
from services.gateway.inputs import GatewayError
from services.gateway.plan_routes import plan_router
from services.gateway.quiz_routes import quiz_router
from services.gateway.session_routes import session_router
from services.gateway.tutor_routes import tutor_router

MAX_EVENTS_AFTER = 2**31 - 1
EXPOSED_HEADERS = ["X-Request-Id", "X-Plan-Id", "X-From-Cache", "Location", "Retry-After"]
CORS_METHODS = ["GET", "POST", "DELETE", "OPTIONS"]
CORS_HEADERS = ["Authorization", "Content-Type", "Idempotency-Key"]
"""Request headers a browser may send besides the safelisted ones (Accept ...): the bearer
token, JSON bodies and the idempotency key."""


class GatewayCors(CORSMiddleware):
    """Starlette's CORS, with a refused preflight answered as a declared error.

    Installed whether or not origins are configured, so a browser's preflight never falls
    through to a route (which answers OPTIONS with 405 and no CORS headers): an operator
    reading the browser's network log sees what is not allowed and where to allow it.
    """

    def preflight_response(self, request_headers: Headers) -> Response:
        """The preflight's answer: Starlette's when allowed, else 403 ``cors_refused``."""
        answer = super().preflight_response(request_headers)
        if answer.status_code < 400:
            return answer
        refused: list[str] = []
        origin = request_headers["origin"]
        if not self.is_allowed_origin(origin=origin):
            allowed = ", ".join(o for o in self.allow_origins) or "none"
            refused.append(
                f"origin {origin!r} is not allowed (allowed: {allowed}; "
                "set EXAMMENTOR_CORS_ORIGINS)"
            )
        method = request_headers["access-control-request-method"]
        if method not in self.allow_methods:
            refused.append(f"method {method} is not allowed ({', '.join(CORS_METHODS)})")
        asked = request_headers.get("access-control-request-headers") or ""
        extra = [h.strip() for h in asked.lower().split(",") if h.strip()]
        extra = [h for h in extra if h not in self.allow_headers]
        if extra:
            refused.append(f"headers {', '.join(extra)} are not allowed")
        if not refused:
            refused.append("private network access is not allowed")
        error = GatewayError(CORS_REFUSED, "CORS preflight refused: " + "; ".join(refused))
        response = error_response(error)
        response.headers["Vary"] = answer.headers.get("vary", "Origin")
        return response


def _client_address(request: Request) -> str | None:
    """The peer address register and login attempts are counted by (behind a proxy: the
    proxy's, unless the server is told to trust its forwarded headers)."""
    return request.client.host if request.client else None


def create_http_app(state: GatewayState) -> FastAPI:
    """The FastAPI application of one gateway instance."""
    # FastAPI's own OpenTelemetry layer wraps every request and every body chunk; while no
    # span is recorded (the default sampler) it is cost without output, so it runs only
    # when an operator turns recording on.
    recording = records_spans()
    app = FastAPI(
        title="ExamMentor gateway",
        version="1",
        telemetry={"tracing": recording, "metrics": recording, "logs": recording},
    )
    app.state.gateway = state
    core = state.core
    for route in ops_routes(state.readiness):
        app.router.routes.append(route)

    @app.exception_handler(GatewayError)
    async def _gateway_error(_: Request, exc: GatewayError) -> JsonResponse:
        response = error_response(exc)
        if exc.error in (TOO_MANY_ATTEMPTS, MAINTENANCE):
            response.headers["Retry-After"] = str(exc.details["retry_after_s"])
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JsonResponse:
        errors = [
            {"field": field_name(err["loc"]), "reason": err["msg"], "type": err["type"]}
            for err in exc.errors()
        ]
        message = "; ".join(f"{e['field']}: {e['reason']}" for e in errors)
        return error_response(GatewayError(INVALID_REQUEST, message, {"errors": errors}))

    # Pure ASGI: a BaseHTTPMiddleware here cost every streamed chunk a memory-stream hop.
    app.add_middleware(RequestMetrics)
    app.add_middleware(
        GatewayCors,
        allow_origins=list(state.cors_origins),
        allow_methods=CORS_METHODS,
        allow_headers=CORS_HEADERS,
        expose_headers=EXPOSED_HEADERS,
        max_age=600,
    )

    @app.post("/api/users/register", status_code=201, openapi_extra=body_schema(Credentials))
    async def register(
        request: Request, body: Annotated[Credentials, Depends(json_body(Credentials))]
    ) -> Token:
        """Creates a user; returns a bearer token."""
        return await core.register(body, client=_client_address(request))

    @app.post("/api/users/login", openapi_extra=body_schema(Credentials))
    async def login(
        request: Request, body: Annotated[Credentials, Depends(json_body(Credentials))]
    ) -> Token:
        """Checks the password; returns a bearer token."""
        return await core.login(body, client=_client_address(request))

    app.include_router(command_router)
    app.include_router(plan_router(state))
    app.include_router(autopilot_router(state))
    app.include_router(session_router(state))
    app.include_router(quiz_router(state))
    app.include_router(tutor_router(state))

    @app.get("/api/requests/{request_id}")
    async def get_request(request_id: UUID, user: User) -> StoredRequest:
        """One of the caller's requests, with its result or error once it ended."""
        return await core.stored_request(user, request_id)

    @app.get("/api/requests/{request_id}/events")
    async def get_request_events(
        request_id: UUID,
        user: User,
        after: Annotated[int, Query(ge=0, le=MAX_EVENTS_AFTER)] = 0,
    ) -> Response:
        """The request's progress after ``after`` as NDJSON, followed until it ends: the last
        line is ``complete`` (the result under ``final_result``) or ``error``; every line has
        its ``seq``, so a client that lost a stream resumes with ``after`` = the last seq."""
        events = await core.follow(user, request_id, after)

        async def lines() -> AsyncIterator[bytes]:
            async for event in events:
                yield dumps_bytes(event) + b"\n"

        return StreamingResponse(
            lines(),
            media_type="application/x-ndjson",
            headers={"X-Request-Id": str(request_id), "Cache-Control": "no-cache"},
        )

    @app.get("/api/requests")
    async def list_requests(
        user: User, limit: Annotated[int, Query(ge=1, le=MAX_REQUEST_LIST_LIMIT)] = 20
    ) -> RequestList:
        """The caller's newest requests, with their results."""
        return await core.requests(user, limit)

    if state.web_dir is not None and state.web_dir.is_dir():
        # The student web app, on the API's own origin: no CORS, and nothing from elsewhere.
        app.mount("/app", StaticFiles(directory=state.web_dir, html=True), name="web")

        @app.get("/", include_in_schema=False)
        async def web_home() -> RedirectResponse:
            return RedirectResponse("/app/")

    return app
