"""The tutor routes of the HTTP API, with the original's shapes.

- ``POST /api/tutor/explain``: ``TutorExplanation`` (plus ``citations``).
- ``POST /api/tutor/stream``: raw markdown text chunks as the model writes them (the
  original's client concatenates them). The typed variant, NDJSON lines of
  :data:`~exammentor.contracts.tutor.StreamEvent` (``seq``, tokens, citations, usage,
  errors, ``done``), is asked for with ``Accept: application/x-ndjson`` or
  ``?format=ndjson``. A refusal before the first token (another user's material, a bad
  field) is a 4xx either way. A client that goes away stops generation.
- ``POST /api/tutor/lesson``: the ``tutor.lesson`` command, streamed the same way.
- ``POST /api/tutor/explain-image``, ``POST /api/describe-image``: the original's shapes;
  ``vision_unsupported`` (422) when the configured model cannot see.
- ``POST /api/extract-pdf-text``: ``{text}`` within the original's limits.
- ``GET/POST /api/tutor/chat``: the chat of one topic of the token's user.
- ``POST/GET /api/materials``, ``DELETE /api/materials/{id}``: study material.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from exammentor.contracts.commands import Command
from exammentor.contracts.tutor import (
    MAX_IMAGE_BYTES,
    MAX_MATERIAL_TEXT_CHARS,
    MAX_PDF_BYTES,
    TUTOR_DESCRIBE_IMAGE,
    TUTOR_EXPLAIN,
    TUTOR_EXPLAIN_IMAGE,
    TUTOR_EXTRACT_PDF_TEXT,
    TUTOR_LESSON,
    TUTOR_MATERIAL_ADD,
    TUTOR_MATERIAL_DELETE,
    TUTOR_STREAM,
    ChatSaveRequest,
    DescribeImageRequest,
    ExplainRequest,
    ImageExplainRequest,
    LessonRequest,
    MaterialAddRequest,
    MaterialDeleteRequest,
    PdfTextRequest,
)
from services.gateway import tutor_cases
from services.gateway.core import CommandAnswer, parse, parse_json
from services.gateway.http_base import (
    GatewayState,
    User,
    body_schema,
    json_body,
    pending_response,
    read_body,
)

_BASE64_SLACK = 64 * 1024
PDF_BODY_BYTES = MAX_PDF_BYTES * 4 // 3 + _BASE64_SLACK
"""Body limit of the PDF routes: the largest PDF as base64, and room for the JSON around."""
IMAGE_BODY_BYTES = MAX_IMAGE_BYTES * 4 // 3 + _BASE64_SLACK
MATERIAL_BODY_BYTES = max(PDF_BODY_BYTES, MAX_MATERIAL_TEXT_CHARS * 4 + _BASE64_SLACK)

Explain = Annotated[ExplainRequest, Depends(json_body(ExplainRequest, TUTOR_STREAM))]
LessonBody = Annotated[LessonRequest, Depends(json_body(LessonRequest, TUTOR_LESSON))]
ImageBody = Annotated[
    ImageExplainRequest,
    Depends(json_body(ImageExplainRequest, TUTOR_EXPLAIN_IMAGE, max_bytes=IMAGE_BODY_BYTES)),
]
DescribeBody = Annotated[
    DescribeImageRequest,
    Depends(json_body(DescribeImageRequest, TUTOR_DESCRIBE_IMAGE, max_bytes=IMAGE_BODY_BYTES)),
]
PdfBody = Annotated[
    PdfTextRequest,
    Depends(json_body(PdfTextRequest, TUTOR_EXTRACT_PDF_TEXT, max_bytes=PDF_BODY_BYTES)),
]
ChatBody = Annotated[ChatSaveRequest, Depends(json_body(ChatSaveRequest))]


def _answer(found: CommandAnswer[Any]) -> Response:
    if found.result is None:
        return pending_response(found.request_id)
    return JSONResponse(
        found.result.model_dump(mode="json"), headers={"X-Request-Id": str(found.request_id)}
    )


def wants_ndjson(request: Request, format_: str | None) -> bool:
    """Whether the client asked for the typed NDJSON stream."""
    if format_ is not None:
        return format_.lower() == "ndjson"
    return tutor_cases.NDJSON in request.headers.get("accept", "")


async def stream_response(
    state: GatewayState, command: Command[Any, Any], user: Any, body: Any, *, typed: bool
) -> Response:
    """A streaming tutor command as raw markdown or as typed NDJSON lines."""
    opened = await tutor_cases.open_stream(state.core, command, user, body)

    async def raw() -> AsyncIterator[bytes]:
        try:
            async for text in opened.tokens():
                yield text.encode()
        finally:
            await opened.close()

    async def lines() -> AsyncIterator[bytes]:
        try:
            async for event in opened.events():
                yield (event.model_dump_json() + "\n").encode()
        finally:
            await opened.close()

    headers = {"X-Request-Id": str(opened.request_id), "Cache-Control": "no-cache"}
    if typed:
        return StreamingResponse(lines(), media_type=tutor_cases.NDJSON, headers=headers)
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

    @router.post("/api/tutor/explain", openapi_extra=body_schema(ExplainRequest))
    async def explain(user: User, body: Explain) -> Response:
        """A structured explanation (``TutorExplanation`` with ``citations``)."""
        return _answer(await core.run(TUTOR_EXPLAIN, user, body))

    @router.post("/api/tutor/stream", openapi_extra=body_schema(ExplainRequest))
    async def stream(
        request: Request,
        user: User,
        body: Explain,
        format_: Annotated[str | None, Query(alias="format", pattern="^(text|ndjson)$")] = None,
    ) -> Response:
        """Raw markdown chunks; typed NDJSON events with ``Accept: application/x-ndjson``
        or ``?format=ndjson``."""
        typed = wants_ndjson(request, format_)
        return await stream_response(state, TUTOR_STREAM, user, body, typed=typed)

    @router.post("/api/tutor/lesson", openapi_extra=body_schema(LessonRequest))
    async def lesson(
        request: Request,
        user: User,
        body: LessonBody,
        format_: Annotated[str | None, Query(alias="format", pattern="^(text|ndjson)$")] = None,
    ) -> Response:
        """A micro-lesson (``tutor.lesson``), streamed like ``/api/tutor/stream``."""
        typed = wants_ndjson(request, format_)
        return await stream_response(state, TUTOR_LESSON, user, body, typed=typed)

    @router.post("/api/tutor/explain-image", openapi_extra=body_schema(ImageExplainRequest))
    async def explain_image(user: User, body: ImageBody) -> Response:
        """``MultimodalExplanation`` of an image (422 when the model cannot see)."""
        return _answer(await core.run(TUTOR_EXPLAIN_IMAGE, user, body))

    @router.post("/api/describe-image", openapi_extra=body_schema(DescribeImageRequest))
    async def describe_image(user: User, body: DescribeBody) -> Response:
        """``{description}`` of an image, to study from (422 when the model cannot see)."""
        return _answer(await core.run(TUTOR_DESCRIBE_IMAGE, user, body))

    @router.post("/api/extract-pdf-text", openapi_extra=body_schema(PdfTextRequest))
    async def extract_pdf_text(user: User, body: PdfBody) -> Response:
        """``{text}``: the first 50 pages, cut at 12,000 characters."""
        return _answer(await core.run(TUTOR_EXTRACT_PDF_TEXT, user, body))

    @router.get("/api/tutor/chat")
    async def get_chat(
        user: User,
        topic_id: Annotated[str, Query()],
        user_id: Annotated[str | None, Query()] = None,
    ) -> Response:
        """The chat of one topic; ``{messages: [], explanation: null}`` when none."""
        query = parse(tutor_cases.ChatQuery, {"topic_id": topic_id, "user_id": user_id})
        found = await tutor_cases.chat(core, user, query)
        return JSONResponse(found.model_dump(mode="json"))

    @router.post("/api/tutor/chat", openapi_extra=body_schema(ChatSaveRequest))
    async def save_chat(user: User, body: ChatBody) -> Response:
        """Upserts the chat of one topic (messages and the first explanation)."""
        saved = await tutor_cases.save_chat(core, user, body)
        return JSONResponse(saved.model_dump(mode="json"))

    @router.post("/api/materials", openapi_extra=body_schema(MaterialAddRequest))
    async def add_material(request: Request, user: User) -> Response:
        """Stores a PDF or a text: multipart (``file`` or ``text``, ``title``) or JSON."""
        raw = await read_body(request, MATERIAL_BODY_BYTES)
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/"):
            body = tutor_cases.multipart_material(content_type, raw)
        else:
            body = parse_json(MaterialAddRequest, raw, TUTOR_MATERIAL_ADD)
        found = await core.run(TUTOR_MATERIAL_ADD, user, body)
        if found.result is None:
            return pending_response(found.request_id)
        return JSONResponse(
            found.result.model_dump(mode="json"),
            status_code=201,
            headers={"X-Request-Id": str(found.request_id)},
        )

    @router.get("/api/materials")
    async def list_materials(user: User) -> Response:
        """The user's study material, newest first (without its text)."""
        found = await tutor_cases.materials(core, user)
        return JSONResponse(found.model_dump(mode="json"))

    @router.delete("/api/materials/{material_id}")
    async def delete_material(material_id: UUID, user: User) -> Response:
        """Deletes one of the user's materials (404 for any other)."""
        body = MaterialDeleteRequest(material_id=material_id)
        return _answer(await core.run(TUTOR_MATERIAL_DELETE, user, body))

    return router
