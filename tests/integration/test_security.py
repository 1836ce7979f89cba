"""Security of the running gateway and schema: attempt limits on register and login (both
transports), secrets that fail closed, an authenticated result relay, and row-level security
forced on every table that holds a user's data.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator

import asyncpg
import grpc
import httpx
import jwt
import pytest
from grpc import aio
from pydantic import ValidationError

from exammentor._proto import gateway_pb2, gateway_pb2_grpc, relay_pb2, relay_pb2_grpc
from exammentor.db import create_pool, system_transaction, user_transaction
from exammentor.messaging.result_relay import RelayChannels, RelayHub
from exammentor.settings import ServiceSettings, WorkerSettings
from services.gateway.app import Gateway
from services.gateway.limits import AttemptLimiter, TooManyAttempts, peer_host
from services.gateway.settings import AttemptLimits, GatewaySettings
from tests.conftest import SessionEnv
from tests.infra import unique_name
from tests.integration.conftest import Stack, register

OLD_PUBLIC_SECRET = "exammentor-local-development-secret-change-me"
STRONG = "x" * 40

# ---- secrets ---------------------------------------------------------------------------


def test_production_refuses_to_start_without_its_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("EXAMMENTOR_RELAY_TOKEN", raising=False)
    monkeypatch.delenv("EXAMMENTOR_JWT_SECRET", raising=False)
    with pytest.raises(ValidationError, match="EXAMMENTOR_JWT_SECRET must be set"):
        GatewaySettings(mode="production", relay_token=STRONG)
    with pytest.raises(ValidationError, match="EXAMMENTOR_RELAY_TOKEN must be set"):
        GatewaySettings(mode="production", jwt_secret=STRONG)
    with pytest.raises(ValidationError, match="EXAMMENTOR_RELAY_TOKEN must be set"):
        WorkerSettings(mode="production", service_name="planner")
    with pytest.raises(ValidationError, match="at least 32 characters"):
        GatewaySettings(mode="production", jwt_secret="short", relay_token=STRONG)
    with pytest.raises(ValidationError, match="set but empty"):
        GatewaySettings(jwt_secret=" ")

    monkeypatch.setenv("EXAMMENTOR_JWT_SECRET", STRONG)
    monkeypatch.setenv("EXAMMENTOR_RELAY_TOKEN", STRONG + "y")
    ready = GatewaySettings(mode="production")
    assert ready.jwt_secret.get_secret_value() == STRONG
    assert ready.generated_secrets == []
    # The operators' command signs and relays nothing: it needs neither secret.
    monkeypatch.delenv("EXAMMENTOR_JWT_SECRET")
    monkeypatch.delenv("EXAMMENTOR_RELAY_TOKEN")
    assert ServiceSettings(mode="production").mode == "production"


def test_a_local_run_without_secrets_makes_random_ones_shared_by_its_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("EXAMMENTOR_RELAY_TOKEN", raising=False)
    monkeypatch.delenv("EXAMMENTOR_JWT_SECRET", raising=False)
    gateway, again = GatewaySettings(), GatewaySettings()
    worker = WorkerSettings(service_name="tutor")
    secret = gateway.jwt_secret.get_secret_value()
    assert secret != OLD_PUBLIC_SECRET
    assert len(secret) >= 32
    assert again.jwt_secret == gateway.jwt_secret
    assert worker.relay_token == gateway.relay_token != gateway.jwt_secret
    assert gateway.generated_secrets == ["EXAMMENTOR_JWT_SECRET", "EXAMMENTOR_RELAY_TOKEN"]


async def test_a_token_signed_with_the_old_public_secret_is_refused(
    client: httpx.AsyncClient,
) -> None:
    user_id, _ = await register(client)
    forged = jwt.encode(
        {"sub": user_id, "exp": 4_000_000_000, "iss": "exammentor", "name": "x"},
        OLD_PUBLIC_SECRET,
        "HS256",
    )
    reply = await client.get(
        f"/api/requests/{uuid.uuid4()}", headers={"Authorization": f"Bearer {forged}"}
    )
    assert reply.status_code == 401
    assert reply.json()["detail"]["code"] == "unauthenticated"


# ---- attempt limits --------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_limiter_refuses_past_the_limit_and_gives_attempts_back_with_time() -> None:
    clock = Clock()
    limiter = AttemptLimiter(AttemptLimits(per_name=3, per_address=4, window_s=60), clock)
    for _ in range(3):
        limiter.check("login", "Asha", "10.0.0.1")
    with pytest.raises(TooManyAttempts) as name_limited:
        limiter.check("login", "asha", "10.0.0.2")  # names compare case-insensitively
    assert name_limited.value.kind == "name"
    assert name_limited.value.retry_after_s == 20  # one attempt back every 60/3 s
    limiter.check("register", "asha", "10.0.0.1")  # register counts apart from login
    limiter.check("login", "ben", "10.0.0.1")
    with pytest.raises(TooManyAttempts) as address_limited:
        limiter.check("login", "carl", "10.0.0.1")  # a refusal took none of the four
    assert address_limited.value.kind == "address"
    clock.now += 20
    limiter.check("login", "asha", "10.0.0.3")
    with pytest.raises(TooManyAttempts):
        limiter.check("login", "asha", "10.0.0.3")


def test_the_limiter_remembers_a_bounded_number_of_keys() -> None:
    limiter = AttemptLimiter(AttemptLimits(per_name=1, per_address=10**6, max_tracked=100))
    for i in range(1000):
        limiter.check("login", f"made-up-{i}", "10.0.0.9")
    assert len(limiter._buckets) <= 100


@pytest.mark.parametrize(
    ("peer", "host"),
    [
        ("ipv4:10.1.2.3:5123", "10.1.2.3"),
        ("ipv6:[::1]:5123", "::1"),
        ("ipv6:%5B::1%5D:5123", "::1"),
        ("unix:/run/gw.sock", "/run/gw.sock"),
        ("", None),
    ],
)
def test_the_grpc_peer_gives_the_address_the_limiter_counts(peer: str, host: str | None) -> None:
    assert peer_host(peer) == host


@pytest.fixture(scope="module")
async def limited_gateway(test_env: SessionEnv) -> AsyncIterator[Gateway]:
    """A gateway of this module's own with small limits and no refill during the tests."""
    env = dataclasses.replace(test_env, topic_prefix=unique_name("sec"))
    gateway = Gateway(
        env.service_settings(
            GatewaySettings,
            http_port=0,
            grpc_port=0,
            relay_port=0,
            login_limits=AttemptLimits(per_name=3, per_address=6, window_s=3600),
        )
    )
    await gateway.start()
    yield gateway
    await gateway.stop()


@pytest.mark.integration
async def test_login_and_register_are_limited_per_name_and_address_on_both_transports(
    limited_gateway: Gateway,
) -> None:
    name = f"limited-{uuid.uuid4().hex[:8]}"
    creds = {"name": name, "password": "right-password"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{limited_gateway.http_port}") as http:
        assert (await http.post("/api/users/register", json=creds)).status_code == 201
        wrong = {"name": name, "password": "wrong-password"}
        assert (await http.post("/api/users/login", json=wrong)).status_code == 401
        assert (await http.post("/api/users/login", json=wrong)).status_code == 401
        assert (await http.post("/api/users/login", json=creds)).status_code == 200
        refused = await http.post("/api/users/login", json=creds)
        assert refused.status_code == 429, refused.text
        detail = refused.json()["detail"]
        assert detail["code"] == "too_many_attempts"
        assert detail["per"] == "name"
        assert int(refused.headers["Retry-After"]) == detail["retry_after_s"] >= 1

        async with aio.insecure_channel(f"127.0.0.1:{limited_gateway.grpc_port}") as channel:
            stub = gateway_pb2_grpc.StudyGatewayStub(channel)
            with pytest.raises(aio.AioRpcError) as over:
                await stub.Login(gateway_pb2.Credentials(name=name, password="right-password"))
            assert over.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            trailers = dict(over.value.trailing_metadata() or ())
            assert trailers["error-code"] == "too_many_attempts"
            assert int(trailers["retry-after"]) >= 1

            # The address: 3 attempts so far (refusals take none); 3 more pass, then all stop.
            for i in range(3):
                other = gateway_pb2.Credentials(name=f"{name}-{i}", password="whatever-pass")
                with pytest.raises(aio.AioRpcError) as unknown:
                    await stub.Login(other)
                assert unknown.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(aio.AioRpcError) as address:
                await stub.Login(gateway_pb2.Credentials(name="fresh-name", password="whatever"))
            assert address.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        fresh = await http.post("/api/users/login", json={"name": "fresh", "password": "p" * 8})
        assert fresh.status_code == 429
        assert fresh.json()["detail"]["per"] == "address"
        # Registering counts apart: the address may still register.
        other = {"name": f"{name}-new", "password": "right-password"}
        assert (await http.post("/api/users/register", json=other)).status_code == 201


# ---- the result relay ------------------------------------------------------------------


@pytest.mark.integration
async def test_the_relay_routes_only_pushes_that_carry_the_relay_token() -> None:
    token = "relay-token-of-this-test-0123456789abcdef"
    hub = RelayHub(token)
    server = aio.server()
    relay_pb2_grpc.add_ResultRelayServicer_to_server(hub, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    address = f"127.0.0.1:{port}"
    request_id = uuid.uuid4()
    chunk = relay_pb2.ResultChunk(request_id=str(request_id), seq=1, result_json='{"x": 1}')
    try:
        with hub.waiter(request_id) as queue:
            async with aio.insecure_channel(address) as channel:
                stub = relay_pb2_grpc.ResultRelayStub(channel)
                for metadata in ((), (("x-exammentor-relay-token", "guessed"),)):
                    with pytest.raises(aio.AioRpcError) as refused:
                        await stub.Push(iter([chunk]), metadata=metadata)
                    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            for wrong in (RelayChannels(), RelayChannels("guessed")):
                await wrong.stream(address, request_id).result({"forged": True})
                await wrong.close()
            await asyncio.sleep(0.2)
            assert queue.empty(), "an unauthenticated push was routed"

            right = RelayChannels(token)
            await right.stream(address, request_id).result({"answer": 42})
            got = await asyncio.wait_for(queue.get(), 10)
            await right.close()
        assert got.data == {"answer": 42}
    finally:
        await server.stop(None)


# ---- row-level security ----------------------------------------------------------------


@pytest.mark.integration
async def test_every_table_with_a_user_id_has_row_level_security_enabled_and_forced(
    admin_db: asyncpg.Connection,
) -> None:
    rows = await admin_db.fetch(
        """
        SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
               (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) AS policies
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
          AND (c.relname = 'users' OR EXISTS (
            SELECT 1 FROM pg_attribute a
            WHERE a.attrelid = c.oid AND a.attname = 'user_id' AND NOT a.attisdropped))
        """
    )
    assert len(rows) > 10
    unprotected = [
        r["relname"]
        for r in rows
        if not (r["relrowsecurity"] and r["relforcerowsecurity"] and r["policies"] > 0)
    ]
    assert unprotected == [], f"row-level security not enabled and forced on {unprotected}"
    names = {r["relname"] for r in rows}
    assert {"inbox", "outbox", "dead_letters", "llm_usage", "requests"} <= names


@pytest.mark.integration
async def test_a_users_transaction_sees_none_of_anothers_pipeline_rows(
    stack: Stack, client: httpx.AsyncClient, test_env: SessionEnv, admin_db: asyncpg.Connection
) -> None:
    asha, asha_auth = await register(client)
    ben, _ = await register(client)
    reply = await client.post("/api/system/echo", json={"text": "mine"}, headers=asha_auth)
    assert reply.status_code == 200, reply.text
    await admin_db.execute(
        'INSERT INTO dead_letters (consumer, topic, partition, "offset", value, reason, '
        "attempts, user_id) VALUES ('t', $1, 0, 1, '\\x7b7d', 'test', 3, $2)",
        unique_name("topic"),
        uuid.UUID(asha),
    )
    tables = ("inbox", "outbox", "llm_usage", "dead_letters", "requests", "request_events")
    pool = await create_pool(test_env.app_dsn, max_size=2)
    try:
        async with user_transaction(pool, uuid.UUID(asha)) as conn:
            own = {t: await conn.fetchval(f"SELECT count(*) FROM {t}") for t in tables}
            assert await conn.fetchval("SELECT count(*) FROM users") == 1
        async with user_transaction(pool, uuid.UUID(ben)) as conn:
            for table in tables:
                others = await conn.fetchval(
                    f"SELECT count(*) FROM {table} WHERE user_id <> $1", uuid.UUID(ben)
                )
                assert others == 0, f"{table}: ben sees another user's rows"
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(
                    "INSERT INTO inbox (consumer, command_id, user_id) VALUES ('x', $1, $2)",
                    uuid.uuid4(),
                    uuid.UUID(asha),
                )
        async with system_transaction(pool) as conn:
            system = {t: await conn.fetchval(f"SELECT count(*) FROM {t}") for t in tables}
            assert await conn.fetchval("SELECT count(*) FROM users") == 0
    finally:
        await pool.close()
    assert own["inbox"] >= 1
    assert own["outbox"] >= 1
    assert own["dead_letters"] == 1
    # Outside any user, the kit sees every pipeline row and no user table's rows.
    assert system["inbox"] >= own["inbox"]
    assert system["outbox"] >= own["outbox"]
    assert system["requests"] == system["request_events"] == 0
