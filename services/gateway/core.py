"""The gateway's use cases, once, for every transport.

HTTP (:mod:`services.gateway.http_api`) and gRPC (:mod:`services.gateway.grpc_api`) are thin
adapters over :class:`GatewayCore`: they turn their input into a dict or a pydantic model,
call the core, and turn what it returns (or the :class:`GatewayError` it raises) into their
own answer. Validation, authentication, timing, ownership checks and the meaning of every
error code live here, so the transports cannot drift apart.

Errors are :class:`~exammentor.contracts.commands.ErrorCode` declarations: each names its
HTTP status and gRPC status code beside its machine-readable code.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from uuid import UUID

from pydantic import BaseModel, ValidationError

from exammentor import read_models, sessions
from exammentor.contracts.api import (
    Credentials,
    Error,
    PlanList,
    RequestList,
    StoredPlan,
    StoredRequest,
    Token,
)
from exammentor.contracts.commands import (
    BAD_CREDENTIALS,
    DEAD_LETTERED,
    GATEWAY_ERRORS,
    IDEMPOTENCY_CONFLICT,
    INVALID_REQUEST,
    INVALID_TRANSITION,
    MAINTENANCE,
    NAME_TAKEN,
    NOT_FOUND,
    QUEUED,
    SESSION_NOT_FOUND,
    STILL_RUNNING,
    TOO_MANY_ATTEMPTS,
    UNAUTHENTICATED,
    USER_MISMATCH,
    Command,
    ErrorCode,
)
from exammentor.contracts.sessions import (
    InvalidTransition,
    SaveSessionRequest,
    SessionHistory,
    SessionList,
    SessionSaved,
    SessionStarted,
    SessionState,
    StartSessionRequest,
)
from exammentor.db import Pool, user_transaction
from exammentor.messaging import pipeline
from exammentor.messaging.dispatch import BrokerUnavailable, Dispatched, Dispatcher, ResultTimeout
from exammentor.messaging.result_relay import RelayChunk
from exammentor.ops.maintenance import MaintenanceGate
from exammentor.telemetry import start_span
from exammentor.validation import field_name
from services.gateway import repo
from services.gateway.auth import InvalidToken, TokenIssuer, hash_password, verify_password
from services.gateway.limits import AttemptLimiter, TooManyAttempts
from services.gateway.settings import AttemptLimits
from services.gateway.watch import RequestWatch

P = TypeVar("P", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)

_GATEWAY_CODES = {e.code: e for e in GATEWAY_ERRORS}


class GatewayError(Exception):
    """A refusal or failure, as every transport answers it."""

    def __init__(
        self,
        error: ErrorCode,
        message: str,
        details: dict[str, Any] | None = None,
        request_id: UUID | None = None,
    ) -> None:
        super().__init__(message)
        self.error = error
        self.message = message
        self.details = details or {}
        self.request_id = request_id

    @property
    def code(self) -> str:
        """The machine-readable code."""
        return self.error.code

    def as_error(self) -> Error:
        """The error as the API's contract shape."""
        return Error(
            code=self.code, message=self.message, details=self.details, request_id=self.request_id
        )

    def body(self) -> dict[str, Any]:
        """The HTTP body's ``detail``: code, message and the details flat beside them."""
        body: dict[str, Any] = {**self.details, "code": self.code, "message": self.message}
        if self.request_id is not None:
            body["request_id"] = str(self.request_id)
        return body


def command_error(
    command: Command[Any, Any], data: dict[str, Any], request_id: UUID
) -> GatewayError:
    """A command's final error chunk as a :class:`GatewayError` with its declared statuses.

    An undeclared code (a worker older or newer than this gateway) is answered as a failure
    of the pipeline rather than guessed at.
    """
    code = str(data.get("code", ""))
    details = {k: v for k, v in data.items() if k not in {"code", "message", "request_id"}}
    if command.declares(code):
        error = command.error(code)
    else:
        error = _GATEWAY_CODES.get(code, DEAD_LETTERED)
    return GatewayError(error, str(data.get("message", code)), details, request_id)


def _unstorable_text(data: Any, path: str = "") -> tuple[str, str] | None:
    """The first string in ``data`` Postgres cannot store, as ``(field, reason)``."""
    if isinstance(data, str):
        if "\x00" in data:
            return path or "body", "contains a NUL character"
        try:
            data.encode("utf-8")
        except UnicodeEncodeError:
            return path or "body", "is not valid UTF-8 text (a lone surrogate)"
        return None
    if isinstance(data, dict):
        items: Any = data.items()
    elif isinstance(data, list):
        items = enumerate(data)
    else:
        return None
    for key, value in items:
        key_problem = _unstorable_text(key, path) if isinstance(key, str) else None
        where = f"{path}.{key}" if path else str(key)
        found = key_problem or _unstorable_text(value, where)
        if found is not None:
            return found
    return None


def parse(model: type[P], data: Any, command: Command[Any, Any] | None = None) -> P:
    """``data`` as ``model``, or a :class:`GatewayError` naming each bad field.

    Text Postgres cannot store (NUL characters, lone surrogates) is refused wherever it is,
    before anything is stored, published or sent to a model. A validation error whose type is
    an error code the command declares (such as ``syllabus_too_large``) is answered with that
    code and its status; any other is ``invalid_request``.
    """
    unstorable = _unstorable_text(data)
    if unstorable is not None:
        field_, reason = unstorable
        raise GatewayError(
            INVALID_REQUEST,
            f"{field_}: {reason}",
            {"errors": [{"field": field_, "reason": reason, "type": "text_unstorable"}]},
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [
            {"field": field_name(err["loc"]) or "body", "reason": err["msg"], "type": err["type"]}
            for err in exc.errors(include_url=False)
        ]
        message = "; ".join(f"{e['field']}: {e['reason']}" for e in errors)
        declared = next(
            (e for e in errors if command is not None and command.declares(e["type"])), None
        )
        error = command.error(declared["type"]) if command and declared else INVALID_REQUEST
        raise GatewayError(error, message, {"errors": errors}) from exc


def parse_json(model: type[P], raw: bytes, command: Command[Any, Any] | None = None) -> P:
    """A JSON body as ``model``: bytes that are not UTF-8 or not JSON are refused by name."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        reason = f"not UTF-8 text (invalid byte at position {exc.start})"
        raise GatewayError(
            INVALID_REQUEST,
            f"body: {reason}",
            {"errors": [{"field": "body", "reason": reason, "type": "text_not_utf8"}]},
        ) from exc
    try:
        # json.loads keeps a lone surrogate ("\ud800"), so the model's check can name the
        # field that holds it; pydantic's own parser would only say "invalid JSON".
        data = json.loads(text) if text.strip() else {}
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, json.JSONDecodeError):
            reason = f"not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        elif isinstance(exc, RecursionError):
            reason = "not JSON: nested too deeply"
        else:  # an integer past Python's digit limit
            reason = "not JSON: a number has more digits than any field accepts"
        raise GatewayError(
            INVALID_REQUEST,
            f"body: {reason}",
            {"errors": [{"field": "body", "reason": reason, "type": "json_invalid"}]},
        ) from exc
    return parse(model, data, command)


def parse_uuid(field_: str, value: str) -> UUID:
    """``value`` as a UUID, or ``invalid_request`` naming ``field_``."""
    try:
        return UUID(value)
    except ValueError as exc:
        raise GatewayError(
            INVALID_REQUEST,
            f"{field_}: not a UUID",
            {"errors": [{"field": field_, "reason": "not a UUID", "type": "uuid_parsing"}]},
        ) from exc


def still_running(request_id: UUID) -> GatewayError:
    """The error of a command whose result did not come within the wait: the client fetches
    the request later (HTTP answers it 202)."""
    return GatewayError(
        STILL_RUNNING, f"still running; fetch request {request_id} later", request_id=request_id
    )


@dataclass
class CommandAnswer(Generic[R]):
    """A command's final answer: its result, or None when the wait ran out (still running)."""

    request_id: UUID
    result: R | None

    def finished(self) -> R:
        """The result; :func:`still_running` when the wait ran out."""
        if self.result is None:
            raise still_running(self.request_id)
        return self.result


@dataclass
class CommandStream:
    """A published command whose chunks a transport relays as they come."""

    command: Command[Any, Any]
    dispatched: Dispatched
    timeout_s: float
    stored: Callable[[], AsyncIterator[dict[str, Any]]] | None = None
    """For a replayed request: its lines as stored (progress, then its end)."""

    @property
    def request_id(self) -> UUID:
        """The request's id."""
        return self.dispatched.request_id

    async def chunks(self) -> AsyncIterator[RelayChunk]:
        """Progress, then the final result or error chunk.

        Raises:
            ResultTimeout: No final chunk within the gateway's wait (the request goes on).
        """
        if self.stored is None:
            async for chunk in self.dispatched.chunks(self.timeout_s):
                yield chunk
            return
        # A replayed request: its chunks went to whoever sent it first; read them back.
        async for line in self.stored():
            seq = int(line.get("seq", 0))
            data = {k: v for k, v in line.items() if k != "seq"}
            if line.get("type") == "complete":
                yield RelayChunk(self.request_id, seq, "result", line["final_result"])
            elif line.get("type") == "error" and line.get("code") == STILL_RUNNING.code:
                raise ResultTimeout(str(self.request_id))
            elif line.get("type") == "error":
                yield RelayChunk(self.request_id, seq, "error", data)
            else:
                yield RelayChunk(self.request_id, seq, "progress", data)

    def error(self, chunk: RelayChunk) -> GatewayError:
        """An error chunk as the error it declares."""
        return command_error(self.command, chunk.data, self.request_id)


IDEMPOTENCY_KEY: ContextVar[str | None] = ContextVar("idempotency_key", default=None)
"""The client's idempotency key of the call being served (``Idempotency-Key`` header, gRPC
metadata ``idempotency-key``); set by each transport, read by :meth:`GatewayCore.stream`."""

MAX_IDEMPOTENCY_KEY_CHARS = 200
_ONLY_THE_END = 2**31 - 1
"""``after`` that skips every progress line: only a request's end is wanted."""


def idempotency_key(value: str | None) -> str | None:
    """A client's idempotency key, checked (``invalid_request`` naming the header)."""
    if value is None:
        return None
    if not 1 <= len(value) <= MAX_IDEMPOTENCY_KEY_CHARS or not value.isprintable():
        reason = f"1 to {MAX_IDEMPOTENCY_KEY_CHARS} printable characters"
        raise GatewayError(
            INVALID_REQUEST,
            f"Idempotency-Key: {reason}",
            {"errors": [{"field": "Idempotency-Key", "reason": reason, "type": "header"}]},
        )
    return value


_FOLLOW_POLL_S = 2.0
"""Longest a follower sleeps without a notification before it looks again."""


def _stored(row: pipeline.StoredRequest) -> StoredRequest:
    """A stored request row as the API's shape."""
    error = None
    if row.error is not None:
        data = dict(row.error)
        error = Error(
            code=str(data.pop("code", "failed")),
            message=str(data.pop("message", "")),
            details=data,
            request_id=row.request_id,
        )
    return StoredRequest(
        request_id=row.request_id,
        kind=row.kind,
        status=row.status,
        result=row.result,
        error=error,
        created_at=row.created_at,
        completed_at=row.completed_at,
    )


def _final_line(row: pipeline.StoredRequest, seq: int) -> dict[str, Any]:
    """The last line of a followed request, as a live NDJSON stream ends."""
    if row.status == "done":
        return {
            "type": "complete",
            "seq": seq,
            "request_id": str(row.request_id),
            "final_result": row.result,
        }
    return {"type": "error", "seq": seq, "request_id": str(row.request_id), **(row.error or {})}


class GatewayCore:
    """Every use case of the gateway, transport-neutral."""

    def __init__(
        self,
        pool: Pool,
        dispatcher: Dispatcher,
        tokens: TokenIssuer,
        request_timeout_s: float,
        *,
        limiter: AttemptLimiter | None = None,
        watch: RequestWatch | None = None,
        maintenance: MaintenanceGate | None = None,
    ) -> None:
        self.pool = pool
        self.dispatcher = dispatcher
        self.tokens = tokens
        self.request_timeout_s = request_timeout_s
        self.limiter = limiter or AttemptLimiter(AttemptLimits())
        self.watch = watch or RequestWatch(pool)
        self.maintenance = maintenance or MaintenanceGate(pool)

    async def refuse_writes(self) -> None:
        """The one maintenance rule: while the operator's flag is on, every write (each
        command on every transport, registration, session writes) is ``maintenance`` (503,
        retry after the stored seconds); reads never call this, so they go on."""
        state = await self.maintenance.current()
        if state.enabled:
            why = f" ({state.reason})" if state.reason else ""
            raise GatewayError(
                MAINTENANCE,
                f"in maintenance{why}: writes are refused for now, reads work; retry after "
                f"{state.retry_after_s} s",
                {"retry_after_s": state.retry_after_s},
            )

    # ---- users ---------------------------------------------------------------------------

    def _limit(self, action: str, creds: Credentials, client: str | None) -> None:
        try:
            self.limiter.check(action, creds.name, client)
        except TooManyAttempts as exc:
            raise GatewayError(
                TOO_MANY_ATTEMPTS, str(exc), {"retry_after_s": exc.retry_after_s, "per": exc.kind}
            ) from exc

    async def register(self, creds: Credentials, *, client: str | None) -> Token:
        """Creates a user and returns a token (``name_taken`` when the name is in use;
        ``too_many_attempts`` past the limits for the name or the ``client`` address)."""
        await self.refuse_writes()
        self._limit("register", creds, client)
        # argon2 is slow on purpose; off the event loop, so other requests keep moving.
        password_hash = await asyncio.to_thread(hash_password, creds.password)
        try:
            user_id = await repo.create_user(self.pool, creds.name, password_hash)
        except repo.NameTaken as exc:
            raise GatewayError(NAME_TAKEN, f"name: {creds.name!r} is taken") from exc
        return self.tokens.issue(user_id, creds.name)

    async def login(self, creds: Credentials, *, client: str | None) -> Token:
        """Checks a password and returns a token; as slow for an unknown name as a known one.
        Past the limits for the name or the ``client`` address: ``too_many_attempts``, with
        no password checked."""
        self._limit("login", creds, client)
        found = await repo.credentials(self.pool, creds.name)
        ok = await asyncio.to_thread(verify_password, found[1] if found else None, creds.password)
        if not ok or found is None:
            raise GatewayError(BAD_CREDENTIALS, "unknown name or wrong password")
        return self.tokens.issue(found[0], creds.name)

    def authenticate(self, authorization: str | None) -> UUID:
        """The user an ``Authorization: Bearer`` value names (``unauthenticated`` otherwise)."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise GatewayError(UNAUTHENTICATED, "missing bearer token")
        try:
            return self.tokens.verify(token.strip())
        except InvalidToken as exc:
            raise GatewayError(UNAUTHENTICATED, f"invalid token: {exc}") from exc

    @staticmethod
    def check_user_field(user: UUID, claimed: UUID | None) -> None:
        """Refuses a ``user_id`` in a body that names another user (``user_mismatch``)."""
        if claimed is not None and claimed != user:
            raise GatewayError(
                USER_MISMATCH,
                "user_id: not the user of the bearer token; leave it out",
                {"field": "user_id"},
            )

    # ---- commands ------------------------------------------------------------------------

    async def check_session(self, user: UUID, session_id: UUID | None) -> None:
        """Refuses a session id that is not one of the user's (``session_not_found``)."""
        if session_id is None:
            return
        async with user_transaction(self.pool, user) as conn:
            if not await sessions.session_exists(conn, session_id):
                raise GatewayError(
                    SESSION_NOT_FOUND,
                    f"session_id: no study session {session_id}",
                    {"field": "session_id"},
                )

    @asynccontextmanager
    async def stream(
        self,
        command: Command[P, Any],
        user: UUID,
        payload: P,
        *,
        session_id: UUID | None = None,
    ) -> AsyncIterator[CommandStream]:
        """Stores and publishes a command and yields its stream.

        With an idempotency key (:data:`IDEMPOTENCY_KEY`, from the transport) that named an
        earlier request of this user, that request is yielded (``replayed``), nothing sent.

        Raises:
            GatewayError: ``queued`` (with the request id) when the command is stored but the
                broker did not take it in time (it is sent when the broker answers);
                ``idempotency_conflict`` when the key named a different request.
        """
        await self.refuse_writes()
        await self.check_session(user, session_id)
        data = payload.model_dump(mode="json")
        key = IDEMPOTENCY_KEY.get()
        try:
            with start_span(f"gateway {command.name}"):
                async with self.dispatcher.dispatch(
                    command, user, data, session_id=session_id, idempotency_key=key
                ) as dispatched:
                    if dispatched.replayed is not None and (
                        dispatched.replayed.kind != command.name
                        or dispatched.replayed.payload != data
                    ):
                        raise GatewayError(
                            IDEMPOTENCY_CONFLICT,
                            "Idempotency-Key: already used for another request "
                            f"({dispatched.replayed.kind}); use a new key for a new request",
                            {"field": "Idempotency-Key"},
                            dispatched.request_id,
                        )
                    stored = (
                        functools.partial(self._follow, user, dispatched.request_id, 0)
                        if dispatched.replayed is not None
                        else None
                    )
                    yield CommandStream(command, dispatched, self.request_timeout_s, stored)
        except BrokerUnavailable as exc:
            request_id = UUID(str(exc))
            raise GatewayError(
                QUEUED,
                "the command is stored and is sent when the broker answers; follow "
                f"/api/requests/{request_id}/events",
                {"location": f"/api/requests/{request_id}"},
                request_id,
            ) from exc

    async def run(
        self,
        command: Command[P, R],
        user: UUID,
        payload: P,
        *,
        session_id: UUID | None = None,
    ) -> CommandAnswer[R]:
        """Publishes a command and waits for its final answer (None: still on its way, or
        queued until the broker answers; the request id says where to look).

        Raises:
            GatewayError: The command ended in error (its declared code).
        """
        try:
            async with self.stream(command, user, payload, session_id=session_id) as run:
                if run.stored is not None:
                    return await self._stored_answer(command, user, run.request_id)
                try:
                    last: RelayChunk | None = None
                    async for chunk in run.chunks():
                        last = chunk
                except ResultTimeout:
                    return CommandAnswer(run.request_id, None)
        except GatewayError as exc:
            if exc.error is QUEUED and exc.request_id is not None:
                return CommandAnswer(exc.request_id, None)
            raise
        assert last is not None
        if last.kind == "error":
            raise run.error(last)
        return CommandAnswer(run.request_id, command.result.model_validate(last.data))

    async def _stored_answer(
        self, command: Command[Any, R], user: UUID, request_id: UUID
    ) -> CommandAnswer[R]:
        """A request's answer read from Postgres, waiting for it within the gateway's wait."""
        async for line in self._follow(user, request_id, _ONLY_THE_END):
            if line["type"] == "complete":
                return CommandAnswer(
                    request_id, command.result.model_validate(line["final_result"])
                )
            if line["code"] == STILL_RUNNING.code:
                return CommandAnswer(request_id, None)
            raise command_error(command, line, request_id)
        return CommandAnswer(request_id, None)

    # ---- stored resources ----------------------------------------------------------------

    async def stored_request(self, user: UUID, request_id: UUID) -> StoredRequest:
        """One of the user's requests (``not_found`` for any other)."""
        async with user_transaction(self.pool, user) as conn:
            row = await pipeline.get_request(conn, request_id)
        if row is None:
            raise GatewayError(NOT_FOUND, f"request_id: no request {request_id}")
        return _stored(row)

    async def requests(self, user: UUID, limit: int) -> RequestList:
        """The user's newest requests."""
        async with user_transaction(self.pool, user) as conn:
            found = await pipeline.recent_requests(conn, limit)
        return RequestList(requests=[_stored(r) for r in found])

    async def follow(
        self, user: UUID, request_id: UUID, after: int
    ) -> AsyncIterator[dict[str, Any]]:
        """A request's progress after ``after`` as it is stored, then its end: a ``complete``
        line with the result under ``final_result``, or an ``error`` line; a ``still_running``
        error when it has not ended within the gateway's wait. Each line has its ``seq``.

        Raises:
            GatewayError: ``not_found`` for another user's or an unknown request (before the
                first line, so an HTTP client gets a 404).
        """
        await self.stored_request(user, request_id)
        return self._follow(user, request_id, after)

    async def _follow(
        self, user: UUID, request_id: UUID, after: int
    ) -> AsyncIterator[dict[str, Any]]:
        last = after
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.request_timeout_s
        with self.watch.follower(request_id) as changed:
            while True:
                changed.clear()
                async with user_transaction(self.pool, user) as conn:
                    row = await pipeline.get_request(conn, request_id)
                    events = await pipeline.request_events(conn, request_id, last)
                for event in events:
                    yield event
                    last = event["seq"]
                if row is not None and row.status in ("done", "failed"):
                    yield _final_line(row, last + 1)
                    return
                remaining = deadline - loop.time()
                if remaining <= 0:
                    yield {
                        "type": "error",
                        "seq": last,
                        "code": STILL_RUNNING.code,
                        "message": "still running; follow it again later",
                        "request_id": str(request_id),
                        "location": f"/api/requests/{request_id}/events?after={last}",
                    }
                    return
                # Woken by the worker's notification; the timeout covers a missed one.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), min(remaining, _FOLLOW_POLL_S))

    async def stored_plan(self, user: UUID, plan_id: UUID) -> StoredPlan:
        """One of the user's plans (``not_found`` for any other)."""
        async with user_transaction(self.pool, user) as conn:
            plan = await read_models.stored_plan(conn, plan_id)
        if plan is None:
            raise GatewayError(NOT_FOUND, f"plan_id: no plan {plan_id}")
        return plan

    async def plans(self, user: UUID, session_id: UUID | None, limit: int) -> PlanList:
        """The user's plans, newest first."""
        async with user_transaction(self.pool, user) as conn:
            found = await read_models.plan_summaries(conn, session_id=session_id, limit=limit)
        return PlanList(plans=found)

    # ---- study sessions ------------------------------------------------------------------

    async def start_session(self, user: UUID, body: StartSessionRequest) -> SessionStarted:
        """A new study session in ``INTAKE``."""
        await self.refuse_writes()
        self.check_user_field(user, body.user_id)
        async with user_transaction(self.pool, user) as conn:
            session_id = await sessions.start_session(conn, user, body.exam_type)
        return SessionStarted(session_id=session_id)

    def _no_session(self, session_id: UUID) -> GatewayError:
        return GatewayError(
            SESSION_NOT_FOUND, f"session_id: no study session {session_id}", {"field": "session_id"}
        )

    async def session_state(self, user: UUID, session_id: UUID) -> SessionState:
        """A session's phase and context."""
        async with user_transaction(self.pool, user) as conn:
            state = await sessions.session_state(conn, session_id)
        if state is None:
            raise self._no_session(session_id)
        return state

    async def save_session(
        self, user: UUID, session_id: UUID, body: SaveSessionRequest
    ) -> SessionSaved:
        """Stores the context and moves the phase (``invalid_transition`` names both)."""
        await self.refuse_writes()
        try:
            async with user_transaction(self.pool, user) as conn:
                phase = await sessions.save_session(conn, session_id, body.context, body.phase)
        except InvalidTransition as exc:
            raise GatewayError(
                INVALID_TRANSITION,
                str(exc),
                {
                    "field": "phase",
                    "current": exc.current,
                    "wanted": exc.wanted,
                    "allowed": exc.allowed,
                },
            ) from exc
        if phase is None:
            raise self._no_session(session_id)
        return SessionSaved(phase=phase)

    async def sessions(self, user: UUID, limit: int) -> SessionList:
        """The user's sessions, newest first."""
        async with user_transaction(self.pool, user) as conn:
            return SessionList(sessions=await sessions.list_sessions(conn, limit))

    async def session_history(self, user: UUID, session_id: UUID) -> SessionHistory:
        """A session's audit log, oldest first."""
        async with user_transaction(self.pool, user) as conn:
            entries = await sessions.session_history(conn, session_id)
        if entries is None:
            raise self._no_session(session_id)
        return SessionHistory(entries=entries)
