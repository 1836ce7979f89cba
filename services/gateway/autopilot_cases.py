"""The autopilot's use cases, once for HTTP and gRPC: start (creating a study session when
none is named), status, pause/resume/stop, answer, and the watch stream.

Commands go to the autopilot service through the core (same validation, same declared
errors on both transports); status and watch read the stored run through
:mod:`exammentor.read_models`, so they work whichever replica drives the run, and polling
the status keeps working beside the stream.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from exammentor import sessions
from exammentor.contracts.autopilot import (
    ANSWER_REFUSED,
    AUTOPILOT_ANSWER,
    AUTOPILOT_CONTROL,
    AUTOPILOT_NOT_FOUND,
    AUTOPILOT_START,
    AutopilotAnswerRequest,
    AutopilotAnswerResponse,
    AutopilotControl,
    AutopilotControlRequest,
    AutopilotControlResponse,
    AutopilotStartRequest,
    AutopilotStartResponse,
    AutopilotStatusResponse,
    AutopilotWatchEvent,
)
from exammentor.contracts.commands import Command
from exammentor.db import user_transaction
from exammentor.read_models import autopilot as read_models
from services.gateway.core import GatewayCore, GatewayError

R = TypeVar("R", bound=BaseModel)

WATCH_POLL_S = 0.25
"""How often the watch stream looks for new steps (a read of the step log by index)."""
MAX_SEQ = 2**31 - 1
"""The largest ``seq`` and run number a watch accepts (an int32 on the gRPC side)."""


class WatchQuery(BaseModel):
    """Where a watch starts: after which ``seq``, of which run (the newest when None). The
    HTTP route's query parameters carry the same bounds."""

    model_config = ConfigDict(extra="forbid")

    after: int = Field(default=0, ge=0, le=MAX_SEQ)
    run: int | None = Field(default=None, ge=1, le=MAX_SEQ)


def _not_found(session_id: UUID) -> GatewayError:
    return GatewayError(
        AUTOPILOT_NOT_FOUND,
        f"session_id: no autopilot run of session {session_id}",
        {"field": "session_id"},
    )


class AutopilotCases:
    """The autopilot's use cases over one gateway's core."""

    def __init__(self, core: GatewayCore, watch_poll_s: float = WATCH_POLL_S) -> None:
        self._core = core
        self._poll_s = watch_poll_s

    async def _run(
        self, command: Command[Any, R], user: UUID, payload: BaseModel, session_id: UUID
    ) -> R:
        answer = await self._core.run(command, user, payload, session_id=session_id)
        result: R = answer.finished()
        return result

    async def start(
        self, user: UUID, session_id: UUID | None, body: AutopilotStartRequest
    ) -> AutopilotStartResponse:
        """Starts a run of the session (a new study session when none is named); 404 for a
        session that is not the caller's, 400 while its run is running or paused, 403 for a
        ``user_id`` that is not the caller's (the caller's own is accepted, as the sessions
        routes do, and not sent on)."""
        self._core.check_user_field(user, body.user_id)
        body = body.model_copy(update={"user_id": None})
        await self._core.refuse_writes()  # before the session it may create
        if session_id is None:
            async with user_transaction(self._core.pool, user) as conn:
                session_id = await sessions.start_session(conn, user, body.exam_type or "none")
        return await self._run(AUTOPILOT_START, user, body, session_id)

    async def status(self, user: UUID, session_id: UUID) -> AutopilotStatusResponse:
        """The newest run's status (404 when the session has none of the caller's)."""
        async with user_transaction(self._core.pool, user) as conn:
            found = await read_models.autopilot_status(conn, session_id, dt.datetime.now(dt.UTC))
        if found is None:
            raise _not_found(session_id)
        return found

    async def control(
        self, user: UUID, session_id: UUID, control: AutopilotControl
    ) -> AutopilotControlResponse:
        """Pause, resume or stop (400 when the run's status does not allow it)."""
        return await self._run(
            AUTOPILOT_CONTROL, user, AutopilotControlRequest(control=control), session_id
        )

    async def answer(
        self, user: UUID, session_id: UUID, body: AutopilotAnswerRequest
    ) -> AutopilotAnswerResponse:
        """The answer to the waiting question (400 with the reason when it cannot be taken).

        Without a ``question_id`` (the original's clients send only the index) the answer is
        for the question that waits now; when none waits it is refused here, as the service
        would refuse it. The service checks the id again when it takes the answer, so an
        answer that crossed the wait's end is refused, not given to the next question.
        """
        if not body.question_id:
            body = body.model_copy(
                update={"question_id": await self._waiting_question(user, session_id)}
            )
        return await self._run(AUTOPILOT_ANSWER, user, body, session_id)

    async def _waiting_question(self, user: UUID, session_id: UUID) -> str:
        """The id of the question the session's run waits for (``answer_refused`` if none)."""
        found = await self.status(user, session_id)
        if found.awaiting_input and found.current_question is not None:
            return found.current_question.id
        why = f"the run is {found.status}" if found.status != "running" else "no question waits"
        raise GatewayError(
            ANSWER_REFUSED,
            f"question_id: {why} (phase {found.phase_detail}); nothing to answer",
            {"field": "question_id", "status": found.status, "phase": found.phase_detail},
        )

    async def watch(
        self, user: UUID, session_id: UUID, after_seq: int = 0, run_number: int | None = None
    ) -> AsyncIterator[AutopilotWatchEvent]:
        """Steps and state changes of a run as they are stored, from ``after_seq`` on, until
        the run ends (the newest run unless ``run_number`` is given)."""
        seq = after_seq
        while True:
            async with user_transaction(self._core.pool, user) as conn:
                found = await read_models.autopilot_watch(conn, session_id, run_number, seq)
            if found is None:
                raise _not_found(session_id)
            run_number, events, finished = found
            for event in events:
                seq = event.seq
                yield event
            if finished:
                return
            await asyncio.sleep(self._poll_s)
