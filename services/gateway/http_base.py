"""What every HTTP route module of the gateway shares: the state, the answer to a
:class:`~services.gateway.core.GatewayError`, the authenticated user, and bodies read into
contract models through the core's validation (so HTTP and gRPC refuse the same input the
same way).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar
from uuid import UUID

from fastapi import Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from exammentor import metrics
from exammentor.contracts.commands import BODY_TOO_LARGE, Command
from exammentor.json_codec import dumps_bytes
from exammentor.ops.routes import Readiness
from services.gateway.core import GatewayCore
from services.gateway.inputs import GatewayError, idempotency_key, parse_json

M = TypeVar("M", bound=BaseModel)


@dataclass
class GatewayState:
    """What the routes use."""

    core: GatewayCore
    readiness: Readiness
    max_body_bytes: int
    cors_origins: tuple[str, ...] = ()
    web_dir: Path | None = None
    """The student web app's files, served at ``/app/`` (none: not served)."""


class JsonResponse(JSONResponse):
    """A JSON body written by :func:`exammentor.json_codec.dumps_bytes` (orjson): Starlette's
    own writes it with the standard library. Routes that return a model are written by
    pydantic already (FastAPI's fast path); this is for the bodies built as dicts."""

    def render(self, content: Any) -> bytes:
        """``content`` as compact UTF-8 JSON."""
        return dumps_bytes(content)


def error_response(error: GatewayError) -> JsonResponse:
    """A :class:`GatewayError` as ``{"detail": {code, message, ...}}`` with its status."""
    headers = {"WWW-Authenticate": "Bearer"} if error.error.http_status == 401 else {}
    if error.request_id is not None:
        headers["X-Request-Id"] = str(error.request_id)
    return JsonResponse(
        {"detail": error.body()}, status_code=error.error.http_status, headers=headers
    )


class RequestMetrics:
    """Refuses a malformed ``Idempotency-Key`` on every route, and counts and times each
    request (to its response's start) by route and status.

    A pure ASGI middleware, not a ``BaseHTTPMiddleware``: that one runs every response body
    through a memory stream and a task of its own, a cost paid per chunk of a stream (a
    tutor stream's writes were half the gateway's time in it); this one passes each message
    on as it comes.
    """

    def __init__(self, app: ASGIApp) -> None:
        """Wraps ``app``."""
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handles one ASGI connection."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            # Checked for every route, so a malformed key is refused whatever it was for.
            idempotency_key(Headers(scope=scope).get("idempotency-key"))
        except GatewayError as exc:
            await error_response(exc)(scope, receive, send)
            return
        started = time.perf_counter()

        async def measured(message: Message) -> None:
            if message["type"] == "http.response.start":
                path = getattr(scope.get("route"), "path", "unmatched")
                metrics.HTTP_REQUEST_SECONDS.labels(path).observe(time.perf_counter() - started)
                metrics.HTTP_REQUESTS.labels(path, str(message["status"])).inc()
            await send(message)

        await self.app(scope, receive, measured)


async def current_user(request: Request) -> UUID:
    """The user named by the bearer token (401 with the reason otherwise); async so FastAPI
    checks it on the event loop (a plain ``def`` dependency costs a thread hop per request,
    more than the check itself)."""
    state: GatewayState = request.app.state.gateway
    return state.core.authenticate(request.headers.get("authorization"))


User = Annotated[UUID, Depends(current_user)]
"""The authenticated user of a route (from the token only)."""


async def read_body(request: Request, limit: int) -> bytes:
    """The body, read up to ``limit`` bytes whether or not a Content-Length was sent."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise GatewayError(
                BODY_TOO_LARGE,
                f"body: over the limit of {limit:,} bytes",
                {"field": "body", "limit": limit},
            )
        chunks.append(chunk)
    return b"".join(chunks)


def json_body(
    model: type[M], command: Command[Any, Any] | None = None, *, max_bytes: int | None = None
) -> Callable[[Request], Awaitable[M]]:
    """A dependency that reads the JSON body into ``model`` (422 or the declared status).

    ``max_bytes`` raises the gateway's body limit for one route (files sent as base64);
    without it the configured ``max_body_bytes`` holds.
    """

    async def read(request: Request) -> M:
        state: GatewayState = request.app.state.gateway
        limit = state.max_body_bytes if max_bytes is None else max_bytes
        return parse_json(model, await read_body(request, limit), command)

    return read


def _inline_defs(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its ``$defs`` written in where they are used: inside an OpenAPI
    document ``#/$defs/...`` points at the document's root, where nothing is, so clients and
    tools (schemathesis) could not read a body with nested models. The bodies' models are
    not recursive; one that were would be refused here rather than looping."""
    defs = schema.pop("$defs", {})

    def resolve(node: Any, seen: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [resolve(item, seen) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            name = ref.removeprefix("#/$defs/")
            if name in seen:
                raise ValueError(f"{name}: a recursive body model cannot be inlined")
            rest = {k: resolve(v, seen) for k, v in node.items() if k != "$ref"}
            return {**resolve(defs[name], (*seen, name)), **rest}
        return {k: resolve(v, seen) for k, v in node.items()}

    inlined: dict[str, Any] = resolve(schema, ())
    return inlined


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` documenting a body read by :func:`json_body` (self-contained: no
    ``$ref`` to definitions the OpenAPI document does not hold)."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _inline_defs(model.model_json_schema())}},
        }
    }


def pending_response(request_id: UUID) -> Response:
    """202 with where to fetch a result that is still being worked on."""
    return JsonResponse(
        {
            "request_id": str(request_id),
            "status": "pending",
            "location": f"/api/requests/{request_id}",
        },
        status_code=202,
        headers={"X-Request-Id": str(request_id)},
    )
