"""What every gRPC service of the gateway shares: the caller, the idempotency key, and the
one answer to a :class:`~services.gateway.core.GatewayError`.

A :class:`GatewayError` becomes the status code its declaration names, with the
machine-readable code in the trailing metadata (``error-code``), so a gRPC client and an
HTTP client get the same outcome for the same call. Unary methods take it from
:func:`unary`, server streams from :func:`server_stream`; no method maps errors itself.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar
from uuid import UUID

import grpc
from grpc import aio

from services.gateway.core import GatewayCore
from services.gateway.inputs import GatewayError, idempotency_key, parse_uuid

Context = aio.ServicerContext[Any, Any]
Req = TypeVar("Req")
Resp = TypeVar("Resp")


async def abort(context: Context, error: GatewayError) -> None:
    """Ends the call with the error's declared status and its code in the metadata."""
    metadata: list[tuple[str, str]] = [("error-code", error.code)]
    if error.request_id is not None:
        metadata.append(("request-id", str(error.request_id)))
    if "retry_after_s" in error.details:
        metadata.append(("retry-after", str(error.details["retry_after_s"])))
    context.set_trailing_metadata(tuple(metadata))
    await context.abort(grpc.StatusCode[error.error.grpc_status], error.message)


def metadata_value(context: Context, key: str) -> str | None:
    """The call's first metadata value under ``key`` (None when it sent none)."""
    return next((str(v) for k, v in context.invocation_metadata() or () if k == key), None)


def call_key(context: Context) -> str | None:
    """The call's ``idempotency-key`` metadata, checked (``invalid_request`` when bad)."""
    return idempotency_key(metadata_value(context, "idempotency-key"))


def unary(
    method: Callable[[Any, Req, Context], Awaitable[Resp]],
) -> Callable[[Any, Req, Context], Awaitable[Resp]]:
    """Answers a :class:`GatewayError` raised by a unary method with its declared status (a
    malformed idempotency key is refused first, whatever the method)."""

    @functools.wraps(method)
    async def wrapped(self: Any, request: Req, context: Context) -> Resp:
        try:
            call_key(context)
            return await method(self, request, context)
        except GatewayError as exc:
            await abort(context, exc)
            raise AssertionError("unreachable") from exc

    return wrapped


def server_stream(
    method: Callable[[Any, Req, Context], AsyncIterator[Resp]],
) -> Callable[[Any, Req, Context], AsyncIterator[Resp]]:
    """Ends a server stream with a :class:`GatewayError`'s declared status, raised before
    its first message or between two."""

    @functools.wraps(method)
    async def wrapped(self: Any, request: Req, context: Context) -> AsyncIterator[Resp]:
        try:
            call_key(context)
            async for message in method(self, request, context):
                yield message
        except GatewayError as exc:
            await abort(context, exc)

    return wrapped


def pop_session_id(data: dict[str, Any], *, required: bool = False) -> UUID | None:
    """Takes a request's ``session_id`` out of its fields (the HTTP routes' query or path
    parameter); None when it is empty and not ``required``."""
    raw = data.pop("session_id", "")
    return parse_uuid("session_id", raw) if raw or required else None


class CoreServicer:
    """What each gRPC service of the gateway shares: the core, and the caller named by the
    call's ``authorization`` metadata (the HTTP bearer token)."""

    SERVICE = ""
    """The service's name in its proto file; its plain command methods are made from the
    binding table (:func:`services.gateway.grpc_commands.with_commands`)."""

    def __init__(self, core: GatewayCore) -> None:
        self._core = core

    def _user(self, context: Context) -> UUID:
        return self._core.authenticate(metadata_value(context, "authorization"))
