"""What the gateway reads for a user: stored requests (and following one), plans, study
sessions, the learner model, the tutor's chats and material, and autopilot runs.

Every read runs in a transaction of the user (row-level security), so another user's row is
"not found", never shown. :class:`StoredReads` is the read half of
:class:`~services.gateway.core.GatewayCore`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from exammentor import sessions
from exammentor.contracts.api import Error, PlanList, RequestList, StoredPlan, StoredRequest
from exammentor.contracts.autopilot import (
    AUTOPILOT_NOT_FOUND,
    AutopilotStatusResponse,
    AutopilotWatchEvent,
)
from exammentor.contracts.commands import NOT_FOUND, SESSION_NOT_FOUND, STILL_RUNNING
from exammentor.contracts.quiz import (
    LearnerMastery,
    MisconceptionQuery,
    MisconceptionRecordView,
    SavedQuizQuery,
    SavedQuizView,
)
from exammentor.contracts.sessions import SessionHistory, SessionList, SessionState
from exammentor.contracts.tutor import USER_MISMATCH as TUTOR_USER_MISMATCH
from exammentor.contracts.tutor import ChatHistory, MaterialList, TopicId
from exammentor.db import Pool, user_transaction
from exammentor.messaging import pipeline
from exammentor.read_models import autopilot as autopilot_reads
from exammentor.read_models import planner as planner_reads
from exammentor.read_models import quiz as quiz_reads
from exammentor.read_models import tutor as tutor_reads
from services.gateway.inputs import GatewayError
from services.gateway.watch import RequestWatch

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


class StoredReads:
    """The reads of one gateway: each in a transaction of the user."""

    pool: Pool
    watch: RequestWatch
    request_timeout_s: float
    watch_poll_s: float

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
            plan = await planner_reads.stored_plan(conn, plan_id)
        if plan is None:
            raise GatewayError(NOT_FOUND, f"plan_id: no plan {plan_id}")
        return plan

    async def plans(self, user: UUID, session_id: UUID | None, limit: int) -> PlanList:
        """The user's plans, newest first."""
        async with user_transaction(self.pool, user) as conn:
            found = await planner_reads.plan_summaries(conn, session_id=session_id, limit=limit)
        return PlanList(plans=found)

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
            return await quiz_reads.learner_mastery(conn)

    async def misconceptions(
        self, user: UUID, query: MisconceptionQuery
    ) -> list[MisconceptionRecordView]:
        """The user's misconception records, optionally in one lifecycle state."""
        async with user_transaction(self.pool, user) as conn:
            return await quiz_reads.misconception_views(conn, query.state)

    async def saved_quiz(self, user: UUID, query: SavedQuizQuery) -> SavedQuizView | None:
        """The latest saved quiz of a topic (the query's ``user_id`` is the token's user);
        None when none was saved."""
        async with user_transaction(self.pool, user) as conn:
            found = await quiz_reads.saved_quiz(conn, query.topic_id)
        return None if found.created_at is None else found

    async def chat(self, user: UUID, query: ChatQuery) -> ChatHistory:
        """The user's chat of one topic (``{messages: [], explanation: null}`` when none)."""
        check_chat_user(user, query.user_id)
        async with user_transaction(self.pool, user) as conn:
            return await tutor_reads.tutor_chat(conn, query.topic_id)

    async def materials(self, user: UUID) -> MaterialList:
        """The user's study material, newest first."""
        async with user_transaction(self.pool, user) as conn:
            return await tutor_reads.tutor_materials(conn)

    async def autopilot_status(self, user: UUID, session_id: UUID) -> AutopilotStatusResponse:
        """The newest run's status (``autopilot_not_found`` when the session has none of
        the caller's)."""
        async with user_transaction(self.pool, user) as conn:
            found = await autopilot_reads.autopilot_status(
                conn, session_id, dt.datetime.now(dt.UTC)
            )
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
                found = await autopilot_reads.autopilot_watch(conn, session_id, run_number, seq)
            if found is None:
                raise _no_autopilot_run(session_id)
            run_number, events, finished = found
            for event in events:
                seq = event.seq
                yield event
            if finished:
                return
            await asyncio.sleep(self.watch_poll_s)


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
