"""``deploy/local/stack.sh release`` and ``restart``: the real script, run as a subprocess
against this session's Kafka and Postgres, with every port it hands out moved by a free
offset (``EXAMMENTOR_PORT_OFFSET``) and its state in the test's own folder, so a developer's
stack on the usual ports is never touched.

The stack starts as a host running the previous release has it: the previous release's code
(the commit before the head migration was added, exported from git), on a database of the
schema version before the head holding every earlier version's representative rows. The
release must back it up at that version, migrate it to the head, restart every instance on
this code (workers first, the gateway last) and pass the smoke test; a user made before the
release logs in after it and reads their request. A hotfix (``restart planner``, two replicas)
keeps one planner ready at every moment and loses none of the commands sent meanwhile.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest

from exammentor.messaging.topic_admin import ensure_topics
from exammentor.ops.backup import read_manifest
from exammentor.ops.migrate import downgrade
from exammentor.settings import KafkaSettings
from tests.conftest import SessionEnv
from tests.fakes.scripted_openai import ScriptedOpenAI
from tests.infra import ROOT, unique_name
from tests.upgrade.database import (
    app_dsn,
    fill_to,
    head_version,
    migrations,
    scratch_database,
)

pytestmark = pytest.mark.integration

STACK = Path("deploy") / "local" / "stack.sh"
"""The script, relative to the code's root (this checkout's or the previous release's)."""
PLANNERS = 2
"""Replicas of the planner, so the hotfix can show one of them ready at every moment."""
GATEWAY_GRPC_PORT, GATEWAY_RELAY_PORT = 50051, 50052
SCRIPT_TIMEOUT_S = 120.0


def _stack_ports() -> dict[str, int]:
    """``SERVICES=(planner:9101 ...)`` of the script: each service's base port."""
    match = re.search(r"^SERVICES=\(([^)]*)\)", (ROOT / STACK).read_text(), re.MULTILINE)
    assert match, "stack.sh no longer lists SERVICES=(name:port ...)"
    return {name: int(port) for name, port in (e.split(":") for e in match.group(1).split())}


BASE_PORTS = _stack_ports()
INSTANCES = {
    "planner": BASE_PORTS["planner"],
    **{f"planner-{i}": BASE_PORTS["planner"] + 100 * (i - 1) for i in range(2, PLANNERS + 1)},
    **{name: port for name, port in BASE_PORTS.items() if name != "planner"},
}
"""Every process the stack runs, with its base port (ops port; the gateway's HTTP port)."""
RESTART_ORDER = [*(name for name in INSTANCES if name != "gateway"), "gateway"]
"""The order the script restarts them in: the workers, replicas in turn, then the gateway."""


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_offset() -> int:
    """An offset under which every port the stack will use is free now."""
    wanted = [*INSTANCES.values(), GATEWAY_GRPC_PORT, GATEWAY_RELAY_PORT]
    for _ in range(200):
        offset = random.randrange(1_000, 65_535 - GATEWAY_RELAY_PORT)
        if all(_port_free(port + offset) for port in wanted):
            return offset
    raise RuntimeError("no port offset with every port free")


@dataclass(frozen=True)
class ScriptResult:
    """One run of the script: its exit status and what it printed (stdout and stderr)."""

    status: int
    output: str

    def position(self, text: str) -> int:
        """Where ``text`` first appears (so steps can be checked to come in order)."""
        at = self.output.find(text)
        assert at >= 0, f"{text!r} not in the script's output:\n{self.output}"
        return at


@dataclass(frozen=True)
class LocalStack:
    """The script's stack for this module: its environment, state folder and ports."""

    env: dict[str, str]
    run_dir: Path
    offset: int
    owner_dsn: str
    root: Path = ROOT
    """Whose ``stack.sh`` runs: this checkout's, or the previous release's code."""

    @property
    def base_url(self) -> str:
        """The gateway's HTTP address."""
        return f"http://127.0.0.1:{BASE_PORTS['gateway'] + self.offset}"

    def ready_url(self, instance: str) -> str:
        """An instance's readiness probe."""
        return f"http://127.0.0.1:{INSTANCES[instance] + self.offset}/ready"

    async def run(self, *args: str) -> ScriptResult:
        """Runs ``stack.sh ARGS`` to its end."""
        proc = await self.start(*args)
        out, _ = await asyncio.wait_for(proc.communicate(), SCRIPT_TIMEOUT_S)
        assert proc.returncode is not None
        return ScriptResult(proc.returncode, out.decode())

    async def start(self, *args: str) -> asyncio.subprocess.Process:
        """Starts ``stack.sh ARGS`` (output on one pipe)."""
        return await asyncio.create_subprocess_exec(
            "bash",
            str(self.root / STACK),
            *args,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )

    def pids(self) -> dict[str, int]:
        """Each instance's pid, from the script's pid files."""
        return {
            path.stem: int(path.read_text().strip())
            for path in (self.run_dir / "pids").glob("*.pid")
        }


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    return state != "Z"


async def _schema_version(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        version: int = await conn.fetchval("SELECT max(version) FROM schema_migrations")
    finally:
        await conn.close()
    return version


@pytest.fixture(scope="module")
def old_version() -> int:
    """The schema the previous release left: one before the head."""
    head = head_version()
    assert head >= 2, "a release test needs a migration to apply"
    return head - 1


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture(scope="module")
def previous_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The previous release's code: the commit before the one that added the head
    migration, exported from this checkout's history, with its gRPC code generated and this
    checkout's web build (the web app's files are not code the release test looks at)."""
    head = migrations()[-1]
    added = _git("log", "--diff-filter=A", "--format=%H", "--", f"migrations/{head.filename}")
    assert added, f"no commit in this checkout's history adds migrations/{head.filename}"
    tree = tmp_path_factory.mktemp("previous-release")
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", f"{added.split()[-1]}^"],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    subprocess.run(
        ["bash", str(tree / "scripts" / "gen_proto.sh")],
        env={**os.environ, "PYTHON": sys.executable},
        check=True,
        capture_output=True,
    )
    web = ROOT / "services" / "web" / "build"
    if web.is_dir():
        shutil.copytree(web, tree / "services" / "web" / "build", dirs_exist_ok=True)
    return tree


def _cwd(pid: int) -> Path:
    return Path(os.readlink(f"/proc/{pid}/cwd"))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The script's state folder (pid files, logs, secrets, backups)."""
    return tmp_path_factory.mktemp("release-run")


@pytest.fixture(scope="module")
def model() -> Iterator[ScriptedOpenAI]:
    """The model endpoint the workers are given (the release's smoke test skips the plan)."""
    with ScriptedOpenAI() as fake:
        yield fake


@pytest.fixture(scope="module")
async def local_stack(
    test_env: SessionEnv,
    old_version: int,
    run_dir: Path,
    model: ScriptedOpenAI,
    previous_release: Path,
) -> AsyncIterator[LocalStack]:
    """The previous release's stack, running: a database at ``old_version`` with every
    version's data, the topics, and every instance of the previous release's code started
    by its ``stack.sh restart``; the tests run this checkout's script on it. Stopped by
    ``stack.sh down`` (with external servers it stops only the services)."""
    async with scratch_database(test_env.servers.admin_dsn, "exammentor_rel_") as owner_dsn:
        # The version-1 data holds an unsent event for the topic exammentor.events.quiz, a
        # name this code never creates: the outbox relay holds it, and sends the rest.
        await fill_to(owner_dsn, old_version)
        kafka = KafkaSettings(
            bootstrap_servers=test_env.servers.kafka_bootstrap,
            topic_prefix=unique_name("rel"),
            partitions=3,
        )
        await ensure_topics(kafka)
        offset = _free_offset()
        stack = LocalStack(
            env={
                **os.environ,
                "PYTHON": sys.executable,
                "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
                "KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
                "KAFKA_PARTITIONS": str(kafka.partitions),
                "DATABASE_URL": owner_dsn,
                "APP_DATABASE_URL": app_dsn(owner_dsn),
                "OPENAI_BASE_URL": model.base_url,
                "EXAMMENTOR_RUN_DIR": str(run_dir),
                "EXAMMENTOR_PORT_OFFSET": str(offset),
                "EXAMMENTOR_JWT_SECRET": f"jwt-{uuid.uuid4().hex}{uuid.uuid4().hex}",
                "EXAMMENTOR_RELAY_TOKEN": f"relay-{uuid.uuid4().hex}{uuid.uuid4().hex}",
                "REPLICAS_PLANNER": str(PLANNERS),
            },
            run_dir=run_dir,
            offset=offset,
            owner_dsn=owner_dsn,
            root=previous_release,
        )
        try:
            started = await stack.run("restart")
            assert started.status == 0, started.output
            for instance in INSTANCES:
                assert f"{instance} is not running: starting it" in started.output
            stack = dataclasses.replace(stack, root=ROOT)
            yield stack
        finally:
            stopped = await stack.run("down")
            assert stopped.status == 0, stopped.output
            left = [pid for pid in stack.pids().values() if _alive(pid)]
            assert not left, f"still running after down: {left}"


async def _register(http: httpx.AsyncClient, password: str) -> tuple[str, dict[str, str]]:
    name = f"release-{uuid.uuid4().hex[:8]}"
    reply = await http.post("/api/users/register", json={"name": name, "password": password})
    assert reply.status_code == 201, reply.text
    return name, {"Authorization": f"Bearer {reply.json()['access_token']}"}


async def _echo_done(
    http: httpx.AsyncClient, auth: dict[str, str], text: str, timeout_s: float = 60
) -> str:
    """Sends ``system.echo`` to the planner; returns its request id once it ended done
    (fetching the stored request when the gateway answered 202, still pending)."""
    reply = await http.post(
        "/api/system/echo", json={"service": "planner", "text": text}, headers=auth
    )
    assert reply.status_code in (200, 202), reply.text
    request_id = reply.headers["X-Request-Id"]
    if reply.status_code == 200:
        assert reply.json()["echo"] == text
        return request_id
    deadline = time.monotonic() + timeout_s
    while True:
        stored = (await http.get(f"/api/requests/{request_id}", headers=auth)).json()
        if stored["status"] != "pending":
            assert stored["status"] == "done", stored
            assert stored["result"]["echo"] == text
            return request_id
        assert time.monotonic() < deadline, f"request {request_id} still pending"
        await asyncio.sleep(0.2)


async def test_release_backs_up_migrates_restarts_every_instance_and_passes_smoke(
    local_stack: LocalStack, old_version: int, previous_release: Path
) -> None:
    async with httpx.AsyncClient(base_url=local_stack.base_url, timeout=60) as http:
        name, auth = await _register(http, "before-the-release")
        request_id = await _echo_done(http, auth, "made before the release")
    before = local_stack.pids()
    assert sorted(before) == sorted(INSTANCES)
    assert {_cwd(pid) for pid in before.values()} == {previous_release.resolve()}

    release = await local_stack.run("release", "--no-plan")

    assert release.status == 0, release.output
    # Backup, migrations, the rolling restart (workers first, the gateway last), smoke.
    steps = [
        release.position("wrote "),
        release.position(f"applied: {head_version()}"),
        *(release.position(f"restarting {instance} (pid") for instance in RESTART_ORDER),
        release.position("smoke passed"),
    ]
    assert steps == sorted(steps), release.output
    (archive,) = (local_stack.run_dir / "backups").glob("pre-release-*.tar")
    assert read_manifest(archive).schema_version == old_version
    assert await _schema_version(local_stack.owner_dsn) == head_version()
    after = local_stack.pids()
    assert sorted(after) == sorted(INSTANCES)
    for instance, pid in after.items():
        assert pid != before[instance], f"{instance} was not restarted"
        assert _alive(pid), f"{instance} (pid {pid}) is not running"
        assert _cwd(pid) == ROOT.resolve(), f"{instance} does not run this checkout's code"
    for service in ("planner", "tutor", "quiz", "autopilot"):
        assert f"ok    http {service} echo" in release.output
        assert f"ok    grpc {service} echo" in release.output
        assert f"ok    kafka {service} lag" in release.output
    async with httpx.AsyncClient(base_url=local_stack.base_url, timeout=60) as http:
        for instance in INSTANCES:
            assert (await http.get(local_stack.ready_url(instance))).status_code == 200
        login = await http.post(
            "/api/users/login", json={"name": name, "password": "before-the-release"}
        )
        assert login.status_code == 200, login.text
        token = {"Authorization": f"Bearer {login.json()['access_token']}"}
        stored = await http.get(f"/api/requests/{request_id}", headers=token)
        assert stored.status_code == 200, stored.text
        assert stored.json()["result"]["echo"] == "made before the release"


async def test_restart_of_one_service_keeps_a_replica_ready_and_loses_no_command(
    local_stack: LocalStack,
) -> None:
    before = local_stack.pids()
    samples: list[tuple[bool, bool]] = []
    sent: list[asyncio.Task[str]] = []
    async with httpx.AsyncClient(base_url=local_stack.base_url, timeout=120) as http:
        _, auth = await _register(http, "during-the-hotfix")
        restart = await local_stack.start("restart", "planner")
        finished = asyncio.create_task(restart.communicate())
        while not finished.done():
            # Four commands in flight at a time while the planners stop and start.
            sent += [
                asyncio.create_task(_echo_done(http, auth, f"in flight {len(sent) + i}"))
                for i in range(4)
            ]
            replies = await asyncio.gather(
                *(http.get(local_stack.ready_url(p)) for p in ("planner", "planner-2")),
                return_exceptions=True,
            )
            first, second = (
                isinstance(r, httpx.Response) and r.status_code == 200 for r in replies
            )
            samples.append((first, second))
            await asyncio.wait({finished}, timeout=0.1)
        out, _ = await finished
        assert restart.returncode == 0, out.decode()
        done = await asyncio.wait_for(asyncio.gather(*sent), 90)

    assert len(set(done)) == len(sent) >= 20, "every command sent ended done"
    assert all(first or second for first, second in samples), samples
    assert any(not first for first, _ in samples), "planner was never seen restarting"
    assert any(not second for _, second in samples), "planner-2 was never seen restarting"
    after = local_stack.pids()
    for instance in INSTANCES:
        changed = after[instance] != before[instance]
        assert changed == instance.startswith("planner"), f"{instance}: pid changed {changed}"


async def test_restart_refuses_an_unknown_service_before_anything_stops(
    local_stack: LocalStack,
) -> None:
    before = local_stack.pids()
    refused = await local_stack.run("restart", "planner", "plannr")
    assert refused.status == 1, refused.output
    assert "unknown service 'plannr'" in refused.output
    assert "restarting" not in refused.output
    assert local_stack.pids() == before


async def test_a_failed_release_names_the_failed_checks_and_how_to_roll_back(
    local_stack: LocalStack, old_version: int
) -> None:
    # The schema back at the previous release's version, so this release moves it again.
    await downgrade(local_stack.owner_dsn, target=old_version)
    released = (local_stack.run_dir / "released.commit").read_text().strip()

    # A lag limit no consumer group meets: every lag check fails, after everything else.
    failed = await local_stack.run("release", "--no-plan", "--max-lag", "-1")

    assert failed.status == 1, failed.output
    lags = ", ".join(f"kafka {s} lag" for s in ("planner", "tutor", "quiz", "autopilot"))
    assert f"smoke FAILED: {lags}" in failed.output
    assert "release FAILED at: smoke" in failed.output
    backups = sorted((local_stack.run_dir / "backups").glob("pre-release-*.tar"))
    assert read_manifest(backups[-1]).schema_version == old_version
    rollback = failed.output[failed.position("to roll back") :]
    assert f"schema moved from version {old_version} to {head_version()}" in rollback
    assert f"exammentor migrate down --to {old_version}" in rollback
    assert f"exammentor backup restore {backups[-1]} --database-url" in rollback
    assert f"git checkout {released}" in rollback
    assert "make release" in rollback
    # Only a successful release is the one to come back to.
    assert (local_stack.run_dir / "released.commit").read_text().strip() == released
