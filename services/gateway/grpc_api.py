"""The public gRPC API's ``StudyGateway`` service: a thin adapter over
:class:`~services.gateway.core.GatewayCore`.

Each method reads its typed message into the contract model (through the same validation as
HTTP), calls the core, and writes the typed answer; its plain command methods are made from
the binding table (:mod:`services.gateway.grpc_commands`), and errors are answered by
:mod:`services.gateway.grpc_base`, so a gRPC client and an HTTP client get the same outcome
for the same call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

from exammentor._proto import gateway_pb2 as pb
from exammentor._proto import gateway_pb2_grpc
from exammentor.contracts.api import Credentials, PlanCheck, PlanDraft, PlanStatus
from exammentor.contracts.api import Error as ErrorModel
from exammentor.contracts.bindings import BY_COMMAND
from exammentor.contracts.commands import PLAN_GENERATE
from exammentor.contracts.sessions import SaveSessionRequest, StartSessionRequest
from exammentor.messaging.dispatch import ResultTimeout
from exammentor.messaging.result_relay import RelayChunk
from services.gateway.codec import from_message, to_message
from services.gateway.grpc_base import (
    Context,
    CoreServicer,
    call_key,
    pop_session_id,
    server_stream,
    unary,
)
from services.gateway.grpc_commands import with_commands
from services.gateway.inputs import parse, parse_uuid, still_running
from services.gateway.limits import peer_host

DEFAULT_LIST_LIMIT = 20


def _plan_event(chunk: RelayChunk) -> pb.PlanEvent:
    """One relayed chunk of ``plan.generate`` as a typed stream event."""
    event = pb.PlanEvent(request_id=str(chunk.request_id), seq=chunk.seq)
    data = dict(chunk.data)
    if chunk.kind == "result":
        event.complete.CopyFrom(
            to_message(PLAN_GENERATE.result.model_validate(data), pb.PlanResult)
        )
    elif chunk.kind == "error":
        event.error.CopyFrom(_error(data, chunk.request_id))
    elif data.get("type") == "draft":
        event.draft.CopyFrom(to_message(PlanDraft.model_validate(data), pb.PlanDraft))
    elif data.get("type") == "verification":
        event.verification.CopyFrom(to_message(PlanCheck.model_validate(data), pb.PlanCheck))
    else:
        stage = str(data.pop("stage", data.pop("type", "status")))
        data.pop("type", None)
        message = str(data.pop("message", ""))
        status = PlanStatus(stage=stage, message=message, details=data)
        event.status.CopyFrom(to_message(status, pb.PlanStatus))
    return event


def _error(data: dict[str, Any], request_id: UUID) -> pb.Error:
    details = {k: v for k, v in data.items() if k not in {"code", "message", "request_id"}}
    error = ErrorModel(
        code=str(data.get("code", "failed")),
        message=str(data.get("message", "")),
        details=details,
        request_id=request_id,
    )
    return to_message(error, pb.Error)


@with_commands
class StudyGateway(CoreServicer, gateway_pb2_grpc.StudyGatewayServicer):
    """The typed gRPC API over the gateway's core (``Echo`` is made from the binding table)."""

    SERVICE = "StudyGateway"

    # ---- users ---------------------------------------------------------------------------

    @unary
    async def Register(self, request: pb.Credentials, context: Context) -> pb.Token:  # noqa: N802
        """Creates a user and returns a token."""
        creds = parse(Credentials, from_message(request))
        client = peer_host(context.peer())
        return to_message(await self._core.register(creds, client=client), pb.Token)

    @unary
    async def Login(self, request: pb.Credentials, context: Context) -> pb.Token:  # noqa: N802
        """Checks a password and returns a token."""
        creds = parse(Credentials, from_message(request))
        client = peer_host(context.peer())
        return to_message(await self._core.login(creds, client=client), pb.Token)

    # ---- commands ------------------------------------------------------------------------

    @server_stream
    async def GeneratePlan(  # noqa: N802 - gRPC method name
        self, request: pb.PlanRequest, context: Context
    ) -> AsyncIterator[pb.PlanEvent]:
        """The planner's stages as they happen, then ``complete`` or ``error``."""
        user = self._user(context)
        data = from_message(request)
        session_id = pop_session_id(data)
        async with self._core.stream(
            BY_COMMAND[PLAN_GENERATE.key],
            user,
            data,
            idempotency_key=call_key(context),
            session_id=session_id,
        ) as run:
            try:
                async for chunk in run.chunks():
                    yield _plan_event(chunk)
            except ResultTimeout:
                raise still_running(run.request_id) from None

    # ---- stored resources ----------------------------------------------------------------

    @unary
    async def GetRequest(self, request: pb.RequestRef, context: Context) -> pb.StoredRequest:  # noqa: N802
        """A stored request of the caller's."""
        user = self._user(context)
        stored = await self._core.stored_request(user, parse_uuid("request_id", request.request_id))
        return to_message(stored, pb.StoredRequest)

    @unary
    async def ListRequests(  # noqa: N802 - gRPC method name
        self, request: pb.RequestListRequest, context: Context
    ) -> pb.RequestList:
        """The caller's newest requests."""
        user = self._user(context)
        found = await self._core.requests(user, min(request.limit or DEFAULT_LIST_LIMIT, 100))
        return to_message(found, pb.RequestList)

    @server_stream
    async def FollowRequest(  # noqa: N802 - gRPC method name
        self, request: pb.RequestFollow, context: Context
    ) -> AsyncIterator[pb.RequestEvent]:
        """A request's progress after ``after``, then its end, as it happens."""
        user = self._user(context)
        request_id = parse_uuid("request_id", request.request_id)
        lines = await self._core.follow(user, request_id, request.after)
        async for line in lines:
            data = {k: v for k, v in line.items() if k not in {"seq", "type"}}
            event = pb.RequestEvent(
                request_id=str(request_id), seq=int(line["seq"]), type=str(line["type"])
            )
            event.data.update(data)
            yield event

    @unary
    async def GetPlan(self, request: pb.PlanRef, context: Context) -> pb.StoredPlan:  # noqa: N802
        """One of the caller's stored plans."""
        user = self._user(context)
        plan = await self._core.stored_plan(user, parse_uuid("plan_id", request.plan_id))
        return to_message(plan, pb.StoredPlan)

    @unary
    async def ListPlans(self, request: pb.PlanListRequest, context: Context) -> pb.PlanList:  # noqa: N802
        """The caller's stored plans, newest first."""
        user = self._user(context)
        session_id = parse_uuid("session_id", request.session_id) if request.session_id else None
        plans = await self._core.plans(user, session_id, request.limit or DEFAULT_LIST_LIMIT)
        return to_message(plans, pb.PlanList)

    # ---- study sessions ------------------------------------------------------------------

    @unary
    async def StartSession(  # noqa: N802 - gRPC method name
        self, request: pb.StartSessionRequest, context: Context
    ) -> pb.SessionStarted:
        """A new study session."""
        user = self._user(context)
        body = parse(StartSessionRequest, from_message(request))
        return to_message(await self._core.start_session(user, body), pb.SessionStarted)

    @unary
    async def GetSessionState(self, request: pb.SessionRef, context: Context) -> pb.SessionState:  # noqa: N802
        """A session's phase and context."""
        user = self._user(context)
        state = await self._core.session_state(user, parse_uuid("session_id", request.session_id))
        return to_message(state, pb.SessionState)

    @unary
    async def SaveSession(  # noqa: N802 - gRPC method name
        self, request: pb.SaveSessionRequest, context: Context
    ) -> pb.SessionSaved:
        """Stores the context and moves the phase when allowed."""
        user = self._user(context)
        session_id = parse_uuid("session_id", request.session_id)
        data = from_message(request)
        data.pop("session_id", None)
        body = parse(SaveSessionRequest, data)
        return to_message(await self._core.save_session(user, session_id, body), pb.SessionSaved)

    @unary
    async def ListSessions(  # noqa: N802 - gRPC method name
        self, request: pb.SessionListRequest, context: Context
    ) -> pb.SessionList:
        """The caller's sessions, newest first."""
        user = self._user(context)
        return to_message(
            await self._core.sessions(user, request.limit or DEFAULT_LIST_LIMIT), pb.SessionList
        )

    @unary
    async def GetSessionHistory(  # noqa: N802 - gRPC method name
        self, request: pb.SessionRef, context: Context
    ) -> pb.SessionHistory:
        """A session's audit log."""
        user = self._user(context)
        history = await self._core.session_history(
            user, parse_uuid("session_id", request.session_id)
        )
        return to_message(history, pb.SessionHistory)
