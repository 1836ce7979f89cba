"""Study sessions on both transports: start, save (both body forms), state, list, history,
the state machine, concurrent audit appends, and isolation between users."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import grpc
import httpx
import pytest
from google.protobuf import struct_pb2
from grpc import aio

from exammentor._proto import gateway_pb2 as pb
from exammentor._proto import gateway_pb2_grpc
from tests.integration.conftest import Stack, register

pytestmark = pytest.mark.integration


@pytest.fixture
async def stub(stack: Stack) -> AsyncIterator[gateway_pb2_grpc.StudyGatewayStub]:
    async with aio.insecure_channel(f"127.0.0.1:{stack.gateway.grpc_port}") as channel:
        yield gateway_pb2_grpc.StudyGatewayStub(channel)


async def test_a_session_walks_the_state_machine_over_http(client: httpx.AsyncClient) -> None:
    _, auth = await register(client)
    started = await client.post("/api/session/start", json={"exam_type": "neet"}, headers=auth)
    assert started.status_code == 200, started.text
    session_id = started.json()["session_id"]
    state = (await client.get(f"/api/session/{session_id}/state", headers=auth)).json()
    assert state == {"phase": "INTAKE", "context": {}}

    # The body form (what the original's client sent) ...
    saved = await client.post(
        f"/api/session/{session_id}/save",
        json={"context": {"topic": "Optics"}, "phase": "PLANNING"},
        headers=auth,
    )
    assert saved.json() == {"ok": True, "phase": "PLANNING"}
    # ... and the query form (what the original's server wanted).
    saved = await client.post(
        f"/api/session/{session_id}/save?phase=LEARNING",
        json={"context": {"step": 2}},
        headers=auth,
    )
    assert saved.json() == {"ok": True, "phase": "LEARNING"}
    state = (await client.get(f"/api/session/{session_id}/state", headers=auth)).json()
    assert state == {"phase": "LEARNING", "context": {"step": 2}}

    refused = await client.post(
        f"/api/session/{session_id}/save", json={"phase": "COMPLETED"}, headers=auth
    )
    assert refused.status_code == 409
    detail = refused.json()["detail"]
    assert detail["code"] == "invalid_transition"
    assert "LEARNING" in detail["message"]
    assert "COMPLETED" in detail["message"]
    assert detail["allowed"] == ["QUIZZING"]
    after = (await client.get(f"/api/session/{session_id}/state", headers=auth)).json()
    assert after["phase"] == "LEARNING"  # a refused move changes nothing

    history = (await client.get(f"/api/session/{session_id}/history", headers=auth)).json()
    entries = history["entries"]
    assert [e["seq"] for e in entries] == [1, 2, 3]
    assert [e["action"] for e in entries] == ["start", "generate_plan", "start_topic"]
    assert [(e["from_phase"], e["to_phase"]) for e in entries[1:]] == [
        ("INTAKE", "PLANNING"),
        ("PLANNING", "LEARNING"),
    ]
    listed = (await client.get("/api/sessions", headers=auth)).json()["sessions"]
    assert [s["session_id"] for s in listed] == [session_id]
    assert listed[0]["phase"] == "LEARNING"


async def test_fifty_concurrent_saves_keep_fifty_history_entries(
    client: httpx.AsyncClient,
) -> None:
    _, auth = await register(client)
    session_id = (
        await client.post("/api/session/start", json={"exam_type": "jee"}, headers=auth)
    ).json()["session_id"]
    replies = await asyncio.gather(
        *(
            client.post(f"/api/session/{session_id}/save", json={"context": {"n": i}}, headers=auth)
            for i in range(50)
        )
    )
    assert [r.status_code for r in replies] == [200] * 50
    entries = (await client.get(f"/api/session/{session_id}/history", headers=auth)).json()[
        "entries"
    ]
    assert len(entries) == 51  # the start, then every save
    assert [e["seq"] for e in entries] == list(range(1, 52))
    assert sum(e["action"] == "save" for e in entries) == 50


async def test_another_users_session_is_not_found(client: httpx.AsyncClient) -> None:
    _, mine = await register(client)
    _, theirs = await register(client)
    session_id = (await client.post("/api/session/start", json={}, headers=theirs)).json()[
        "session_id"
    ]
    for reply in (
        await client.get(f"/api/session/{session_id}/state", headers=mine),
        await client.get(f"/api/session/{session_id}/history", headers=mine),
        await client.post(f"/api/session/{session_id}/save", json={}, headers=mine),
    ):
        assert reply.status_code == 404
        assert reply.json()["detail"]["code"] == "session_not_found"
    assert (await client.get("/api/sessions", headers=mine)).json() == {"sessions": []}
    unknown = await client.get(f"/api/session/{uuid.uuid4()}/state", headers=mine)
    assert unknown.status_code == 404


async def test_sessions_over_grpc(stub: gateway_pb2_grpc.StudyGatewayStub) -> None:
    token = await stub.Register(
        pb.Credentials(name=f"grpc-s-{uuid.uuid4().hex[:8]}", password="pass-word-1")
    )
    auth = (("authorization", f"Bearer {token.access_token}"),)
    started = await stub.StartSession(pb.StartSessionRequest(exam_type="cat"), metadata=auth)
    ref = pb.SessionRef(session_id=started.session_id)
    context = struct_pb2.Struct()
    context.update({"notes": ["a", "b"], "score": 3})
    saved = await stub.SaveSession(
        pb.SaveSessionRequest(session_id=started.session_id, context=context, phase="PLANNING"),
        metadata=auth,
    )
    assert saved.phase == "PLANNING"
    state = await stub.GetSessionState(ref, metadata=auth)
    assert state.phase == "PLANNING"
    assert dict(state.context)["score"] == 3
    history = await stub.GetSessionHistory(ref, metadata=auth)
    assert [e.action for e in history.entries] == ["start", "generate_plan"]
    listed = await stub.ListSessions(pb.SessionListRequest(), metadata=auth)
    assert [s.session_id for s in listed.sessions] == [started.session_id]
    with pytest.raises(aio.AioRpcError) as refused:
        await stub.SaveSession(
            pb.SaveSessionRequest(session_id=started.session_id, phase="ANALYZING"), metadata=auth
        )
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "PLANNING" in (refused.value.details() or "")


async def test_save_takes_the_original_clients_context_data(client: httpx.AsyncClient) -> None:
    _, auth = await register(client)
    started = await client.post("/api/session/start", json={"exam_type": "neet"}, headers=auth)
    session_id = started.json()["session_id"]
    # What the original's client sends (app/actions.ts): context_data, not context.
    saved = await client.post(
        f"/api/session/{session_id}/save",
        json={"context_data": {"topic": "Optics"}, "phase": "PLANNING"},
        headers=auth,
    )
    assert saved.json() == {"ok": True, "phase": "PLANNING"}
    state = (await client.get(f"/api/session/{session_id}/state", headers=auth)).json()
    assert state == {"phase": "PLANNING", "context": {"topic": "Optics"}}

    both = await client.post(
        f"/api/session/{session_id}/save",
        json={"context": {"a": 1}, "context_data": {"b": 2}},
        headers=auth,
    )
    assert both.status_code == 422
    detail = both.json()["detail"]
    assert detail["code"] == "invalid_request"
    assert [e["field"] for e in detail["errors"]] == ["context_data"]
    assert detail["errors"][0]["type"] == "context_given_twice"
    after = (await client.get(f"/api/session/{session_id}/state", headers=auth)).json()
    assert after == state  # nothing stored for the refused save
