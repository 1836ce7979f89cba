"""The autopilot gRPC API (``proto/autopilot.proto``).

``Start``, ``Pause``, ``Resume``, ``Stop`` and ``Answer`` are made from the binding table
(:mod:`services.gateway.grpc_commands`): a field left at its proto3 value takes the model's
default, except where the model has no default: there the proto3 value is the value sent, so
a plan whose ``overview`` or ``rationale`` is empty is as good here as over HTTP. An empty
``focus_topics`` means every plan topic (proto3 cannot send an empty list apart from none).
The plan of a start request is ``gateway.proto``'s ``StudyPlan``, the message the planner
answers with. The status and the watch stream are here, over the core's reads. The waiting
question goes out as an ``AutopilotQuestionView``, which has no field for an answer: a drift
that tried to send one would fail in :func:`to_message`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from exammentor._proto import autopilot_pb2 as pb
from exammentor._proto import autopilot_pb2_grpc
from services.gateway.codec import to_message
from services.gateway.grpc_base import Context, CoreServicer, server_stream, unary
from services.gateway.grpc_commands import with_commands
from services.gateway.inputs import parse, parse_uuid
from services.gateway.reads import WatchQuery


@with_commands
class AutopilotApi(CoreServicer, autopilot_pb2_grpc.AutopilotServicer):
    """The typed gRPC twin of the autopilot routes."""

    SERVICE = "Autopilot"

    @unary
    async def GetStatus(  # noqa: N802 - gRPC method name
        self, request: pb.AutopilotSessionRef, context: Context
    ) -> pb.AutopilotStatusResponse:
        """The newest run's status, steps, present lesson or waiting question."""
        user = self._user(context)
        session_id = parse_uuid("session_id", request.session_id)
        found = await self._core.autopilot_status(user, session_id)
        return to_message(found, pb.AutopilotStatusResponse)

    @server_stream
    async def Watch(  # noqa: N802 - gRPC method name
        self, request: pb.AutopilotWatchRequest, context: Context
    ) -> AsyncIterator[pb.AutopilotWatchEvent]:
        """The run's steps as they are stored, from ``after`` on, until the run ends."""
        user = self._user(context)
        session_id = parse_uuid("session_id", request.session_id)
        query = parse(
            WatchQuery,
            {"after": request.after, "run": request.run if request.HasField("run") else None},
        )
        async for event in self._core.autopilot_watch(user, session_id, query):
            yield to_message(event, pb.AutopilotWatchEvent)
