"""``exammentor smoke`` against the in-process stack: every check passes on a healthy stack,
and a broken part fails the command with its check named."""

from __future__ import annotations

import asyncio
import os
import socket
import sys

import pytest

from exammentor.ops.smoke import WORKERS, SmokeTargets, run_smoke
from tests.conftest import SessionEnv
from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration


def _targets(stack: Stack, **overrides: object) -> SmokeTargets:
    ports = {w.settings.service_name: w.ops.port for w in stack.workers}
    values: dict[str, object] = {
        "base_url": stack.base_url,
        "grpc": f"127.0.0.1:{stack.gateway.grpc_port}",
        "ops_ports": ports,
        "timeout_s": 240.0,
        **overrides,
    }
    return SmokeTargets(**values)  # type: ignore[arg-type]


def _closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.mark.llm
async def test_every_check_passes_on_the_running_stack(stack: Stack, test_env: SessionEnv) -> None:
    lines: list[str] = []
    failed = await run_smoke(_targets(stack), test_env.kafka(), lines.append)
    assert failed == [], "\n".join(lines)
    names = [line.split()[1:3] for line in lines if line.startswith("ok")]
    for service in WORKERS:
        assert [service, "/ready"] in names
        assert ["http", service] in names
        assert ["grpc", service] in names
        assert ["kafka", service] in names
    assert ["http", "planner"] in names
    assert lines[-1] == f"smoke passed: {len(lines) - 1} checks"


async def test_a_wrong_port_fails_the_command_with_the_check_named(
    stack: Stack, test_env: SessionEnv
) -> None:
    ports = [f"{w.settings.service_name}={w.ops.port}" for w in stack.workers]
    ports = [p for p in ports if not p.startswith("quiz=")] + [f"quiz={_closed_port()}"]
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": test_env.servers.kafka_bootstrap,
        "KAFKA_TOPIC_PREFIX": test_env.topic_prefix,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "exammentor.ops.cli",
        "smoke",
        "--no-plan",
        "--base-url",
        stack.base_url,
        "--grpc",
        f"127.0.0.1:{stack.gateway.grpc_port}",
        *[arg for port in ports for arg in ("--ops-port", port)],
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    text = out.decode()
    assert proc.returncode == 1, text
    assert text.strip().splitlines()[-1] == "smoke FAILED: quiz /health, quiz /ready", text
    # Everything else was still checked, and passed: the commands went through.
    assert "ok    grpc quiz echo" in text
    assert "ok    kafka planner lag" in text


async def test_lag_over_the_limit_is_a_failed_check(stack: Stack, test_env: SessionEnv) -> None:
    lines: list[str] = []
    failed = await run_smoke(
        _targets(stack, plan=False, lag_max=-1), test_env.kafka(), lines.append
    )
    assert failed == [f"kafka {s} lag" for s in WORKERS], "\n".join(lines)
    assert "commands behind (at most -1 allowed)" in lines[-2]
