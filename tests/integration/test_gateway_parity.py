"""One table of cases through both transports: the same outcome on HTTP and gRPC.

Each case is a call made the HTTP way and the gRPC way. Both must end with the same code
(``ok`` or the machine-readable error code), and each transport's status must be the one
the code's declaration names (``exammentor/contracts/commands.py``).

And every route and method of the binding table (``exammentor/contracts/bindings.py``),
plain or streaming, sent twice with one idempotency key, is one request: the same request
id, one stored request, no second command (a stack of this module's own, on the scripted
model, whose calls are counted).
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import json_format, message_factory
from grpc import aio

from exammentor._proto import gateway_pb2 as pb
from exammentor._proto import gateway_pb2_grpc, tutor_pb2, tutor_pb2_grpc
from exammentor.contracts.autopilot import AUTOPILOT_START
from exammentor.contracts.bindings import BINDINGS, Binding, GrpcMethod, HttpRoute
from exammentor.contracts.catalog import COMMANDS
from exammentor.contracts.commands import GATEWAY_ERRORS, ErrorCode
from exammentor.contracts.plan import MAX_SYLLABUS_CHARS
from exammentor.contracts.tutor import STREAM_EVENT, TokenEvent
from services.gateway.grpc_commands import method_descriptor
from tests.conftest import SessionEnv
from tests.fakes.scripted_openai import Content, ScriptedOpenAI
from tests.integration.conftest import Stack, owner_connection, start_stack
from tests.unit.autopilot.strategies import make_plan

pytestmark = pytest.mark.integration

_DECLARED: dict[str, ErrorCode] = {
    **{e.code: e for c in COMMANDS.values() for e in c.errors},
    **{e.code: e for e in GATEWAY_ERRORS},
}
FORGED = (
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIwMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDAiLCJp"
    "c3MiOiJleGFtbWVudG9yIiwiZXhwIjo5OTk5OTk5OTk5fQ.forged-signature"
)


@dataclass
class Caller:
    """A registered student on both transports, with one session of their own."""

    name: str
    user_id: str
    token: str
    session_id: str

    @property
    def http(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def grpc(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),)


@dataclass
class World:
    me: Caller
    other: Caller
    http: httpx.AsyncClient
    stub: gateway_pb2_grpc.StudyGatewayStub


async def _caller(http: httpx.AsyncClient) -> Caller:
    name = f"parity-{uuid.uuid4().hex[:8]}"
    reply = await http.post("/api/users/register", json={"name": name, "password": "pass-word-1"})
    token, user_id = reply.json()["access_token"], reply.json()["user_id"]
    started = await http.post(
        "/api/session/start",
        json={"exam_type": "jee"},
        headers={"Authorization": f"Bearer {token}"},
    )
    return Caller(name, user_id, token, started.json()["session_id"])


@pytest.fixture
async def world(stack: Stack) -> AsyncIterator[World]:
    async with (
        httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http,
        aio.insecure_channel(f"127.0.0.1:{stack.gateway.grpc_port}") as channel,
    ):
        yield World(
            await _caller(http),
            await _caller(http),
            http,
            gateway_pb2_grpc.StudyGatewayStub(channel),
        )


HttpCall = Callable[[World], Awaitable[httpx.Response]]
GrpcCall = Callable[[World], Awaitable[object]]


async def _http_outcome(call: HttpCall, w: World) -> tuple[str, int]:
    reply = await call(w)
    if reply.status_code < 300:
        return "ok", reply.status_code
    return reply.json()["detail"]["code"], reply.status_code


async def _grpc_outcome(call: GrpcCall, w: World) -> tuple[str, grpc.StatusCode]:
    try:
        await call(w)
    except aio.AioRpcError as exc:
        code = dict(exc.trailing_metadata() or ()).get("error-code", "?")
        return str(code), exc.code()
    return "ok", grpc.StatusCode.OK


async def _drain(stream: object) -> None:
    async for _ in stream:  # type: ignore[attr-defined]
        pass


CASES: dict[str, tuple[str, HttpCall, GrpcCall]] = {
    "valid session start": (
        "ok",
        lambda w: w.http.post("/api/session/start", json={"exam_type": "neet"}, headers=w.me.http),
        lambda w: w.stub.StartSession(pb.StartSessionRequest(exam_type="neet"), metadata=w.me.grpc),
    ),
    "valid state of my session": (
        "ok",
        lambda w: w.http.get(f"/api/session/{w.me.session_id}/state", headers=w.me.http),
        lambda w: w.stub.GetSessionState(
            pb.SessionRef(session_id=w.me.session_id), metadata=w.me.grpc
        ),
    ),
    "no token": (
        "unauthenticated",
        lambda w: w.http.get(f"/api/session/{w.me.session_id}/state"),
        lambda w: w.stub.GetSessionState(pb.SessionRef(session_id=w.me.session_id)),
    ),
    "forged token": (
        "unauthenticated",
        lambda w: w.http.get("/api/sessions", headers={"Authorization": f"Bearer {FORGED}"}),
        lambda w: w.stub.ListSessions(
            pb.SessionListRequest(), metadata=(("authorization", f"Bearer {FORGED}"),)
        ),
    ),
    "another user's session": (
        "session_not_found",
        lambda w: w.http.get(f"/api/session/{w.other.session_id}/history", headers=w.me.http),
        lambda w: w.stub.GetSessionHistory(
            pb.SessionRef(session_id=w.other.session_id), metadata=w.me.grpc
        ),
    ),
    "another user's id in the body": (
        "user_mismatch",
        lambda w: w.http.post(
            "/api/session/start", json={"user_id": w.other.user_id}, headers=w.me.http
        ),
        lambda w: w.stub.StartSession(
            pb.StartSessionRequest(user_id=w.other.user_id), metadata=w.me.grpc
        ),
    ),
    "my own id in the body, as the original's client sends it": (
        "ok",
        lambda w: w.http.post(
            "/api/session/start",
            json={"user_id": w.me.user_id, "exam_type": "neet"},
            headers=w.me.http,
        ),
        lambda w: w.stub.StartSession(
            pb.StartSessionRequest(user_id=w.me.user_id, exam_type="neet"), metadata=w.me.grpc
        ),
    ),
    "an id that is not a UUID": (
        "invalid_request",
        lambda w: w.http.get("/api/requests/not-a-uuid", headers=w.me.http),
        lambda w: w.stub.GetRequest(pb.RequestRef(request_id="not-a-uuid"), metadata=w.me.grpc),
    ),
    "a short password": (
        "invalid_request",
        lambda w: w.http.post("/api/users/register", json={"name": "shorty", "password": "x"}),
        lambda w: w.stub.Register(pb.Credentials(name="shorty", password="x")),
    ),
    "a name that is taken": (
        "name_taken",
        lambda w: w.http.post(
            "/api/users/register", json={"name": w.me.name, "password": "another-pass"}
        ),
        lambda w: w.stub.Register(pb.Credentials(name=w.me.name, password="another-pass")),
    ),
    "a wrong password": (
        "bad_credentials",
        lambda w: w.http.post(
            "/api/users/login", json={"name": w.me.name, "password": "wrong-password"}
        ),
        lambda w: w.stub.Login(pb.Credentials(name=w.me.name, password="wrong-password")),
    ),
    "days out of range": (
        "invalid_request",
        lambda w: w.http.post(
            "/api/plan/generate",
            json={"exam_type": "neet", "goal": "x", "days": 400},
            headers=w.me.http,
        ),
        lambda w: _drain(
            w.stub.GeneratePlan(
                pb.PlanRequest(exam_type="neet", goal="x", days=400), metadata=w.me.grpc
            )
        ),
    ),
    "an oversize syllabus": (
        "syllabus_too_large",
        lambda w: w.http.post(
            "/api/plan/generate",
            json={"syllabus_text": "a" * (MAX_SYLLABUS_CHARS + 1), "goal": "x"},
            headers=w.me.http,
        ),
        lambda w: _drain(
            w.stub.GeneratePlan(
                pb.PlanRequest(syllabus_text="a" * (MAX_SYLLABUS_CHARS + 1), goal="x"),
                metadata=w.me.grpc,
            )
        ),
    ),
    "a plan for another user's session": (
        "session_not_found",
        lambda w: w.http.post(
            f"/api/plan/generate?session_id={w.other.session_id}",
            json={"exam_type": "neet", "goal": "x"},
            headers=w.me.http,
        ),
        lambda w: _drain(
            w.stub.GeneratePlan(
                pb.PlanRequest(exam_type="neet", goal="x", session_id=w.other.session_id),
                metadata=w.me.grpc,
            )
        ),
    ),
    "a phase move the state machine refuses": (
        "invalid_transition",
        lambda w: w.http.post(
            f"/api/session/{w.me.session_id}/save",
            json={"context": {}, "phase": "COMPLETED"},
            headers=w.me.http,
        ),
        lambda w: w.stub.SaveSession(
            pb.SaveSessionRequest(session_id=w.me.session_id, phase="COMPLETED"),
            metadata=w.me.grpc,
        ),
    ),
    "a phase that does not exist": (
        "invalid_request",
        lambda w: w.http.post(
            f"/api/session/{w.me.session_id}/save",
            json={"context": {}, "phase": "FLYING"},
            headers=w.me.http,
        ),
        lambda w: w.stub.SaveSession(
            pb.SaveSessionRequest(session_id=w.me.session_id, phase="FLYING"), metadata=w.me.grpc
        ),
    ),
    "an echo to a service that does not exist": (
        "invalid_request",
        lambda w: w.http.post(
            "/api/system/echo", json={"text": "hi", "service": "mailer"}, headers=w.me.http
        ),
        lambda w: w.stub.Echo(pb.EchoRequest(text="hi", service="mailer"), metadata=w.me.grpc),
    ),
    "a plan that is not there": (
        "not_found",
        lambda w: w.http.get(f"/api/plans/{uuid.uuid4()}", headers=w.me.http),
        lambda w: w.stub.GetPlan(pb.PlanRef(plan_id=str(uuid.uuid4())), metadata=w.me.grpc),
    ),
    "a valid echo": (
        "ok",
        lambda w: w.http.post(
            "/api/system/echo", json={"text": "hi", "service": "quiz"}, headers=w.me.http
        ),
        lambda w: w.stub.Echo(pb.EchoRequest(text="hi", service="quiz"), metadata=w.me.grpc),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_both_transports_give_the_same_outcome(world: World, case: str) -> None:
    expected, http_call, grpc_call = CASES[case]
    http_code, http_status = await _http_outcome(http_call, world)
    grpc_code, grpc_status = await _grpc_outcome(grpc_call, world)
    assert (http_code, grpc_code) == (expected, expected)
    if expected == "ok":
        assert http_status < 300
        assert grpc_status == grpc.StatusCode.OK
    else:
        assert http_status == _DECLARED[expected].http_status
        assert grpc_status == grpc.StatusCode[_DECLARED[expected].grpc_status]


# ---- idempotency on every command, driven by the binding table ----------------------------

PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
    )
).decode()
QUESTION = {
    "id": "q-parity-1",
    "text": "What bends light?",
    "options": ["A lens", "A rock", "Sand", "Air"],
    "concept_tested": "refraction",
    "correct_option_index": 0,
    "explanation": "A lens refracts light.",
}


def _samples(user_id: str) -> dict[str, dict[str, Any]]:
    """A valid input of each bound command (the gateway takes it; the worker may refuse it,
    which is an answer like any other)."""
    return {
        "system.echo@1": {"text": "parity", "service": "quiz"},
        "plan.generate@1": {
            "goal": "Pass JEE physics",
            "exam_type": "jee",
            "days": 3,
            "syllabus_text": "Optics\nKinematics",
        },
        "quiz.generate@1": {"topic": "refraction", "num_questions": 1},
        "quiz.generate_from_image@1": {
            "topic": "refraction",
            "image_base64": PNG,
            "mime_type": "image/png",
        },
        "quiz.grade@1": {"question_id": "q-unknown", "student_answer_index": 0},
        "quiz.diagnose@1": {"question_id": "q-unknown", "student_answer_index": 1},
        "quiz.analyze@1": {
            "topic": "refraction",
            "quiz_answers": [
                {
                    "question": "What bends light?",
                    "concept_tested": "refraction",
                    "student_answer_index": 1,
                    "correct_option_index": 0,
                }
            ],
        },
        "quiz.save@1": {"user_id": user_id, "topic_id": "refraction", "questions": [QUESTION]},
        "tutor.explain@1": {"topic": "refraction"},
        "tutor.stream@1": {"topic": "refraction"},
        "tutor.lesson@1": {"topic": "refraction"},
        "tutor.explain_image@1": {
            "topic": "refraction",
            "image_base64": PNG,
            "mime_type": "image/png",
        },
        "tutor.describe_image@1": {"image_base64": PNG, "mime_type": "image/png"},
        "tutor.extract_pdf_text@1": {"pdf_base64": base64.b64encode(b"%PDF-1.4 no").decode()},
        "tutor.material.add@1": {"title": "Notes", "text": "Refraction bends light."},
        "tutor.material.delete@1": {"material_id": str(uuid.uuid5(uuid.NAMESPACE_URL, user_id))},
        "tutor.chat.save@1": {"topic_id": "refraction", "messages": []},
        "autopilot.start@1": {
            "study_plan": make_plan("Optics").model_dump(mode="json"),
            "duration_minutes": 5,
        },
        "autopilot.control@1": {},
        "autopilot.answer@1": {"question_id": "q-unknown", "answer_index": 0},
    }


@dataclass
class Keyed:
    """A stack of this module's own on the scripted model, to send every command twice."""

    stack: Stack
    model: ScriptedOpenAI
    http: httpx.AsyncClient
    channel: aio.Channel


@pytest.fixture(scope="module")
async def keyed(test_env: SessionEnv) -> AsyncIterator[Keyed]:
    async with start_stack(
        test_env,
        model=Content("A short answer."),
        llm={"max_retries": 0, "repair_attempts": 0, "timeout_s": 10},
        gateway={"request_timeout_s": 20},
    ) as stack:
        assert stack.model is not None
        async with (
            httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http,
            aio.insecure_channel(f"127.0.0.1:{stack.gateway.grpc_port}") as channel,
        ):
            yield Keyed(stack, stack.model, http, channel)


def _entries() -> list[tuple[str, Binding, HttpRoute | GrpcMethod]]:
    found: list[tuple[str, Binding, HttpRoute | GrpcMethod]] = []
    for binding in BINDINGS:
        for route in binding.http:
            found.append((f"{route.method} {route.path}", binding, route))
        for method in binding.grpc:
            found.append((f"{method.service}/{method.method}", binding, method))
    return found


ENTRIES = {name: (binding, entry) for name, binding, entry in _entries()}


def test_every_bound_command_has_a_sample() -> None:
    assert {b.command.key for b in BINDINGS} == set(_samples("u"))


async def _send_http(
    k: Keyed, caller: Caller, binding: Binding, route: HttpRoute, key: str
) -> str | None:
    """Sends the route's sample; returns the request id the answer names, if it names one."""
    data = _samples(caller.user_id)[binding.command.key]
    path = route.path.replace("{session_id}", caller.session_id)
    for name, value in data.items():
        path = path.replace(f"{{{name}}}", str(value))
    params = {"session_id": caller.session_id} if binding.session == "optional" else {}
    reply = await k.http.request(
        route.method,
        path,
        params=params,
        json=data if route.body else None,
        headers={**caller.http, "Idempotency-Key": key},
    )
    assert reply.status_code < 500, reply.text
    if reply.status_code >= 400:
        refused = reply.json()["detail"]["code"]
        assert refused not in ("idempotency_conflict", "invalid_request"), reply.text
    return reply.headers.get("X-Request-Id")


async def _send_grpc(
    k: Keyed, caller: Caller, binding: Binding, method: GrpcMethod, key: str
) -> str | None:
    """Calls the method with the sample; returns the request id the answer names, if any."""
    descriptor = method_descriptor(method)
    data = dict(_samples(caller.user_id)[binding.command.key])
    if binding.session in ("optional", "required"):
        data["session_id"] = caller.session_id
    request_class = message_factory.GetMessageClass(descriptor.input_type)
    request = json_format.ParseDict(data, request_class())
    output = message_factory.GetMessageClass(descriptor.output_type)
    path = f"/{descriptor.containing_service.full_name}/{descriptor.name}"
    metadata = (*caller.grpc, ("idempotency-key", key))
    kwargs: dict[str, Any] = {
        "request_serializer": request_class.SerializeToString,
        "response_deserializer": output.FromString,
    }
    try:
        if descriptor.server_streaming:
            call = k.channel.unary_stream(path, **kwargs)(request, metadata=metadata)
            answers = [message async for message in call]
            return str(answers[-1].request_id) if answers else None
        answer = await k.channel.unary_unary(path, **kwargs)(request, metadata=metadata)
    except aio.AioRpcError as exc:
        failed = exc
    else:
        failed = None
    if failed is not None:
        trailing = {str(k_): str(v) for k_, v in failed.trailing_metadata() or ()}
        assert trailing.get("error-code") not in ("idempotency_conflict", "invalid_request")
        assert failed.code() not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
        return trailing.get("request-id")
    return str(answer.request_id) if "request_id" in output.DESCRIPTOR.fields_by_name else None


@pytest.mark.parametrize("entry", sorted(ENTRIES))
async def test_a_repeated_idempotency_key_is_the_same_request(keyed: Keyed, entry: str) -> None:
    binding, bound = ENTRIES[entry]
    caller = await _caller(keyed.http)
    key = f"parity-{uuid.uuid4().hex[:8]}"
    send = _send_http if isinstance(bound, HttpRoute) else _send_grpc
    first = await send(keyed, caller, binding, bound, key)  # type: ignore[arg-type]
    again = await send(keyed, caller, binding, bound, key)  # type: ignore[arg-type]
    if first is not None or again is not None:
        assert first == again
    async with owner_connection(keyed.stack.env) as db:
        stored = await db.fetch(
            "SELECT id, idempotency_key FROM requests WHERE user_id = $1 AND kind = $2",
            uuid.UUID(caller.user_id),
            binding.command.name,
        )
    assert [r["idempotency_key"] for r in stored] == [key], "sent twice, or never"
    if first is not None:
        assert str(stored[0]["id"]) == first
    if binding.command is AUTOPILOT_START:
        await keyed.http.post(f"/api/autopilot/stop/{caller.session_id}", headers=caller.http)


async def test_a_repeated_tutor_stream_pays_the_model_once(keyed: Keyed) -> None:
    """The bug this table fixed: ``Tutor/StreamExplanation`` twice with one
    ``idempotency-key`` made two requests and paid the model twice."""
    caller = await _caller(keyed.http)
    stub = tutor_pb2_grpc.TutorStub(keyed.channel)
    metadata = (*caller.grpc, ("idempotency-key", "explain-once"))
    request = tutor_pb2.ExplainRequest(topic="Snell's law")
    calls_before = len(keyed.model.chat_requests)
    first = [e async for e in stub.StreamExplanation(request, metadata=metadata)]
    paid = len(keyed.model.chat_requests)
    again = [e async for e in stub.StreamExplanation(request, metadata=metadata)]
    assert paid > calls_before, "the first stream never reached the model"
    assert len(keyed.model.chat_requests) == paid, "the repeated stream paid the model again"
    assert {e.request_id for e in first} == {e.request_id for e in again}
    assert len({e.request_id for e in first}) == 1
    assert again[-1].WhichOneof("event") == "done"
    # The answer too, not only its end: the first caller's tokens, whole, for the retry.
    text = [
        "".join(e.token.text for e in run if e.WhichOneof("event") == "token")
        for run in (first, again)
    ]
    assert text[0].strip()
    assert text[1].strip() == text[0].strip()


async def test_a_repeated_http_stream_gets_the_answer_it_paid_for_once(keyed: Keyed) -> None:
    caller = await _caller(keyed.http)
    headers = {**caller.http, "Idempotency-Key": f"stream-{uuid.uuid4().hex[:8]}"}
    texts = []
    for _ in range(2):
        reply = await keyed.http.post(
            "/api/tutor/stream?format=ndjson", json={"topic": "Snell's law"}, headers=headers
        )
        assert reply.status_code == 200, reply.text
        events = [STREAM_EVENT.validate_json(line) for line in reply.text.splitlines() if line]
        assert events[-1].kind == "done"
        texts.append("".join(e.text for e in events if isinstance(e, TokenEvent)))
    assert texts[0].strip()
    assert texts[1].strip() == texts[0].strip()
