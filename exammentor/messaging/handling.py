"""What a command handler sees and returns: its context, the outcome it hands back for one
transaction to commit, the refusals it may raise, and the router that maps a command to it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from uuid import UUID

from pydantic import BaseModel

from exammentor.contracts.commands import (
    SYSTEM_ECHO,
    Command,
    EchoPayload,
    EchoResult,
)
from exammentor.contracts.envelope import CommandEnvelope, EventEnvelope
from exammentor.contracts.events import DomainEvent, SystemEchoedV1
from exammentor.contracts.kafka_topics import Service
from exammentor.db import Connection, Pool, user_transaction
from exammentor.messaging import pipeline
from exammentor.messaging.result_relay import ResultStream

P = TypeVar("P", bound=BaseModel)


R = TypeVar("R", bound=BaseModel)


class CommandRejected(Exception):
    """The command is well-formed but cannot be carried out; final, never retried.

    The request ends as failed with ``code`` and ``message`` (what a client shows the user).
    ``code`` must be one the command declares (:class:`~exammentor.contracts.commands.Command`
    ``errors``); an undeclared one is a bug, handled as a handler failure.
    """

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}

    def as_error(self) -> dict[str, Any]:
        """The error as stored on the request and sent to the client."""
        return {"code": self.code, "message": self.message, **self.details}


Persist = Callable[[Connection], Awaitable[None]]


@dataclass
class Outcome(Generic[R]):
    """What a handler produced: the request's result, the rows to write and the events."""

    result: R
    persist: Persist | None = None
    events: Sequence[EventEnvelope] = field(default_factory=tuple)


class CommandDeadlineExceeded(Exception):
    """One attempt at a command ran past ``command_deadline_s`` (a failed attempt)."""


class UndeclaredErrorCode(Exception):
    """A handler refused a command with a code its declaration does not name (a bug)."""


class CommandContext:
    """What a handler gets besides its payload: who asked, where to stream, the database."""

    def __init__(
        self,
        envelope: CommandEnvelope,
        pool: Pool,
        stream: ResultStream,
        service: Service,
    ) -> None:
        self.envelope = envelope
        self.pool = pool
        self.stream = stream
        self.service = service

    @property
    def user_id(self) -> UUID:
        """The user the command acts for."""
        return self.envelope.user_id

    def transaction(self) -> AbstractAsyncContextManager[Connection]:
        """A transaction scoped to the command's user (row-level security)."""
        return user_transaction(self.pool, self.envelope.user_id)

    async def progress(self, data: dict[str, Any], *, store: bool = True) -> None:
        """Streams one progress event to the client and, by default, stores it for resume."""
        seq = await self.stream.progress(data)
        if store:
            async with self.transaction() as conn:
                await pipeline.add_request_event(
                    conn, self.envelope.request_id, self.envelope.user_id, seq, data
                )

    @property
    def cancelled(self) -> bool:
        """True once no one waits for the command's results (its client went away)."""
        return self.stream.cancelled

    async def wait_cancelled(self) -> None:
        """Returns when no one waits for the command's results any more.

        A handler that streams text to a reader races its work against this and stops
        early (storing what it made so far); other handlers finish as they always do.
        """
        await self.stream.wait_cancelled()

    def event(self, payload: DomainEvent) -> EventEnvelope:
        """A domain event about this command's user, session and request."""
        return EventEnvelope(
            type=payload.TYPE,
            version=payload.VERSION,
            user_id=self.envelope.user_id,
            session_id=self.envelope.session_id,
            request_id=self.envelope.request_id,
            payload=payload.model_dump(mode="json"),
        )


Handler = Callable[[CommandContext, Any], Awaitable[Outcome[Any]]]


@dataclass(frozen=True)
class CommandSpec:
    """A declared command and the handler this service runs for it."""

    command: Command[Any, Any]
    handler: Handler

    @property
    def name(self) -> str:
        """The command's type name (``plan.generate``)."""
        return self.command.name


class CommandRouter:
    """The commands one service handles, registered against their declarations.

    Every router answers ``system.echo`` v1, a command that needs no model, used by the
    pipeline benchmark and operators' smoke checks.
    """

    def __init__(self, service: Service) -> None:
        self.service = service
        self._specs: dict[tuple[str, int], CommandSpec] = {}
        self.handle(SYSTEM_ECHO[service])(_echo)

    def handle(
        self, command: Command[P, R]
    ) -> Callable[
        [Callable[[CommandContext, P], Awaitable[Outcome[R]]]],
        Callable[[CommandContext, P], Awaitable[Outcome[R]]],
    ]:
        """Registers the decorated function as the handler of ``command``.

        Raises:
            ValueError: ``command`` belongs to another service, or has a handler already.
        """
        if command.service != self.service:
            raise ValueError(
                f"{command.key} is the {command.service}'s command; "
                f"the {self.service} cannot handle it"
            )
        key = (command.name, command.version)
        if key in self._specs:
            raise ValueError(f"{command.key} has a handler already")

        def register(
            fn: Callable[[CommandContext, P], Awaitable[Outcome[R]]],
        ) -> Callable[[CommandContext, P], Awaitable[Outcome[R]]]:
            self._specs[key] = CommandSpec(command, fn)
            return fn

        return register

    def lookup(self, type_: str, version: int) -> CommandSpec | None:
        """The spec of a command, or None when this service does not handle it."""
        return self._specs.get((type_, version))

    @property
    def types(self) -> list[str]:
        """``type@version`` of every command handled, for docs and logs."""
        return sorted(spec.command.key for spec in self._specs.values())


async def _echo(ctx: CommandContext, payload: EchoPayload) -> Outcome[EchoResult]:
    return Outcome(
        result=EchoResult(echo=payload.text, service=ctx.service),
        events=[ctx.event(SystemEchoedV1(text=payload.text, service=ctx.service))],
    )
