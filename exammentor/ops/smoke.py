"""``exammentor smoke``: post-deployment validation of a running stack.

Each check has a name and passes or fails on its own; the command goes on after a failure
(so one run names every broken part) and exits non-zero naming each failed check:

- ``gateway /health``, ``gateway /ready`` and ``<service> /health``, ``<service> /ready``
  on each worker's ops port (``deploy/local/stack.sh``'s ports unless overridden);
- ``http register``: a throwaway user (``smoke-<hex>``), whose token the rest use;
- ``http planner plan``: a small plan from ``syllabus_text`` (the one check that needs the
  model); ``http <service> echo`` and ``grpc <service> echo`` for every worker: a command
  through the gateway, Kafka, the service's inbox and the relay, both transports;
- ``kafka <service> lag``: committed offset against end offset of the service's command
  topic in its consumer group, at most ``lag_max`` messages behind.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import grpc
import httpx
from grpc import aio

from exammentor._proto import gateway_pb2 as pb
from exammentor._proto import gateway_pb2_grpc
from exammentor.messaging.topic_admin import consumer_lag
from exammentor.settings import KafkaSettings

WORKERS = ("planner", "tutor", "quiz", "autopilot")
DEFAULT_OPS_PORTS: Mapping[str, int] = {
    "planner": 9101,
    "tutor": 9102,
    "quiz": 9103,
    "autopilot": 9104,
}
"""As ``SERVICES`` in ``deploy/local/stack.sh`` (the first replica of each)."""

SMOKE_SYLLABUS = "Physics (smoke check)\n- Kinematics\n- Laws of Motion\n"


class SmokeError(Exception):
    """A check's failure, with what was seen."""


@dataclass(frozen=True)
class SmokeTargets:
    """What to check: the gateway's addresses, each worker's ops port, the lag allowed."""

    base_url: str = "http://127.0.0.1:8080"
    grpc: str = "127.0.0.1:50051"
    ops_ports: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_OPS_PORTS))
    ops_host: str = "127.0.0.1"
    lag_max: int = 100
    plan: bool = True
    timeout_s: float = 300.0

    @classmethod
    def parse(
        cls,
        *,
        base_url: str,
        grpc: str,
        ops_ports: Sequence[str] = (),
        lag_max: int = 100,
        plan: bool = True,
    ) -> SmokeTargets:
        """Targets from the command line (``SERVICE=PORT`` overrides the default ports).

        Raises:
            ValueError: An ops port that is not ``SERVICE=PORT`` of a known service.
        """
        ports = dict(DEFAULT_OPS_PORTS)
        for item in ops_ports:
            name, _, port = item.partition("=")
            if name not in ports or not port.isdigit():
                raise ValueError(
                    f"--ops-port {item!r}: want SERVICE=PORT, SERVICE one of {WORKERS}"
                )
            ports[name] = int(port)
        host = urlsplit(base_url).hostname or "127.0.0.1"
        return cls(base_url, grpc, ports, host, lag_max, plan)


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome."""

    name: str
    ok: bool
    detail: str


class _Run:
    def __init__(self, report: Callable[[str], None]) -> None:
        self.results: list[CheckResult] = []
        self._report = report

    async def check(self, name: str, probe: Callable[[], Awaitable[str]]) -> bool:
        try:
            detail = await probe()
            ok = True
        except (SmokeError, httpx.HTTPError, grpc.RpcError, OSError, KeyError, ValueError) as exc:
            detail = f"{type(exc).__name__}: {exc}" if not isinstance(exc, SmokeError) else str(exc)
            ok = False
        except Exception as exc:  # noqa: BLE001 - any failure is this check's, named
            detail, ok = f"{type(exc).__name__}: {exc}", False
        self.results.append(CheckResult(name, ok, detail))
        self._report(f"{'ok  ' if ok else 'FAIL'}  {name:<24} {detail}")
        return ok


def _expect(reply: httpx.Response, status: int = 200) -> httpx.Response:
    if reply.status_code != status:
        raise SmokeError(f"HTTP {reply.status_code}: {reply.text[:200]}")
    return reply


async def _http_get(http: httpx.AsyncClient, url: str) -> str:
    _expect(await http.get(url))
    return "200"


async def run_smoke(
    targets: SmokeTargets, kafka: KafkaSettings, report: Callable[[str], None]
) -> list[str]:
    """Runs every check, reporting each line; returns the names of the failed ones."""
    run = _Run(report)
    async with httpx.AsyncClient(base_url=targets.base_url, timeout=targets.timeout_s) as http:
        for path in ("/health", "/ready"):
            await run.check(f"gateway {path}", functools.partial(_http_get, http, path))
        for service in WORKERS:
            base = f"http://{targets.ops_host}:{targets.ops_ports[service]}"
            for path in ("/health", "/ready"):
                await run.check(
                    f"{service} {path}", functools.partial(_http_get, http, f"{base}{path}")
                )

        token: dict[str, str] = {}

        async def register() -> str:
            name = f"smoke-{uuid.uuid4().hex[:10]}"
            reply = _expect(
                await http.post(
                    "/api/users/register",
                    json={"name": name, "password": f"smoke-{uuid.uuid4().hex}"},
                ),
                201,
            )
            token["access_token"] = reply.json()["access_token"]
            return name

        if not await run.check("http register", register):
            return _failed(run, report)
        auth = {"Authorization": f"Bearer {token['access_token']}"}

        async def plan() -> str:
            body = {"syllabus_text": SMOKE_SYLLABUS, "goal": "smoke check", "days": 2}
            reply = _expect(await http.post("/api/plan/generate", json=body, headers=auth))
            days = len(reply.json()["schedule"])
            return f"{days} days, request {reply.headers.get('X-Request-Id')}"

        if targets.plan:
            await run.check("http planner plan", plan)

        async def http_echo(service: str) -> str:
            text = f"smoke {service}"
            body = {"service": service, "text": text}
            reply = _expect(await http.post("/api/system/echo", json=body, headers=auth))
            if reply.json().get("echo") != text or reply.json().get("service") != service:
                raise SmokeError(f"unexpected answer {reply.json()}")
            return f"request {reply.headers.get('X-Request-Id')}"

        for service in WORKERS:
            await run.check(f"http {service} echo", functools.partial(http_echo, service))

    async with aio.insecure_channel(targets.grpc) as channel:
        stub = gateway_pb2_grpc.StudyGatewayStub(channel)
        metadata = (("authorization", f"Bearer {token['access_token']}"),)

        async def grpc_echo(service: str) -> str:
            text = f"smoke grpc {service}"
            answer = await stub.Echo(
                pb.EchoRequest(service=service, text=text),
                metadata=metadata,
                timeout=targets.timeout_s,
            )
            if answer.echo != text or answer.service != service:
                raise SmokeError(f"unexpected answer {answer}")
            return f"request {answer.request_id}"

        for service in WORKERS:
            await run.check(f"grpc {service} echo", functools.partial(grpc_echo, service))

    async def lag(service: str) -> str:
        behind = await consumer_lag(kafka, service)
        if behind > targets.lag_max:
            raise SmokeError(f"{behind} commands behind (at most {targets.lag_max} allowed)")
        return f"{behind} behind"

    for service in WORKERS:
        await run.check(f"kafka {service} lag", functools.partial(lag, service))
    return _failed(run, report)


def _failed(run: _Run, report: Callable[[str], None]) -> list[str]:
    failed = [r.name for r in run.results if not r.ok]
    if failed:
        report(f"smoke FAILED: {', '.join(failed)}")
    else:
        report(f"smoke passed: {len(run.results)} checks")
    return failed
