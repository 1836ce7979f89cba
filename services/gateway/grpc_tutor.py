"""The tutor's gRPC API (``proto/tutor.proto``): a thin adapter over
:mod:`services.gateway.tutor_cases`, the module the HTTP routes call too.

Each method reads its typed message into the contract model through the core's validation
(:func:`~services.gateway.core.parse`, the HTTP routes' too), calls the same use case and
writes the typed answer. The two streams are the HTTP stream's typed variant: the same
:data:`~exammentor.contracts.tutor.StreamEvent` values, one ``TutorStreamEvent`` each. A
refusal before the first token is the call's status; a client that cancels the call closes
the stream as an HTTP client that goes away does, so the tutor stops the model.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeVar
from uuid import UUID

from google.protobuf.message import Message
from pydantic import BaseModel

from exammentor._proto import tutor_pb2 as pb
from exammentor._proto import tutor_pb2_grpc
from exammentor.contracts.commands import Command
from exammentor.contracts.tutor import (
    TUTOR_CHAT_SAVE,
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
    StreamEvent,
)
from services.gateway import tutor_cases
from services.gateway.codec import from_message, to_message
from services.gateway.core import GatewayError, parse
from services.gateway.grpc_api import Context, CoreServicer, _abort, finished, unary

M = TypeVar("M", bound=Message)

EVENT_MESSAGES: dict[str, type[Message]] = {
    "token": pb.TokenEvent,
    "reset": pb.ResetEvent,
    "citation": pb.CitationEvent,
    "usage": pb.UsageEvent,
    "error": pb.ErrorEvent,
    "done": pb.DoneEvent,
}
"""The message of each kind of stream event; its ``oneof`` member has the kind's name."""


def event_message(event: StreamEvent, request_id: UUID) -> pb.TutorStreamEvent:
    """One typed stream event as the message of the gRPC stream."""
    message = pb.TutorStreamEvent(request_id=str(request_id))
    getattr(message, event.kind).CopyFrom(to_message(event, EVENT_MESSAGES[event.kind]))
    return message


class TutorApi(CoreServicer, tutor_pb2_grpc.TutorServicer):
    """The typed gRPC twin of the tutor routes."""

    async def _stream(
        self, command: Command[Any, Any], model: type[BaseModel], request: Message, context: Context
    ) -> AsyncIterator[pb.TutorStreamEvent]:
        try:
            user = self._user(context)
            body = parse(model, from_message(request), command)
            opened = await tutor_cases.open_stream(self._core, command, user, body)
        except GatewayError as exc:
            await _abort(context, exc)
            return
        try:
            async for event in opened.events():
                yield event_message(event, opened.request_id)
        finally:
            # Also when the client cancels: the worker is told no one reads any more, and
            # it closes the model's stream.
            await opened.close()

    # ---- streams -------------------------------------------------------------------------

    async def StreamExplanation(  # noqa: N802 - gRPC method name
        self, request: pb.ExplainRequest, context: Context
    ) -> AsyncIterator[pb.TutorStreamEvent]:
        """Tokens as the model writes them, then citations, usage, any error, and done."""
        async for message in self._stream(TUTOR_STREAM, ExplainRequest, request, context):
            yield message

    async def StreamLesson(  # noqa: N802 - gRPC method name
        self, request: pb.LessonRequest, context: Context
    ) -> AsyncIterator[pb.TutorStreamEvent]:
        """A micro-lesson (``tutor.lesson``), streamed like ``StreamExplanation``."""
        async for message in self._stream(TUTOR_LESSON, LessonRequest, request, context):
            yield message

    # ---- commands ------------------------------------------------------------------------

    @unary
    async def Explain(  # noqa: N802 - gRPC method name
        self, request: pb.ExplainRequest, context: Context
    ) -> pb.GroundedExplanation:
        """A structured explanation with the pages it cites."""
        user = self._user(context)
        body = parse(ExplainRequest, from_message(request), TUTOR_STREAM)
        answer = await self._core.run(TUTOR_EXPLAIN, user, body)
        return finished(answer, pb.GroundedExplanation)

    @unary
    async def ExplainImage(  # noqa: N802 - gRPC method name
        self, request: pb.ImageExplainRequest, context: Context
    ) -> pb.MultimodalExplanation:
        """An explanation of an image (``vision_unsupported`` when the model cannot see)."""
        user = self._user(context)
        body = parse(ImageExplainRequest, from_message(request), TUTOR_EXPLAIN_IMAGE)
        answer = await self._core.run(TUTOR_EXPLAIN_IMAGE, user, body)
        return finished(answer, pb.MultimodalExplanation)

    @unary
    async def DescribeImage(  # noqa: N802 - gRPC method name
        self, request: pb.DescribeImageRequest, context: Context
    ) -> pb.ImageDescription:
        """A description of an image to study from."""
        user = self._user(context)
        body = parse(DescribeImageRequest, from_message(request), TUTOR_DESCRIBE_IMAGE)
        answer = await self._core.run(TUTOR_DESCRIBE_IMAGE, user, body)
        return finished(answer, pb.ImageDescription)

    @unary
    async def ExtractPdfText(  # noqa: N802 - gRPC method name
        self, request: pb.PdfTextRequest, context: Context
    ) -> pb.PdfText:
        """The text of a PDF's first 50 pages, cut at 12,000 characters."""
        user = self._user(context)
        body = parse(PdfTextRequest, from_message(request), TUTOR_EXTRACT_PDF_TEXT)
        answer = await self._core.run(TUTOR_EXTRACT_PDF_TEXT, user, body)
        return finished(answer, pb.PdfText)

    @unary
    async def SaveChat(  # noqa: N802 - gRPC method name
        self, request: pb.ChatSaveRequest, context: Context
    ) -> pb.ChatSaved:
        """Upserts the chat of one topic."""
        user = self._user(context)
        body = parse(ChatSaveRequest, from_message(request), TUTOR_CHAT_SAVE)
        return to_message(await tutor_cases.save_chat(self._core, user, body), pb.ChatSaved)

    @unary
    async def AddMaterial(  # noqa: N802 - gRPC method name
        self, request: pb.MaterialAddRequest, context: Context
    ) -> pb.Material:
        """Stores a PDF or a text as the caller's material."""
        user = self._user(context)
        body = parse(MaterialAddRequest, from_message(request), TUTOR_MATERIAL_ADD)
        answer = await self._core.run(TUTOR_MATERIAL_ADD, user, body)
        return finished(answer, pb.Material)

    @unary
    async def DeleteMaterial(  # noqa: N802 - gRPC method name
        self, request: pb.MaterialDeleteRequest, context: Context
    ) -> pb.MaterialDeleted:
        """Deletes one of the caller's materials (``NOT_FOUND`` for any other)."""
        user = self._user(context)
        body = parse(MaterialDeleteRequest, from_message(request), TUTOR_MATERIAL_DELETE)
        answer = await self._core.run(TUTOR_MATERIAL_DELETE, user, body)
        return finished(answer, pb.MaterialDeleted)

    # ---- reads ---------------------------------------------------------------------------

    @unary
    async def GetChat(  # noqa: N802 - gRPC method name
        self, request: pb.ChatQuery, context: Context
    ) -> pb.ChatHistory:
        """The chat of one topic; no messages and no explanation when none."""
        user = self._user(context)
        query = parse(tutor_cases.ChatQuery, from_message(request))
        return to_message(await tutor_cases.chat(self._core, user, query), pb.ChatHistory)

    @unary
    async def ListMaterials(  # noqa: N802 - gRPC method name
        self, request: pb.MaterialListRequest, context: Context
    ) -> pb.MaterialList:
        """The caller's study material, newest first."""
        user = self._user(context)
        return to_message(await tutor_cases.materials(self._core, user), pb.MaterialList)
