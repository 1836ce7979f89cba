"""The public gRPC API: twins of the HTTP routes, with server streaming for progress."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import grpc
from grpc import aio
from pydantic import ValidationError

from exammentor._proto import gateway_pb2, gateway_pb2_grpc
from exammentor.contracts.commands import PLAN_GENERATE
from exammentor.contracts.plan import PlanRequest
from exammentor.db import Pool, user_transaction
from exammentor.relay import RelayChunk
from exammentor.validation import validation_reason
from services.gateway import repo
from services.gateway.dispatch import BrokerUnavailable, Dispatcher, ResultTimeout
from services.gateway.domain import (
    Credentials,
    InvalidToken,
    TokenIssuer,
    TokenResponse,
    hash_password,
    verify_password,
)
from services.planner import repo as plans

Context = aio.ServicerContext[object, object]


def _token(t: TokenResponse) -> gateway_pb2.Token:
    return gateway_pb2.Token(
        access_token=t.access_token, token_type=t.token_type, user_id=str(t.user_id)
    )


def _event(chunk: RelayChunk, complete: str | None = None) -> gateway_pb2.StreamEvent:
    """A relayed chunk as a stream event; ``complete`` picks one key of a final result."""
    kind = {"result": "complete", "error": "error"}.get(chunk.kind) or str(
        chunk.data.get("type", "status")
    )
    data = chunk.data
    if (
        chunk.kind == "result"
        and complete is not None
        and complete in data
        and not data.get("needs_clarification")
    ):
        data = data[complete]
    return gateway_pb2.StreamEvent(
        request_id=str(chunk.request_id), seq=chunk.seq, type=kind, data_json=json.dumps(data)
    )


def _text(value: Any) -> str:
    return "" if value is None else str(value)


async def _uuid(context: Context, field: str, value: str) -> UUID:
    """``value`` as a UUID, or the call aborted with INVALID_ARGUMENT naming ``field``."""
    try:
        return UUID(value)
    except ValueError:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{field}: not a UUID")
        raise AssertionError("unreachable") from None


async def _optional_uuid(context: Context, field: str, value: str) -> UUID | None:
    """Like :func:`_uuid`, with the empty string (proto3's unset) as None."""
    return await _uuid(context, field, value) if value else None


class StudyGateway(gateway_pb2_grpc.StudyGatewayServicer):
    """gRPC servicer sharing the HTTP side's dispatcher, tokens and repo."""

    def __init__(
        self,
        pool: Pool,
        dispatcher: Dispatcher,
        tokens: TokenIssuer,
        timeout_s: float,
    ):
        self._pool = pool
        self._dispatcher = dispatcher
        self._tokens = tokens
        self._timeout_s = timeout_s

    async def _user(self, context: Context) -> UUID:
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                scheme, _, token = str(value).partition(" ")
                if scheme.lower() == "bearer" and token:
                    try:
                        return self._tokens.verify(token.strip())
                    except InvalidToken as exc:
                        await context.abort(
                            grpc.StatusCode.UNAUTHENTICATED, f"invalid token: {exc}"
                        )
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing bearer token")
        raise AssertionError("unreachable")

    @staticmethod
    async def _credentials(request: gateway_pb2.Credentials, context: Context) -> Credentials:
        try:
            return Credentials(name=request.name, password=request.password)
        except ValidationError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, validation_reason(exc))
            raise AssertionError("unreachable") from exc

    async def Register(  # noqa: N802 - gRPC method name
        self, request: gateway_pb2.Credentials, context: Context
    ) -> gateway_pb2.Token:
        """Creates a user and returns a token."""
        creds = await self._credentials(request, context)
        try:
            user_id = await repo.create_user(self._pool, creds.name, hash_password(creds.password))
        except repo.NameTaken:
            await context.abort(grpc.StatusCode.ALREADY_EXISTS, f"the name {creds.name!r} is taken")
        return _token(self._tokens.issue(user_id, creds.name))

    async def Login(  # noqa: N802 - gRPC method name
        self, request: gateway_pb2.Credentials, context: Context
    ) -> gateway_pb2.Token:
        """Checks a password and returns a token."""
        creds = await self._credentials(request, context)
        found = await repo.credentials(self._pool, creds.name)
        if found is None or not verify_password(found[1], creds.password):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "unknown name or wrong password")
            raise AssertionError("unreachable")
        return _token(self._tokens.issue(found[0], creds.name))

    async def _plan_request(
        self, request: gateway_pb2.PlanRequest, context: Context, user: UUID
    ) -> tuple[PlanRequest, UUID | None]:
        """The validated body and session, or the call aborted with the field and reason."""
        try:
            body = PlanRequest.model_validate(json.loads(request.request_json or "{}"))
        except json.JSONDecodeError as exc:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"request_json: not JSON: {exc.msg}"
            )
            raise AssertionError("unreachable") from exc
        except ValidationError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, validation_reason(exc))
            raise AssertionError("unreachable") from exc
        session_id = await _optional_uuid(context, "session_id", request.session_id)
        if session_id is None:
            return body, None
        async with user_transaction(self._pool, user) as conn:
            found = await plans.session_exists(conn, session_id)
        if not found:
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"session_id: no study session {session_id}"
            )
        return body, session_id

    async def _plan_stream(
        self, request: gateway_pb2.PlanRequest, context: Context, complete: str | None
    ) -> AsyncIterator[gateway_pb2.StreamEvent]:
        """Sends ``plan.generate`` and streams its progress, then the final event."""
        user = await self._user(context)
        body, session_id = await self._plan_request(request, context, user)
        try:
            async with self._dispatcher.dispatch(
                PLAN_GENERATE, user, body.model_dump(mode="json"), session_id=session_id
            ) as run:
                try:
                    async for chunk in run.chunks(self._timeout_s):
                        yield _event(chunk, complete)
                except ResultTimeout:
                    await context.abort(
                        grpc.StatusCode.DEADLINE_EXCEEDED,
                        f"still running; fetch request {run.request_id} later",
                    )
        except BrokerUnavailable:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the command could not be queued")

    async def GeneratePlan(  # noqa: N802 - gRPC method name
        self, request: gateway_pb2.PlanRequest, context: Context
    ) -> AsyncIterator[gateway_pb2.StreamEvent]:
        """Streams the plan's progress, then the final ``StudyPlan`` (type ``complete``)."""
        async for event in self._plan_stream(request, context, "final_plan"):
            yield event

    async def GenerateVerifiedPlan(  # noqa: N802 - gRPC method name
        self, request: gateway_pb2.PlanRequest, context: Context
    ) -> AsyncIterator[gateway_pb2.StreamEvent]:
        """Streams the progress, then the plan after the verify-and-fix loop."""
        async for event in self._plan_stream(request, context, "final_plan"):
            yield event

    async def GenerateVerifiedPlanWithHistory(  # noqa: N802 - gRPC method name
        self, request: gateway_pb2.PlanRequest, context: Context
    ) -> AsyncIterator[gateway_pb2.StreamEvent]:
        """Streams the progress, then the final plan with every version and diff."""
        async for event in self._plan_stream(request, context, None):
            yield event

    async def StreamVerifiedPlan(  # noqa: N802 - gRPC method name
        self, request: gateway_pb2.PlanRequest, context: Context
    ) -> AsyncIterator[gateway_pb2.StreamEvent]:
        """Every stage as it happens (status, draft, verification), then the history."""
        async for event in self._plan_stream(request, context, None):
            yield event

    async def GetPlan(  # noqa: N802 - gRPC method name
        self, request: gateway_pb2.PlanRef, context: Context
    ) -> gateway_pb2.StoredPlan:
        """One of the caller's stored plans."""
        user = await self._user(context)
        plan_id = await _uuid(context, "plan_id", request.plan_id)
        async with user_transaction(self._pool, user) as conn:
            row = await plans.get_study_plan(conn, plan_id)
        if row is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no plan {plan_id}")
            raise AssertionError("unreachable")
        return gateway_pb2.StoredPlan(
            plan_id=str(row["plan_id"]),
            session_id=_text(row["session_id"]),
            request_id=str(row["request_id"]),
            created_at=row["created_at"].isoformat(),
            from_cache=row["from_cache"],
            plan_json=json.dumps(row["plan"]),
            verification_json=json.dumps(row["verification"]),
            history_json=json.dumps(row["history"]),
        )

    async def ListPlans(  # noqa: N802 - gRPC method name
        self, request: gateway_pb2.PlanListRequest, context: Context
    ) -> gateway_pb2.PlanList:
        """The caller's stored plans, newest first."""
        user = await self._user(context)
        session_id = await _optional_uuid(context, "session_id", request.session_id)
        async with user_transaction(self._pool, user) as conn:
            rows = await plans.list_study_plans(
                conn, session_id=session_id, limit=request.limit or 20
            )
        return gateway_pb2.PlanList(
            plans=[
                gateway_pb2.PlanSummary(
                    plan_id=str(row["plan_id"]),
                    session_id=_text(row["session_id"]),
                    request_id=str(row["request_id"]),
                    created_at=row["created_at"].isoformat(),
                    from_cache=row["from_cache"],
                    exam_name=_text(row["exam_name"]),
                    total_days=row["total_days"] or 0,
                    coverage_percent=row["coverage_percent"] or 0.0,
                    is_valid=bool(row["is_valid"]),
                )
                for row in rows
            ]
        )

    async def GetRequest(  # noqa: N802 - gRPC method name
        self, request: gateway_pb2.RequestRef, context: Context
    ) -> gateway_pb2.StoredRequest:
        """A stored request of the caller's."""
        user = await self._user(context)
        request_id = await _uuid(context, "request_id", request.request_id)
        row = await repo.get_request(self._pool, user, request_id)
        if row is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no request {request_id}")
            raise AssertionError("unreachable")
        return gateway_pb2.StoredRequest(
            request_id=str(row["id"]),
            kind=row["kind"],
            status=row["status"],
            result_json=json.dumps(row["result"]) if row["result"] is not None else "",
            error_json=json.dumps(row["error"]) if row["error"] is not None else "",
        )
