"""The tutor routes of the HTTP API that are not made from the binding table, with the
original's shapes (``/api/tutor/explain``, the image and PDF routes, saving a chat and
deleting material are plain commands, declared in ``exammentor/contracts/bindings.py``):

- ``POST /api/tutor/stream``: raw markdown text chunks as the model writes them (the
  original's client concatenates them). The typed variant, NDJSON lines of
  :data:`~exammentor.contracts.tutor.StreamEvent` (``seq``, tokens, citations, usage,
  errors, ``done``), is asked for with ``Accept: application/x-ndjson`` or
  ``?format=ndjson``. A refusal before the first token (another user's material, a bad
  field) is a 4xx either way. A client that goes away stops generation.
- ``POST /api/tutor/lesson``: the ``tutor.lesson`` command, streamed the same way.
- ``GET /api/tutor/chat``: the chat of one topic of the token's user.
- ``POST/GET /api/materials``: study material (an upload is JSON or multipart).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse

from exammentor.contracts.bindings import BY_COMMAND
from exammentor.contracts.commands import Command
from exammentor.contracts.tutor import (
    TUTOR_LESSON,
    TUTOR_MATERIAL_ADD,
    TUTOR_STREAM,
    ExplainRequest,
    LessonRequest,
    MaterialAddRequest,
)
from services.gateway import tutor_stream
from services.gateway.http_base import GatewayState, JsonResponse, User, body_schema, read_body
from services.gateway.http_commands import command_response, request_json, request_key
from services.gateway.inputs import json_input, parse
from services.gateway.reads import ChatQuery


def wants_ndjson(request: Request, format_: str | None) -> bool:
    """Whether the client asked for the typed NDJSON stream."""
    if format_ is not None:
        return format_.lower() == "ndjson"
    return tutor_stream.NDJSON in request.headers.get("accept", "")


async def stream_response(
    request: Request, command: Command[Any, Any], user: UUID, *, typed: bool
) -> Response:
    """A streaming tutor command as raw markdown or as typed NDJSON lines."""
    state: GatewayState = request.app.state.gateway
    opened = await tutor_stream.open_stream(
        state.core,
        BY_COMMAND[command.key],
        user,
        await request_json(request),
        idempotency_key=request_key(request),
    )

    # One body write per batch of what arrived together (tutor_stream: coalescing).
    async def raw() -> AsyncIterator[bytes]:
        try:
            async for text in opened.text_batches():
                yield text.encode()
        finally:
            await opened.close()

    async def lines() -> AsyncIterator[bytes]:
        try:
            async for events in opened.event_batches():
                yield "".join(event.model_dump_json() + "\n" for event in events).encode()
        finally:
            await opened.close()

    headers = {"X-Request-Id": str(opened.request_id), "Cache-Control": "no-cache"}
    if typed:
        return StreamingResponse(lines(), media_type=tutor_stream.NDJSON, headers=headers)
    return StreamingResponse(raw(), media_type="text/markdown; charset=utf-8", headers=headers)


def tutor_router(state: GatewayState) -> APIRouter:
    """The tutor routes of one gateway instance.

    Args:
        state: What the routes use.

    Returns:
        The router, to include in the application.
    """
    router = APIRouter(tags=["tutor"])
    core = state.core

    @router.post("/api/tutor/stream", openapi_extra=body_schema(ExplainRequest))
    async def stream(
        request: Request,
        user: User,
        format_: Annotated[str | None, Query(alias="format", pattern="^(text|ndjson)$")] = None,
    ) -> Response:
        """Raw markdown chunks; typed NDJSON events with ``Accept: application/x-ndjson``
        or ``?format=ndjson``."""
        typed = wants_ndjson(request, format_)
        return await stream_response(request, TUTOR_STREAM, user, typed=typed)

    @router.post("/api/tutor/lesson", openapi_extra=body_schema(LessonRequest))
    async def lesson(
        request: Request,
        user: User,
        format_: Annotated[str | None, Query(alias="format", pattern="^(text|ndjson)$")] = None,
    ) -> Response:
        """A micro-lesson (``tutor.lesson``), streamed like ``/api/tutor/stream``."""
        typed = wants_ndjson(request, format_)
        return await stream_response(request, TUTOR_LESSON, user, typed=typed)

    @router.get("/api/tutor/chat")
    async def get_chat(
        user: User,
        topic_id: Annotated[str, Query()],
        user_id: Annotated[str | None, Query()] = None,
    ) -> Response:
        """The chat of one topic; ``{messages: [], explanation: null}`` when none."""
        query = parse(ChatQuery, {"topic_id": topic_id, "user_id": user_id})
        found = await core.chat(user, query)
        return JsonResponse(found.model_dump(mode="json"))

    @router.post("/api/materials", openapi_extra=body_schema(MaterialAddRequest))
    async def add_material(request: Request, user: User) -> Response:
        """Stores a PDF or a text: multipart (``file`` or ``text``, ``title``) or JSON."""
        binding = BY_COMMAND[TUTOR_MATERIAL_ADD.key]
        (route,) = binding.http
        raw = await read_body(request, route.max_body_bytes or state.max_body_bytes)
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/"):
            data: Any = tutor_stream.multipart_material(content_type, raw)
        else:
            data = json_input(raw)
        found = await core.run(binding, user, data, idempotency_key=request_key(request))
        return command_response(route, found)

    @router.get("/api/materials")
    async def list_materials(user: User) -> Response:
        """The user's study material, newest first (without its text)."""
        found = await core.materials(user)
        return JsonResponse(found.model_dump(mode="json"))

    return router
