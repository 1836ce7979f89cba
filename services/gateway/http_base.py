"""What every HTTP route module of the gateway shares: the state, errors, the authenticated
user, and running a command to its final answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, Request
from fastapi.responses import JSONResponse, Response

from exammentor.contracts.commands import CommandType
from exammentor.db import Pool
from exammentor.ops import Readiness
from exammentor.relay import RelayChunk
from exammentor.telemetry import start_span
from services.gateway.dispatch import BrokerUnavailable, Dispatcher, ResultTimeout
from services.gateway.domain import InvalidToken, TokenIssuer

ERROR_STATUS = {
    "syllabus_too_large": 413,
    "session_not_found": 404,
    "dead_lettered": 502,
    "unavailable": 502,
}
"""HTTP status of a command's final error by its code; any other refusal is bad input (422)."""


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


async def run_command(
    state: GatewayState,
    command: CommandType,
    user_id: UUID,
    payload: dict[str, Any],
    *,
    session_id: UUID | None = None,
) -> tuple[UUID, RelayChunk | None]:
    """Publishes a command and waits for its final chunk (None when the wait ran out)."""
    try:
        with start_span(f"gateway {command.name}"):
            async with state.dispatcher.dispatch(
                command, user_id, payload, session_id=session_id
            ) as run:
                try:
                    return run.request_id, await run.final(state.request_timeout_s)
                except ResultTimeout:
                    return run.request_id, None
    except BrokerUnavailable as exc:
        raise ApiError(503, "unavailable", "the command could not be queued; retry") from exc


def pending_response(request_id: UUID) -> Response:
    """202 with where to fetch a result that is still being worked on."""
    return JSONResponse(
        {
            "request_id": str(request_id),
            "status": "pending",
            "location": f"/api/requests/{request_id}",
        },
        status_code=202,
        headers={"X-Request-Id": str(request_id)},
    )


def error_response(request_id: UUID, chunk: RelayChunk) -> Response:
    """A command's final error with the status its code calls for."""
    status = ERROR_STATUS.get(str(chunk.data.get("code")), 422)
    return JSONResponse(
        {"detail": chunk.data}, status_code=status, headers={"X-Request-Id": str(request_id)}
    )
