"""The public gRPC API: a thin adapter over :class:`~services.gateway.core.GatewayCore`.

Each method reads its typed message into the contract model (through the same validation as
HTTP), calls the core, and writes the typed answer. A :class:`GatewayError` becomes the
status code its declaration names, with the machine-readable code in the trailing metadata
(``error-code``), so a gRPC client and an HTTP client get the same outcome for the same call.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar
from uuid import UUID

import grpc
from google.protobuf.message import Message
from grpc import aio

from exammentor._proto import gateway_pb2 as pb
from exammentor._proto import gateway_pb2_grpc
from exammentor.contracts.api import (
    Credentials,
    EchoRequest,
    PlanCheck,
    PlanDraft,
    PlanStatus,
)
from exammentor.contracts.api import Error as ErrorModel
from exammentor.contracts.commands import PLAN_GENERATE, SYSTEM_ECHO, EchoPayload
from exammentor.contracts.plan import PlanRequest
from exammentor.contracts.sessions import SaveSessionRequest, StartSessionRequest
from exammentor.messaging.dispatch import ResultTimeout
from exammentor.messaging.result_relay import RelayChunk
from services.gateway.codec import from_message, to_message
from services.gateway.core import (
    IDEMPOTENCY_KEY,
    CommandAnswer,
    GatewayCore,
    GatewayError,
    idempotency_key,
    parse,
    parse_uuid,
    still_running,
)
from services.gateway.limits import peer_host

Context = aio.ServicerContext[Any, Any]
Req = TypeVar("Req")
Resp = TypeVar("Resp")
M = TypeVar("M", bound=Message)

DEFAULT_LIST_LIMIT = 20


async def _abort(context: Context, error: GatewayError) -> None:
    metadata: list[tuple[str, str]] = [("error-code", error.code)]
    if error.request_id is not None:
        metadata.append(("request-id", str(error.request_id)))
    if "retry_after_s" in error.details:
        metadata.append(("retry-after", str(error.details["retry_after_s"])))
    context.set_trailing_metadata(tuple(metadata))
    await context.abort(grpc.StatusCode[error.error.grpc_status], error.message)


def unary(
    method: Callable[[Any, Req, Context], Awaitable[Resp]],
) -> Callable[[Any, Req, Context], Awaitable[Resp]]:
    """Answers a :class:`GatewayError` raised by a unary method with its declared status."""

    @functools.wraps(method)
    async def wrapped(self: Any, request: Req, context: Context) -> Resp:
        try:
            take_idempotency_key(context)
            return await method(self, request, context)
        except GatewayError as exc:
            await _abort(context, exc)
            raise AssertionError("unreachable") from exc

    return wrapped


def metadata_value(context: Context, key: str) -> str | None:
    """The call's first metadata value under ``key`` (None when it sent none)."""
    return next((str(v) for k, v in context.invocation_metadata() or () if k == key), None)


def take_idempotency_key(context: Context) -> None:
    """Makes the call's ``idempotency-key`` metadata the key of the command it sends."""
    IDEMPOTENCY_KEY.set(idempotency_key(metadata_value(context, "idempotency-key")))


def finished(answer: CommandAnswer[Any], cls: type[M]) -> M:
    """A command's result as ``cls`` with its request id; ``still_running`` when the wait ran
    out (as HTTP answers 202: fetch the request later with ``GetRequest``)."""
    return to_message(answer.finished(), cls, request_id=str(answer.request_id))


def pop_session_id(data: dict[str, Any]) -> UUID | None:
    """Takes a request's ``session_id`` out of its fields (the HTTP routes' query parameter);
    None when it is empty."""
    raw = data.pop("session_id", "")
    return parse_uuid("session_id", raw) if raw else None


class CoreServicer:
    """What each gRPC service of the gateway shares: the core, and the caller named by the
    call's ``authorization`` metadata (the HTTP bearer token)."""

    def __init__(self, core: GatewayCore) -> None:
        self._core = core

    def _user(self, context: Context) -> UUID:
        return self._core.authenticate(metadata_value(context, "authorization"))


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


class StudyGateway(CoreServicer, gateway_pb2_grpc.StudyGatewayServicer):
    """The typed gRPC API over the gateway's core."""

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

    @unary
    async def Echo(self, request: pb.EchoRequest, context: Context) -> pb.EchoResult:  # noqa: N802
        """``system.echo`` through one service."""
        user = self._user(context)
        body = parse(EchoRequest, from_message(request))
        answer = await self._core.run(SYSTEM_ECHO[body.service], user, EchoPayload(text=body.text))
        return finished(answer, pb.EchoResult)

    async def GeneratePlan(  # noqa: N802 - gRPC method name
        self, request: pb.PlanRequest, context: Context
    ) -> AsyncIterator[pb.PlanEvent]:
        """The planner's stages as they happen, then ``complete`` or ``error``."""
        try:
            take_idempotency_key(context)
            user = self._user(context)
            data = from_message(request)
            session_id = pop_session_id(data)
            body = parse(PlanRequest, data, PLAN_GENERATE)
            async with self._core.stream(PLAN_GENERATE, user, body, session_id=session_id) as run:
                try:
                    async for chunk in run.chunks():
                        yield _plan_event(chunk)
                except ResultTimeout:
                    raise still_running(run.request_id) from None
        except GatewayError as exc:
            await _abort(context, exc)

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

    async def FollowRequest(  # noqa: N802 - gRPC method name
        self, request: pb.RequestFollow, context: Context
    ) -> AsyncIterator[pb.RequestEvent]:
        """A request's progress after ``after``, then its end, as it happens."""
        try:
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
        except GatewayError as exc:
            await _abort(context, exc)

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
