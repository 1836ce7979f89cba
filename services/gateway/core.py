"""The gateway's use cases, once, for every transport.

HTTP (:mod:`services.gateway.http_api`) and gRPC (:mod:`services.gateway.grpc_api`) are thin
adapters over :class:`GatewayCore`: they turn their input into a dict, call the core, and turn
what it returns (or the :class:`GatewayError` it raises) into their own answer. Validation
(:mod:`services.gateway.inputs`), authentication, timing, ownership checks, the reads
(:mod:`services.gateway.reads`) and the meaning of every error code live behind it, so the
transports cannot drift apart.

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
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from uuid import UUID

from pydantic import BaseModel

from exammentor import sessions
from exammentor.contracts.api import (
    Credentials,
    Token,
)
from exammentor.contracts.autopilot import (
    ANSWER_REFUSED,
    AUTOPILOT_ANSWER,
    AUTOPILOT_START,
    AutopilotAnswerRequest,
    AutopilotStartRequest,
)
from exammentor.contracts.bindings import Binding
from exammentor.contracts.commands import (
    BAD_CREDENTIALS,
    IDEMPOTENCY_CONFLICT,
    INVALID_TRANSITION,
    MAINTENANCE,
    NAME_TAKEN,
    QUEUED,
    STILL_RUNNING,
    TOO_MANY_ATTEMPTS,
    UNAUTHENTICATED,
    USER_MISMATCH,
    Command,
)
from exammentor.contracts.sessions import (
    InvalidTransition,
    SaveSessionRequest,
    SessionSaved,
    SessionStarted,
    StartSessionRequest,
)
from exammentor.contracts.tutor import (
    TUTOR_CHAT_SAVE,
    ChatSaveRequest,
)
from exammentor.db import Pool, user_transaction
from exammentor.messaging.dispatch import BrokerUnavailable, Dispatched, Dispatcher, ResultTimeout
from exammentor.messaging.result_relay import RelayChunk
from exammentor.ops.maintenance import MaintenanceGate
from exammentor.telemetry import start_span
from services.gateway import repo
from services.gateway.auth import InvalidToken, TokenIssuer, hash_password, verify_password
from services.gateway.inputs import GatewayError, command_error, parse, parse_uuid, still_running
from services.gateway.limits import AttemptLimiter, TooManyAttempts
from services.gateway.reads import WATCH_POLL_S, StoredReads, check_chat_user
from services.gateway.settings import AttemptLimits
from services.gateway.watch import RequestWatch

R = TypeVar("R", bound=BaseModel)


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


_ONLY_THE_END = 2**31 - 1
"""``after`` that skips every progress line: only a request's end is wanted."""


class GatewayCore(StoredReads):
    """Every use case of the gateway, transport-neutral (the reads: :class:`StoredReads`)."""

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

    # ---- study sessions ------------------------------------------------------------------

    async def start_session(self, user: UUID, body: StartSessionRequest) -> SessionStarted:
        """A new study session in ``INTAKE``."""
        await self.refuse_writes()
        self.check_user_field(user, body.user_id)
        async with user_transaction(self.pool, user) as conn:
            session_id = await sessions.start_session(conn, user, body.exam_type)
        return SessionStarted(session_id=session_id)

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
