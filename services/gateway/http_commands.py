"""The command routes of the HTTP API, made from the binding table
(:data:`~exammentor.contracts.bindings.BINDINGS`), and what the hand-written command routes
(streams, uploads) share with them.

A plain route reads its JSON body (no body: the path's fields and the route's fixed fields),
hands it to :meth:`~services.gateway.core.GatewayCore.run` with the study session and the
``Idempotency-Key``, and answers with the result in the binding's shape. The core validates
the body as the command's payload, so a route never names its command twice.
"""

from __future__ import annotations

import inspect
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from exammentor.contracts.bindings import BINDINGS, Binding, HttpRoute, whole
from services.gateway.core import CommandAnswer
from services.gateway.http_base import (
    GatewayState,
    JsonResponse,
    User,
    body_schema,
    pending_response,
    read_body,
)
from services.gateway.inputs import idempotency_key, json_input, still_running

SESSION_QUERY = "The study session the request belongs to (optional)."


def request_key(request: Request) -> str | None:
    """The request's ``Idempotency-Key`` (checked: ``invalid_request`` when malformed)."""
    return idempotency_key(request.headers.get("idempotency-key"))


async def request_json(request: Request, max_bytes: int | None = None) -> Any:
    """The JSON body's data, read within ``max_bytes`` (None: the gateway's body limit)."""
    state: GatewayState = request.app.state.gateway
    limit = state.max_body_bytes if max_bytes is None else max_bytes
    return json_input(await read_body(request, limit))


def command_response(route: HttpRoute, found: CommandAnswer[Any]) -> Response:
    """A command's answer in the route's shape, with ``X-Request-Id``; a result that did not
    come within the wait is the route's ``still_running`` answer (both are 202)."""
    if found.result is None:
        if route.still_running == "pending":
            return pending_response(found.request_id)
        raise still_running(found.request_id)
    body, headers = route.view(found.result)
    return JsonResponse(
        body,
        status_code=route.status,
        headers={"X-Request-Id": str(found.request_id), **headers},
    )


def _path_fields(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def _endpoint(binding: Binding, route: HttpRoute) -> Any:
    """The route's function, its signature made for FastAPI (the path's parameters, the
    session query), so the OpenAPI document names them."""
    fields = [f for f in _path_fields(route.path) if f != "session_id"]
    if route.body and (fields or route.fixed):
        raise ValueError(f"{route.path}: a body route takes its fields from the body only")

    async def endpoint(request: Request, user: UUID, **params: Any) -> Response:
        data: Any = (
            await request_json(request, route.max_body_bytes)
            if route.body
            else {**{f: params[f] for f in fields}, **route.fixed}
        )
        state: GatewayState = request.app.state.gateway
        found = await state.core.run(
            binding,
            user,
            data,
            idempotency_key=request_key(request),
            session_id=params.get("session_id"),
        )
        return command_response(route, found)

    kw = inspect.Parameter.KEYWORD_ONLY
    parameters = [
        inspect.Parameter("request", kw, annotation=Request),
        inspect.Parameter("user", kw, annotation=User),
    ]
    for name in fields:
        annotation = binding.input.model_fields[name].annotation
        parameters.append(inspect.Parameter(name, kw, annotation=Annotated[annotation, Path()]))
    if binding.session == "required":
        parameters.append(inspect.Parameter("session_id", kw, annotation=Annotated[UUID, Path()]))
    elif binding.session == "optional":
        parameters.append(
            inspect.Parameter(
                "session_id",
                kw,
                annotation=Annotated[UUID | None, Query(description=SESSION_QUERY)],
                default=None,
            )
        )
    endpoint.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    endpoint.__name__ = route.path.strip("/").replace("/", "_").replace("-", "_")
    return endpoint


def _router() -> APIRouter:
    router = APIRouter()
    for binding in BINDINGS:
        for route in binding.http:
            if route.kind != "plain":
                continue  # written by hand, over request_json, request_key, command_response
            router.add_api_route(
                route.path,
                _endpoint(binding, route),
                methods=[route.method],
                status_code=route.status,
                description=route.summary,
                tags=[route.tag] if route.tag else None,
                openapi_extra=body_schema(binding.input) if route.body else None,
                # Documents the answer; the route returns its own response, not validated.
                response_model=binding.command.result if route.view is whole else None,
            )
    return router


command_router = _router()
"""Every plain command route of the binding table."""
