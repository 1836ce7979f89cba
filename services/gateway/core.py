"""The gateway's use cases, once, for every transport.

HTTP (:mod:`services.gateway.http_api`) and gRPC (:mod:`services.gateway.grpc_api`) are thin
adapters over :class:`GatewayCore`: they turn their input into a dict, call the core, and turn
what it returns (or the :class:`GatewayError` it raises) into their own answer. Validation,
authentication, timing, ownership checks and the meaning of every error code live here, so
the transports cannot drift apart.

A command is sent through its :class:`~exammentor.contracts.bindings.Binding`: the core
validates the raw input as the binding's input (:meth:`GatewayCore.admit`), adds what a few
commands need beyond their payload (:data:`_ADMISSIONS`: the autopilot's new session and
waiting question, the chat's user), checks the study session once, and sends it with the
idempotency key the transport passes in (:meth:`GatewayCore.stream`, :meth:`GatewayCore.run`).

Errors are :class:`~exammentor.contracts.commands.ErrorCode` declarations: each names its
HTTP status and gRPC status code beside its machine-readable code.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from exammentor import pipeline, read_models, sessions
from exammentor.contracts.api import (
    Credentials,
    Error,
    PlanList,
    RequestList,
    StoredPlan,
    StoredRequest,
    Token,
)
from exammentor.contracts.autopilot import (
    ANSWER_REFUSED,
    AUTOPILOT_ANSWER,
    AUTOPILOT_NOT_FOUND,
    AUTOPILOT_START,
    AutopilotAnswerRequest,
    AutopilotStartRequest,
    AutopilotStatusResponse,
    AutopilotWatchEvent,
)
from exammentor.contracts.bindings import Binding
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
from exammentor.contracts.quiz import (
    LearnerMastery,
    MisconceptionQuery,
    MisconceptionRecordView,
    SavedQuizQuery,
    SavedQuizView,
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
from exammentor.contracts.tutor import (
    TUTOR_CHAT_SAVE,
    ChatHistory,
    ChatSaveRequest,
    MaterialList,
    TopicId,
)
from exammentor.contracts.tutor import USER_MISMATCH as TUTOR_USER_MISMATCH
from exammentor.db import Pool, user_transaction
from exammentor.dispatch import BrokerUnavailable, Dispatched, Dispatcher, ResultTimeout
from exammentor.maintenance import MaintenanceGate
from exammentor.relay import RelayChunk
from exammentor.telemetry import start_span
from exammentor.validation import field_name
from services.gateway import repo
from services.gateway.domain import InvalidToken, TokenIssuer, hash_password, verify_password
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
    return parse(model, json_input(raw), command)


def json_input(raw: bytes) -> Any:
    """A JSON body's data (an empty body is ``{}``); bytes that are not UTF-8 or not JSON
    are refused by name."""
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
    return data


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


WATCH_POLL_S = 0.25
"""How often an autopilot watch looks for new steps (a read of the step log by index)."""
MAX_SEQ = 2**31 - 1
"""The largest ``seq`` and run number a watch accepts (an int32 on the gRPC side)."""
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
        watch_poll_s: float = WATCH_POLL_S,
    ) -> None:
        self.pool = pool
        self.dispatcher = dispatcher
        self.tokens = tokens
        self.request_timeout_s = request_timeout_s
        self.limiter = limiter or AttemptLimiter(AttemptLimits())
        self.watch = watch or RequestWatch(pool)
        self.maintenance = maintenance or MaintenanceGate(pool)
        self.watch_poll_s = watch_poll_s

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
                raise self._no_session(session_id)

    async def admit(
        self, binding: Binding, user: UUID, data: Any, session_id: UUID | None
    ) -> Admitted:
        """A client's input as the command to send: validated as the binding's input (the
        command's payload unless it says otherwise), completed by the command's own checks
        (:data:`_ADMISSIONS`), past the maintenance gate, its study session checked once.

        Raises:
            GatewayError: The input, the session or the moment refuses it.
        """
        command, payload = binding.target(parse(binding.input, data, binding.command))
        if binding.session == "payload":
            named = getattr(payload, "session_id", None)
            session_id = parse_uuid("session_id", named) if named else None
        admitted = Admitted(command, payload, session_id)
        special = _ADMISSIONS.get(command.key)
        if special is not None:
            admitted = await special(self, user, admitted)
        await self.refuse_writes()
        if not admitted.session_checked:
            await self.check_session(user, admitted.session_id)
        return admitted

    @asynccontextmanager
    async def stream(
        self,
        binding: Binding,
        user: UUID,
        data: Any,
        *,
        idempotency_key: str | None,
        session_id: UUID | None = None,
    ) -> AsyncIterator[CommandStream]:
        """Validates, stores and publishes a command (:meth:`admit`) and yields its stream.

        With an ``idempotency_key`` that named an earlier request of this user, that request
        is yielded (``replayed``: its stored lines), nothing sent.

        Raises:
            GatewayError: The input was refused (:meth:`admit`); ``queued`` (with the
                request id) when the command is stored but the broker did not take it in
                time (it is sent when the broker answers); ``idempotency_conflict`` when the
                key named a different request.
        """
        admitted = await self.admit(binding, user, data, session_id)
        command = admitted.command
        payload = admitted.payload.model_dump(mode="json")
        try:
            with start_span(f"gateway {command.name}"):
                async with self.dispatcher.dispatch(
                    command,
                    user,
                    payload,
                    session_id=admitted.session_id,
                    idempotency_key=idempotency_key,
                ) as dispatched:
                    if dispatched.replayed is not None and (
                        dispatched.replayed.kind != command.name
                        or dispatched.replayed.payload != payload
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
        binding: Binding,
        user: UUID,
        data: Any,
        *,
        idempotency_key: str | None,
        session_id: UUID | None = None,
    ) -> CommandAnswer[Any]:
        """Sends a command (:meth:`stream`) and waits for its final answer (None: still on
        its way, or queued until the broker answers; the request id says where to look).

        Raises:
            GatewayError: The input was refused, or the command ended in error (its
                declared code).
        """
        try:
            async with self.stream(
                binding, user, data, idempotency_key=idempotency_key, session_id=session_id
            ) as run:
                if run.stored is not None:
                    return await self._stored_answer(run.command, user, run.request_id)
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
        return CommandAnswer(run.request_id, run.command.result.model_validate(last.data))

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

    # ---- what some commands check or complete before they are sent ----------------------

    async def _admit_autopilot_start(self, user: UUID, admitted: Admitted) -> Admitted:
        """A start for the caller only (their own ``user_id`` accepted, as the sessions
        routes do, and not sent on); a new study session when none is named."""
        body = admitted.payload
        assert isinstance(body, AutopilotStartRequest)
        self.check_user_field(user, body.user_id)
        admitted.payload = body.model_copy(update={"user_id": None})
        if admitted.session_id is None:
            await self.refuse_writes()  # before the session it creates
            async with user_transaction(self.pool, user) as conn:
                admitted.session_id = await sessions.start_session(
                    conn, user, body.exam_type or "none"
                )
            admitted.session_checked = True
        return admitted

    async def _admit_autopilot_answer(self, user: UUID, admitted: Admitted) -> Admitted:
        """Without a ``question_id`` (the original's clients send only the index) the answer
        is for the question that waits now; when none waits it is refused here, as the
        service would refuse it. The service checks the id again when it takes the answer,
        so an answer that crossed the wait's end is refused, not given to the next question.
        """
        body = admitted.payload
        assert isinstance(body, AutopilotAnswerRequest)
        assert admitted.session_id is not None
        if body.question_id:
            return admitted
        found = await self.autopilot_status(user, admitted.session_id)
        admitted.session_checked = True  # the run was found, so the session is the user's
        if found.awaiting_input and found.current_question is not None:
            admitted.payload = body.model_copy(update={"question_id": found.current_question.id})
            return admitted
        why = f"the run is {found.status}" if found.status != "running" else "no question waits"
        raise GatewayError(
            ANSWER_REFUSED,
            f"question_id: {why} (phase {found.phase_detail}); nothing to answer",
            {"field": "question_id", "status": found.status, "phase": found.phase_detail},
        )

    async def _admit_chat_save(self, user: UUID, admitted: Admitted) -> Admitted:
        body = admitted.payload
        assert isinstance(body, ChatSaveRequest)
        check_chat_user(user, body.user_id)
        return admitted

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

    # ---- learner, tutor and autopilot reads ----------------------------------------------

    async def mastery(self, user: UUID) -> LearnerMastery:
        """The user's mastery per concept and topic, each with its evidence."""
        async with user_transaction(self.pool, user) as conn:
            return await read_models.learner_mastery(conn)

    async def misconceptions(
        self, user: UUID, query: MisconceptionQuery
    ) -> list[MisconceptionRecordView]:
        """The user's misconception records, optionally in one lifecycle state."""
        async with user_transaction(self.pool, user) as conn:
            return await read_models.misconception_views(conn, query.state)

    async def saved_quiz(self, user: UUID, query: SavedQuizQuery) -> SavedQuizView | None:
        """The latest saved quiz of a topic (the query's ``user_id`` is the token's user);
        None when none was saved."""
        async with user_transaction(self.pool, user) as conn:
            found = await read_models.saved_quiz(conn, query.topic_id)
        return None if found.created_at is None else found

    async def chat(self, user: UUID, query: ChatQuery) -> ChatHistory:
        """The user's chat of one topic (``{messages: [], explanation: null}`` when none)."""
        check_chat_user(user, query.user_id)
        async with user_transaction(self.pool, user) as conn:
            return await read_models.tutor_chat(conn, query.topic_id)

    async def materials(self, user: UUID) -> MaterialList:
        """The user's study material, newest first."""
        async with user_transaction(self.pool, user) as conn:
            return await read_models.tutor_materials(conn)

    async def autopilot_status(self, user: UUID, session_id: UUID) -> AutopilotStatusResponse:
        """The newest run's status (``autopilot_not_found`` when the session has none of
        the caller's)."""
        async with user_transaction(self.pool, user) as conn:
            found = await read_models.autopilot_status(conn, session_id, dt.datetime.now(dt.UTC))
        if found is None:
            raise _no_autopilot_run(session_id)
        return found

    async def autopilot_watch(
        self, user: UUID, session_id: UUID, query: WatchQuery
    ) -> AsyncIterator[AutopilotWatchEvent]:
        """Steps and state changes of a run as they are stored, after ``query.after``, until
        the run ends (the newest run unless ``query.run`` names one); read by index, so they
        come whichever replica drives the run."""
        seq, run_number = query.after, query.run
        while True:
            async with user_transaction(self.pool, user) as conn:
                found = await read_models.autopilot_watch(conn, session_id, run_number, seq)
            if found is None:
                raise _no_autopilot_run(session_id)
            run_number, events, finished = found
            for event in events:
                seq = event.seq
                yield event
            if finished:
                return
            await asyncio.sleep(self.watch_poll_s)


@dataclass
class Admitted:
    """A command about to be sent: which, with what payload, for which study session, and
    whether that session is known to be the user's already (then it is not read again)."""

    command: Command[Any, Any]
    payload: BaseModel
    session_id: UUID | None
    session_checked: bool = False


_ADMISSIONS: dict[str, Callable[[GatewayCore, UUID, Admitted], Awaitable[Admitted]]] = {
    AUTOPILOT_START.key: GatewayCore._admit_autopilot_start,
    AUTOPILOT_ANSWER.key: GatewayCore._admit_autopilot_answer,
    TUTOR_CHAT_SAVE.key: GatewayCore._admit_chat_save,
}
"""The commands the gateway checks or completes beyond their payload's validation."""


class WatchQuery(BaseModel):
    """Where an autopilot watch starts: after which ``seq``, of which run (the newest when
    None). The HTTP route's query parameters carry the same bounds."""

    model_config = ConfigDict(extra="forbid")

    after: int = Field(default=0, ge=0, le=MAX_SEQ)
    run: int | None = Field(default=None, ge=1, le=MAX_SEQ)


class ChatQuery(BaseModel):
    """The query of ``GET /api/tutor/chat`` (``user_id`` only as the original sent it)."""

    model_config = ConfigDict(extra="forbid")

    topic_id: TopicId
    user_id: str | None = None


def check_chat_user(user: UUID, claimed: UUID | str | None) -> None:
    """Refuses a chat's ``user_id`` that names another user than the token's
    (``user_mismatch``); the original's client sends its own."""
    if claimed is None or claimed == "":
        return
    if str(claimed) != str(user):
        raise GatewayError(
            TUTOR_USER_MISMATCH,
            "user_id: names another user than the bearer token's; leave it out",
            {"field": "user_id"},
        )


def _no_autopilot_run(session_id: UUID) -> GatewayError:
    return GatewayError(
        AUTOPILOT_NOT_FOUND,
        f"session_id: no autopilot run of session {session_id}",
        {"field": "session_id"},
    )
