"""One table of cases through both transports: the same outcome on HTTP and gRPC.

Each case is a call made the HTTP way and the gRPC way. Both must end with the same code
(``ok`` or the machine-readable error code), and each transport's status must be the one
the code's declaration names (``exammentor/contracts/commands.py``).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import grpc
import httpx
import pytest
from grpc import aio

from exammentor._proto import gateway_pb2 as pb
from exammentor._proto import gateway_pb2_grpc
from exammentor.contracts.catalog import COMMANDS
from exammentor.contracts.commands import GATEWAY_ERRORS, ErrorCode
from exammentor.contracts.plan import MAX_SYLLABUS_CHARS
from tests.integration.conftest import Stack

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
