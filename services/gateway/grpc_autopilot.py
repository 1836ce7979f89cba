"""The autopilot gRPC API (``proto/autopilot.proto``): a thin adapter over
:class:`~services.gateway.autopilot_cases.AutopilotCases`, the use cases the HTTP routes call
too.

Each method reads its typed message into the contract model through the core's validation
(:func:`~services.gateway.core.parse`, the HTTP routes' too), calls the same use case and
writes the typed answer. A field left at its proto3 value takes the model's default (as the
codec reads it), except where the model has no default: there the proto3 value is the value
sent, so a plan whose ``overview`` or ``rationale`` is empty is as good here as over HTTP.
An empty ``focus_topics`` means every plan topic (proto3 cannot send an empty list apart
from none). The plan of a start request is ``gateway.proto``'s ``StudyPlan``, the message the
planner answers with, so it is read like every other field and needs no converter of its
own. The waiting question goes out as an ``AutopilotQuestionView``, which has no field for an
answer: a drift that tried to send one would fail in :func:`to_message`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, get_args

from google.protobuf import json_format
from google.protobuf.message import Message
from pydantic import BaseModel

from exammentor._proto import autopilot_pb2 as pb
from exammentor._proto import autopilot_pb2_grpc
from exammentor.contracts.autopilot import (
    AUTOPILOT_ANSWER,
    AUTOPILOT_START,
    AutopilotAnswerRequest,
    AutopilotControl,
    AutopilotStartRequest,
)
from services.gateway.autopilot_cases import AutopilotCases, WatchQuery
from services.gateway.codec import from_message, to_message
from services.gateway.core import GatewayCore, GatewayError, parse, parse_uuid
from services.gateway.grpc_api import Context, CoreServicer, _abort, pop_session_id, unary


def _fields(message: Message, model: type[BaseModel]) -> dict[str, Any]:
    """A request message as a dict for ``model``: what the codec reads (fields left at their
    proto3 value are left out, so the model's defaults apply), plus the proto3 value of every
    field the model *requires* (an empty ``overview`` is the empty string, not missing)."""
    full = json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return _with_required(from_message(message), full, model)


def _with_required(
    sparse: dict[str, Any], full: dict[str, Any], model: type[BaseModel]
) -> dict[str, Any]:
    for name, info in model.model_fields.items():
        if name not in full:
            continue
        if name not in sparse:
            if info.is_required():
                sparse[name] = full[name]
            continue
        nested = _nested_model(info.annotation)
        if nested is None:
            continue
        if isinstance(sparse[name], dict):
            sparse[name] = _with_required(sparse[name], full[name], nested)
        elif isinstance(sparse[name], list):
            sparse[name] = [
                _with_required(item, whole, nested) if isinstance(item, dict) else item
                for item, whole in zip(sparse[name], full[name], strict=True)
            ]
    return sparse


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds (alone, in a list or with None), if it holds one."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _nested_model(arg)
        if found is not None:
            return found
    return None


class AutopilotApi(CoreServicer, autopilot_pb2_grpc.AutopilotServicer):
    """The typed gRPC twin of the autopilot routes."""

    def __init__(self, core: GatewayCore) -> None:
        super().__init__(core)
        self._cases = AutopilotCases(core)

    @unary
    async def Start(  # noqa: N802 - gRPC method name
        self, request: pb.AutopilotStartRequest, context: Context
    ) -> pb.AutopilotStartResponse:
        """Starts a timed run of the session (a new study session when none is named)."""
        user = self._user(context)
        data = _fields(request, AutopilotStartRequest)
        session_id = pop_session_id(data)
        body = parse(AutopilotStartRequest, data, AUTOPILOT_START)
        started = await self._cases.start(user, session_id, body)
        return to_message(started, pb.AutopilotStartResponse)

    @unary
    async def GetStatus(  # noqa: N802 - gRPC method name
        self, request: pb.AutopilotSessionRef, context: Context
    ) -> pb.AutopilotStatusResponse:
        """The newest run's status, steps, present lesson or waiting question."""
        user = self._user(context)
        session_id = parse_uuid("session_id", request.session_id)
        return to_message(await self._cases.status(user, session_id), pb.AutopilotStatusResponse)

    async def _control(
        self, request: pb.AutopilotSessionRef, context: Context, control: AutopilotControl
    ) -> pb.AutopilotControlResponse:
        user = self._user(context)
        session_id = parse_uuid("session_id", request.session_id)
        answer = await self._cases.control(user, session_id, control)
        return to_message(answer, pb.AutopilotControlResponse)

    @unary
    async def Pause(  # noqa: N802 - gRPC method name
        self, request: pb.AutopilotSessionRef, context: Context
    ) -> pb.AutopilotControlResponse:
        """Pauses the run at once; its clock and the answer wait stop."""
        return await self._control(request, context, "pause")

    @unary
    async def Resume(  # noqa: N802 - gRPC method name
        self, request: pb.AutopilotSessionRef, context: Context
    ) -> pb.AutopilotControlResponse:
        """Resumes a paused run where it was."""
        return await self._control(request, context, "resume")

    @unary
    async def Stop(  # noqa: N802 - gRPC method name
        self, request: pb.AutopilotSessionRef, context: Context
    ) -> pb.AutopilotControlResponse:
        """Stops the run for good, at once."""
        return await self._control(request, context, "stop")

    @unary
    async def Answer(  # noqa: N802 - gRPC method name
        self, request: pb.AutopilotAnswerRequest, context: Context
    ) -> pb.AutopilotAnswerResponse:
        """Answers the waiting question, by its id."""
        user = self._user(context)
        data = _fields(request, AutopilotAnswerRequest)
        session_id = parse_uuid("session_id", data.pop("session_id", ""))
        body = parse(AutopilotAnswerRequest, data, AUTOPILOT_ANSWER)
        answer = await self._cases.answer(user, session_id, body)
        return to_message(answer, pb.AutopilotAnswerResponse)

    async def Watch(  # noqa: N802 - gRPC method name
        self, request: pb.AutopilotWatchRequest, context: Context
    ) -> AsyncIterator[pb.AutopilotWatchEvent]:
        """The run's steps as they are stored, from ``after`` on, until the run ends."""
        try:
            user = self._user(context)
            session_id = parse_uuid("session_id", request.session_id)
            query = parse(
                WatchQuery,
                {"after": request.after, "run": request.run if request.HasField("run") else None},
            )
            async for event in self._cases.watch(user, session_id, query.after, query.run):
                yield to_message(event, pb.AutopilotWatchEvent)
        except GatewayError as exc:
            await _abort(context, exc)
