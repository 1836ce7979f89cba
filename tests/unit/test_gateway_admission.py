"""What the gateway's core does with a command's input before it is sent
(:meth:`~services.gateway.core.GatewayCore.admit`), without a database: the input validated
as the binding says, the study session checked once per request and not at all when the
request itself proved it (a session the start just created, a run the answer just read).
"""

from __future__ import annotations

import datetime as dt
import uuid
from types import SimpleNamespace
from typing import Any

import pytest

from exammentor.contracts.autopilot import (
    AUTOPILOT_ANSWER,
    AutopilotAnswerRequest,
    AutopilotStatusResponse,
    QuestionView,
)
from exammentor.contracts.bindings import BY_COMMAND
from exammentor.contracts.commands import SYSTEM_ECHO, EchoPayload
from exammentor.contracts.quiz import QUIZ_DIAGNOSE, QUIZ_GENERATE
from services.gateway.core import GatewayCore
from services.gateway.inputs import GatewayError

USER = uuid.uuid4()
SESSION = uuid.uuid4()


class CountingCore(GatewayCore):
    """The core with its reads replaced: counts the session checks and status reads."""

    def __init__(self, status: AutopilotStatusResponse | None = None) -> None:
        nothing: Any = SimpleNamespace()
        super().__init__(nothing, nothing, nothing, 1.0)
        self.checked: list[uuid.UUID | None] = []
        self.status_reads = 0
        self._status = status

    async def refuse_writes(self) -> None:
        return None

    async def check_session(self, user: uuid.UUID, session_id: uuid.UUID | None) -> None:
        self.checked.append(session_id)

    async def autopilot_status(
        self, user: uuid.UUID, session_id: uuid.UUID
    ) -> AutopilotStatusResponse:
        self.status_reads += 1
        assert self._status is not None
        return self._status


def waiting(question_id: str) -> AutopilotStatusResponse:
    return AutopilotStatusResponse(
        session_id=SESSION,
        run_number=1,
        status="running",
        current_phase="quizzing",
        phase_detail="awaiting_answer",
        current_topic="Optics",
        topics_completed=[],
        elapsed_seconds=1.0,
        target_duration_minutes=5,
        topic_mastery=[],
        steps=[],
        started_at=dt.datetime.now(dt.UTC),
        completed_at=None,
        current_content=None,
        current_question=QuestionView(id=question_id, text="Which?", options=["a", "b"]),
        awaiting_input=True,
    )


async def test_a_session_named_by_the_request_is_checked_once() -> None:
    core = CountingCore()
    admitted = await core.admit(BY_COMMAND[QUIZ_GENERATE.key], USER, {"topic": "optics"}, SESSION)
    assert admitted.session_id == SESSION
    assert core.checked == [SESSION]


async def test_a_session_in_the_payload_is_the_commands_session() -> None:
    core = CountingCore()
    data = {"question_id": "q1", "student_answer_index": 0, "session_id": str(SESSION)}
    admitted = await core.admit(BY_COMMAND[QUIZ_DIAGNOSE.key], USER, data, None)
    assert (admitted.session_id, core.checked) == (SESSION, [SESSION])


async def test_an_answer_that_read_the_waiting_question_does_not_read_the_session_again() -> None:
    core = CountingCore(waiting("q-7"))
    admitted = await core.admit(
        BY_COMMAND[AUTOPILOT_ANSWER.key], USER, {"answer_index": 1}, SESSION
    )
    assert isinstance(admitted.payload, AutopilotAnswerRequest)
    assert admitted.payload.question_id == "q-7"
    assert (core.status_reads, core.checked) == (1, [])


async def test_an_answer_by_question_id_checks_the_session_and_reads_no_status() -> None:
    core = CountingCore()
    data = {"question_id": "q-7", "answer_index": 1}
    await core.admit(BY_COMMAND[AUTOPILOT_ANSWER.key], USER, data, SESSION)
    assert (core.status_reads, core.checked) == (0, [SESSION])


async def test_the_echo_binding_sends_the_named_services_echo() -> None:
    core = CountingCore()
    admitted = await core.admit(
        BY_COMMAND[SYSTEM_ECHO["quiz"].key], USER, {"text": "hi", "service": "quiz"}, None
    )
    assert admitted.command is SYSTEM_ECHO["quiz"]
    assert admitted.payload == EchoPayload(text="hi")


async def test_input_is_refused_before_any_session_is_read() -> None:
    core = CountingCore()
    with pytest.raises(GatewayError) as refused:
        await core.admit(BY_COMMAND[QUIZ_GENERATE.key], USER, {"topic": ""}, SESSION)
    assert refused.value.code == "invalid_request"
    assert core.checked == []
