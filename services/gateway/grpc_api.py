"""The public gRPC API: twins of the HTTP routes, with server streaming for progress."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from uuid import UUID

import grpc
from exammentor.contracts.plan import PlanRequest
from grpc import aio
from pydantic import ValidationError

from exammentor._proto import gateway_pb2, gateway_pb2_grpc
from exammentor.contracts.commands import PLAN_GENERATE
from exammentor.db import Pool
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

Context = aio.ServicerContext[object, object]


def _token(t: TokenResponse) -> gateway_pb2.Token:
    return gateway_pb2.Token(
        access_token=t.access_token, token_type=t.token_type, user_id=str(t.user_id)
    )


def _event(chunk: RelayChunk) -> gateway_pb2.StreamEvent:
    kind = {"result": "complete", "error": "error"}.get(chunk.kind) or str(
        chunk.data.get("type", "status")
    )
    return gateway_pb2.StreamEvent(
        request_id=str(chunk.request_id), seq=chunk.seq, type=kind, data_json=json.dumps(chunk.data)
    )


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

    async def GeneratePlan(  # noqa: N802 - gRPC method name
        self, request: gateway_pb2.PlanRequest, context: Context
    ) -> AsyncIterator[gateway_pb2.StreamEvent]:
        """Streams the plan's progress, then the final plan (type ``complete``)."""
        user = await self._user(context)
        try:
            body = PlanRequest.model_validate_json(request.request_json or "{}")
        except ValidationError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, validation_reason(exc))
            raise AssertionError("unreachable") from exc
        try:
            async with self._dispatcher.dispatch(
                PLAN_GENERATE, user, body.model_dump(mode="json")
            ) as run:
                try:
                    async for chunk in run.chunks(self._timeout_s):
                        yield _event(chunk)
                except ResultTimeout:
                    await context.abort(
                        grpc.StatusCode.DEADLINE_EXCEEDED,
                        f"still running; fetch request {run.request_id} later",
                    )
        except BrokerUnavailable:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the command could not be queued")

    async def GetRequest(  # noqa: N802 - gRPC method name
        self, request: gateway_pb2.RequestRef, context: Context
    ) -> gateway_pb2.StoredRequest:
        """A stored request of the caller's."""
        user = await self._user(context)
        try:
            request_id = UUID(request.request_id)
        except ValueError:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "request_id: not a UUID")
            raise AssertionError("unreachable") from None
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
