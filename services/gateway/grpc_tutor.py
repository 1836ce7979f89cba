"""The tutor's gRPC API (``proto/tutor.proto``).

The tutor's plain commands (``Explain``, ``ExplainImage`` ...) are made from the binding
table (:mod:`services.gateway.grpc_commands`); the two streams and the reads are here. The
streams are the HTTP stream's typed variant: the same
:data:`~exammentor.contracts.tutor.StreamEvent` values, one ``TutorStreamEvent`` each, over
the same :func:`~services.gateway.tutor_stream.open_stream` (so a repeated
``idempotency-key`` is the same request, as over HTTP). A refusal before the first token is
the call's status; a client that cancels the call closes the stream as an HTTP client that
goes away does, so the tutor stops the model.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

from google.protobuf.message import Message

from exammentor._proto import tutor_pb2 as pb
from exammentor._proto import tutor_pb2_grpc
from exammentor.contracts.bindings import BY_COMMAND
from exammentor.contracts.commands import Command
from exammentor.contracts.tutor import TUTOR_LESSON, TUTOR_STREAM, StreamEvent
from services.gateway import tutor_stream
from services.gateway.codec import from_message, to_message
from services.gateway.grpc_base import Context, CoreServicer, call_key, server_stream, unary
from services.gateway.grpc_commands import with_commands
from services.gateway.inputs import parse
from services.gateway.reads import ChatQuery

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


@with_commands
class TutorApi(CoreServicer, tutor_pb2_grpc.TutorServicer):
    """The typed gRPC twin of the tutor routes."""

    SERVICE = "Tutor"

    async def _stream(
        self, command: Command[Any, Any], request: Message, context: Context
    ) -> AsyncIterator[pb.TutorStreamEvent]:
        user = self._user(context)
        opened = await tutor_stream.open_stream(
            self._core,
            BY_COMMAND[command.key],
            user,
            from_message(request),
            idempotency_key=call_key(context),
        )
        try:
            async for event in opened.events():
                yield event_message(event, opened.request_id)
        finally:
            # Also when the client cancels: the worker is told no one reads any more, and
            # it closes the model's stream.
            await opened.close()

    # ---- streams -------------------------------------------------------------------------

    @server_stream
    async def StreamExplanation(  # noqa: N802 - gRPC method name
        self, request: pb.ExplainRequest, context: Context
    ) -> AsyncIterator[pb.TutorStreamEvent]:
        """Tokens as the model writes them, then citations, usage, any error, and done."""
        async for message in self._stream(TUTOR_STREAM, request, context):
            yield message

    @server_stream
    async def StreamLesson(  # noqa: N802 - gRPC method name
        self, request: pb.LessonRequest, context: Context
    ) -> AsyncIterator[pb.TutorStreamEvent]:
        """A micro-lesson (``tutor.lesson``), streamed like ``StreamExplanation``."""
        async for message in self._stream(TUTOR_LESSON, request, context):
            yield message

    # ---- reads ---------------------------------------------------------------------------

    @unary
    async def GetChat(  # noqa: N802 - gRPC method name
        self, request: pb.ChatQuery, context: Context
    ) -> pb.ChatHistory:
        """The chat of one topic; no messages and no explanation when none."""
        user = self._user(context)
        query = parse(ChatQuery, from_message(request))
        return to_message(await self._core.chat(user, query), pb.ChatHistory)

    @unary
    async def ListMaterials(  # noqa: N802 - gRPC method name
        self, request: pb.MaterialListRequest, context: Context
    ) -> pb.MaterialList:
        """The caller's study material, newest first."""
        user = self._user(context)
        return to_message(await self._core.materials(user), pb.MaterialList)
