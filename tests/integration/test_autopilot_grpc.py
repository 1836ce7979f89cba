"""The autopilot's gRPC twin (``proto/autopilot.proto``) on the autopilot scene (stand-in tutor
and quiz on the scripted model): start, the Watch server stream, answers, pause, resume and
stop over gRPC, refusals with the statuses and codes HTTP answers with, and the same status
on both transports.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import json_format
from grpc import aio

from exammentor._proto import autopilot_pb2 as pb
from exammentor._proto import autopilot_pb2_grpc, gateway_pb2
from tests.integration import test_autopilot as base
from tests.integration.test_autopilot import (
    CORRECT_INDEX,
    PLAN,
    Scene,
    assert_contiguous_once,
    status,
    student,
)

pytestmark = pytest.mark.integration

# The scene's fixtures, shared with the autopilot's other tests.
scripted_llm = base.scripted_llm
scene = base.scene
scene_env = base.scene_env
http = base.http

Meta = tuple[tuple[str, str], ...]


@pytest.fixture
async def stub(scene: Scene) -> AsyncIterator[autopilot_pb2_grpc.AutopilotStub]:
    """A client of the scene gateway's Autopilot service."""
    async with aio.insecure_channel(f"127.0.0.1:{scene.gateway.grpc_port}") as channel:
        yield autopilot_pb2_grpc.AutopilotStub(channel)


def bearer(auth: dict[str, str]) -> Meta:
    """The HTTP Authorization header as gRPC metadata."""
    return (("authorization", auth["Authorization"]),)


def plan_message() -> gateway_pb2.StudyPlan:
    """The scene's plan as the planner's typed message (what GetPlan and GeneratePlan answer)."""
    return json_format.ParseDict(PLAN, gateway_pb2.StudyPlan())


async def refusal(call: Any) -> tuple[grpc.StatusCode, str, str]:
    """A refused call's status, message and ``error-code``."""

    async def finish() -> None:
        if isinstance(call, aio.UnaryStreamCall):
            async for _ in call:
                pass
        else:
            await call

    with pytest.raises(aio.AioRpcError) as refused:
        await finish()
    trailing = dict(refused.value.trailing_metadata() or ())
    return refused.value.code(), refused.value.details() or "", str(trailing.get("error-code"))


def as_dict(message: Any) -> dict[str, Any]:
    """A response as a proto3 client reads it: scalars always, unset optionals left out."""
    found: dict[str, Any] = json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return found


async def wait_for(
    stub: autopilot_pb2_grpc.AutopilotStub, meta: Meta, session: str, check: Any
) -> pb.AutopilotStatusResponse:
    """Polls ``GetStatus`` until ``check`` holds."""
    async with asyncio.timeout(60):
        while True:
            found = await stub.GetStatus(pb.AutopilotSessionRef(session_id=session), metadata=meta)
            if check(found):
                return found
            await asyncio.sleep(0.1)


def ended(found: pb.AutopilotStatusResponse) -> bool:
    """The run is over."""
    return found.status in ("completed", "stopped", "failed")


async def test_a_whole_run_over_grpc_with_the_watch_stream(
    scene: Scene, stub: autopilot_pb2_grpc.AutopilotStub, http: httpx.AsyncClient
) -> None:
    await scene.add_replica()
    auth = await student(http)
    meta = bearer(auth)
    started = await stub.Start(
        pb.AutopilotStartRequest(study_plan=plan_message(), exam_type="jee"), metadata=meta
    )
    assert started.status == "running"
    assert started.target_duration_minutes == 30  # unset: the model's default
    assert started.run_number == 1
    session = started.session_id

    events: list[pb.AutopilotWatchEvent] = []

    async def watch() -> None:
        async for event in stub.Watch(pb.AutopilotWatchRequest(session_id=session), metadata=meta):
            events.append(event)

    watcher = asyncio.create_task(watch())
    answered = 0
    while True:
        found = await wait_for(stub, meta, session, lambda s: s.awaiting_input or ended(s))
        if ended(found):
            break
        assert found.HasField("current_question")
        index = (CORRECT_INDEX + 1) % 4 if answered == 0 else CORRECT_INDEX
        reply = await stub.Answer(
            pb.AutopilotAnswerRequest(
                session_id=session, question_id=found.current_question.id, answer_index=index
            ),
            metadata=meta,
        )
        assert reply.status == "answer_received"
        answered += 1
    await asyncio.wait_for(watcher, 30)

    assert found.status == "completed"
    assert list(found.topics_completed) == ["Kinematics", "Laws of Motion"]
    steps = as_dict(found)["steps"]
    assert_contiguous_once(steps)
    actions = [s["action"] for s in steps]
    assert actions.count("answer") == answered
    assert actions.count("diagnose") == 1
    # The stream: every step once, in seq order, the last one the end.
    assert [e.seq for e in events] == list(range(1, len(steps) + 1))
    assert events[-1].status == "completed"
    assert [e.step.action for e in events] == actions
    # The same run as HTTP reads it.
    over_http = await status(http, auth, session)
    assert [s["number"] for s in over_http["steps"]] == [s["number"] for s in steps]
    assert over_http["topics_completed"] == list(found.topics_completed)
    assert over_http["status"] == found.status
    # A resumed watch of the finished run replays from after the seq given, then ends.
    tail = [
        e.seq
        async for e in stub.Watch(
            pb.AutopilotWatchRequest(session_id=session, after=len(steps) - 2, run=1),
            metadata=meta,
        )
    ]
    assert tail == [len(steps) - 1, len(steps)]


async def test_pause_resume_and_stop_over_grpc_act_at_once(
    scene: Scene, stub: autopilot_pb2_grpc.AutopilotStub, http: httpx.AsyncClient
) -> None:
    await scene.add_replica()
    auth = await student(http)
    meta = bearer(auth)
    started = await stub.Start(
        pb.AutopilotStartRequest(study_plan=plan_message(), duration_minutes=10), metadata=meta
    )
    session = started.session_id
    ref = pb.AutopilotSessionRef(session_id=session)
    before = await wait_for(stub, meta, session, lambda s: s.awaiting_input)
    question = before.current_question.id

    paused = await stub.Pause(ref, metadata=meta)
    assert (paused.status, paused.session_id) == ("paused", session)
    now = await stub.GetStatus(ref, metadata=meta)
    assert now.status == "paused"
    assert not now.awaiting_input
    code, message, error = await refusal(
        stub.Answer(
            pb.AutopilotAnswerRequest(session_id=session, question_id=question, answer_index=1),
            metadata=meta,
        )
    )
    assert (code, error) == (grpc.StatusCode.FAILED_PRECONDITION, "answer_refused")
    assert "paused" in message
    code, _, error = await refusal(stub.Pause(ref, metadata=meta))
    assert (code, error) == (grpc.StatusCode.FAILED_PRECONDITION, "control_refused")

    resumed = await stub.Resume(ref, metadata=meta)
    assert resumed.status == "running"
    after = await stub.GetStatus(ref, metadata=meta)
    assert after.current_question.id == question
    stopped = await stub.Stop(ref, metadata=meta)
    assert stopped.status == "stopped"
    final = await stub.GetStatus(ref, metadata=meta)
    assert final.status == "stopped"
    assert final.current_phase == "finished"
    assert [s.action for s in final.steps][-3:] == ["pause", "resume", "stop"]
    # A watch of the stopped run ends by itself with the stop as its last event.
    events = [
        e async for e in stub.Watch(pb.AutopilotWatchRequest(session_id=session), metadata=meta)
    ]
    assert events[-1].step.action == "stop"
    assert events[-1].status == "stopped"


async def test_bad_input_over_grpc_is_refused_as_http_refuses_it(
    scene: Scene, stub: autopilot_pb2_grpc.AutopilotStub, http: httpx.AsyncClient
) -> None:
    await scene.add_replica()
    auth = await student(http)
    other = bearer(await student(http))
    meta = bearer(auth)
    started = await stub.Start(pb.AutopilotStartRequest(study_plan=plan_message()), metadata=meta)
    session = started.session_id
    ref = pb.AutopilotSessionRef(session_id=session)

    again = pb.AutopilotStartRequest(study_plan=plan_message(), session_id=session)
    code, _, error = await refusal(stub.Start(again, metadata=meta))
    assert (code, error) == (grpc.StatusCode.FAILED_PRECONDITION, "autopilot_active")
    code, _, _ = await refusal(stub.Start(again, metadata=other))
    assert code == grpc.StatusCode.NOT_FOUND
    code, _, error = await refusal(stub.GetStatus(ref, metadata=other))
    assert (code, error) == (grpc.StatusCode.NOT_FOUND, "autopilot_not_found")
    code, _, error = await refusal(stub.Pause(ref, metadata=other))
    assert (code, error) == (grpc.StatusCode.NOT_FOUND, "session_not_found")
    code, _, error = await refusal(
        stub.Watch(pb.AutopilotWatchRequest(session_id=session), metadata=other)
    )
    assert (code, error) == (grpc.StatusCode.NOT_FOUND, "autopilot_not_found")
    unknown = pb.AutopilotSessionRef(session_id=str(uuid.uuid4()))
    code, _, _ = await refusal(stub.GetStatus(unknown, metadata=meta))
    assert code == grpc.StatusCode.NOT_FOUND
    code, message, _ = await refusal(
        stub.GetStatus(pb.AutopilotSessionRef(session_id="nope"), metadata=meta)
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "session_id" in message

    empty = plan_message()
    del empty.schedule[:]
    code, message, _ = await refusal(
        stub.Start(pb.AutopilotStartRequest(study_plan=empty), metadata=meta)
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "no topics" in message
    code, message, _ = await refusal(
        stub.Start(
            pb.AutopilotStartRequest(study_plan=plan_message(), duration_minutes=500),
            metadata=meta,
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "240" in message
    # 0 is a duration sent, not a field left out: refused, as HTTP refuses it.
    code, message, _ = await refusal(
        stub.Start(
            pb.AutopilotStartRequest(study_plan=plan_message(), duration_minutes=0),
            metadata=meta,
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "duration_minutes" in message
    code, _, _ = await refusal(
        stub.Watch(pb.AutopilotWatchRequest(session_id=session, after=-1), metadata=meta)
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, _, _ = await refusal(stub.Start(pb.AutopilotStartRequest(study_plan=plan_message())))
    assert code == grpc.StatusCode.UNAUTHENTICATED

    found = await wait_for(stub, meta, session, lambda s: s.awaiting_input)
    question = found.current_question.id
    cases = [
        (pb.AutopilotAnswerRequest(question_id="nope", answer_index=1), "not a question of"),
        (pb.AutopilotAnswerRequest(question_id=question, answer_index=7), "out of range"),
    ]
    for body, reason in cases:
        body.session_id = session
        code, message, error = await refusal(stub.Answer(body, metadata=meta))
        assert (code, error) == (grpc.StatusCode.FAILED_PRECONDITION, "answer_refused")
        assert reason in message
    code, message, _ = await refusal(
        stub.Answer(
            pb.AutopilotAnswerRequest(session_id=session, question_id=question), metadata=meta
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "answer_index" in message
    same = await stub.GetStatus(ref, metadata=meta)
    assert same.steps == found.steps
    assert same.current_question == found.current_question
    await stub.Stop(ref, metadata=meta)


def _start_from_reflection(address: str, token: str) -> tuple[str, str, str]:
    """What a client with no proto files does (as grpcurl does): it learns Start's request from
    the server, fills its plan with the reflected StudyPlan, and starts a run."""
    from google.protobuf.descriptor_pool import DescriptorPool
    from google.protobuf.message_factory import GetMessageClass
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )

    with grpc.insecure_channel(address) as channel:
        pool = DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
        start = pool.FindServiceByName("exammentor.gateway.v1.Autopilot").methods_by_name["Start"]
        request_cls = GetMessageClass(start.input_type)
        plan_cls = GetMessageClass(pool.FindMessageTypeByName("exammentor.gateway.v1.StudyPlan"))
        response_cls = GetMessageClass(start.output_type)
        call = channel.unary_unary(
            "/exammentor.gateway.v1.Autopilot/Start",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response_cls.FromString,
        )
        request = request_cls(study_plan=json_format.ParseDict(PLAN, plan_cls()))
        started = call(request, metadata=(("authorization", token),))
        plan_type = start.input_type.fields_by_name["study_plan"].message_type
        return plan_type.full_name, started.status, started.session_id


async def test_a_client_without_proto_files_starts_a_run_with_the_planners_plan(
    scene: Scene, http: httpx.AsyncClient
) -> None:
    # The plan message is gateway.proto's: reflection serves autopilot.proto with the file it
    # imports, and a StudyPlan goes into the start request as it is.
    await scene.add_replica()
    auth = await student(http)
    address = f"127.0.0.1:{scene.gateway.grpc_port}"
    # In a thread: the reflection client is synchronous and the server runs on this loop.
    plan_type, state, session = await asyncio.to_thread(
        _start_from_reflection, address, auth["Authorization"]
    )
    assert plan_type == "exammentor.gateway.v1.StudyPlan"
    assert state == "running"
    assert (await status(http, auth, session))["status"] == "running"
    # Stopped here: a run left running is carried on by whichever autopilot replica on this
    # database claims its lease next (a later test's, with another model).
    stopped = await http.post(f"/api/autopilot/stop/{session}", headers=auth)
    assert stopped.status_code == 200, stopped.text


async def test_the_original_names_and_the_index_alone_are_the_same_over_grpc(
    scene: Scene, stub: autopilot_pb2_grpc.AutopilotStub, http: httpx.AsyncClient
) -> None:
    await scene.add_replica()
    auth = await student(http)
    meta = bearer(auth)
    started = await stub.Start(pb.AutopilotStartRequest(study_plan=plan_message()), metadata=meta)
    session = started.session_id
    found = await wait_for(stub, meta, session, lambda s: s.awaiting_input)
    assert (found.current_phase, found.phase_detail) == ("quizzing", "awaiting_answer")
    over_http = await status(http, auth, session)
    assert (over_http["current_phase"], over_http["phase_detail"]) == (
        found.current_phase,
        found.phase_detail,
    )
    # An empty question_id (proto3's "not sent") is the question that waits, as over HTTP.
    reply = await stub.Answer(
        pb.AutopilotAnswerRequest(session_id=session, answer_index=CORRECT_INDEX), metadata=meta
    )
    assert reply.status == "answer_received"
    graded = await wait_for(
        stub, meta, session, lambda s: any(x.action == "answer" for x in s.steps)
    )
    answer = next(x for x in graded.steps if x.action == "answer")
    assert answer.data["question_id"] == found.current_question.id
    await stub.Stop(pb.AutopilotSessionRef(session_id=session), metadata=meta)
    code, message, error = await refusal(
        stub.Answer(pb.AutopilotAnswerRequest(session_id=session, answer_index=0), metadata=meta)
    )
    assert (code, error) == (grpc.StatusCode.FAILED_PRECONDITION, "answer_refused")
    assert "stopped" in message
    # The student's own user_id is taken on a start, another's refused (as over HTTP).
    code, _, error = await refusal(
        stub.Start(
            pb.AutopilotStartRequest(study_plan=plan_message(), user_id=str(uuid.uuid4())),
            metadata=meta,
        )
    )
    assert (code, error) == (grpc.StatusCode.PERMISSION_DENIED, "user_mismatch")
