"""A bounded schemathesis run over the gateway's whole OpenAPI document: no input, valid or
not, is answered with a 5xx.

A gateway and all four workers of this module's own (their own topic prefix), the workers
on the scripted model server, so the model routes run end to end in seconds. The run is
deterministic (fixed seed) and bounded (examples per operation and a time budget).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from exammentor.settings import LLMSettings
from exammentor.topics import ensure_topics
from services.gateway.app import Gateway
from services.gateway.settings import GatewaySettings
from tests.conftest import SessionEnv
from tests.fakes.scripted_openai import Content, ScriptedOpenAI
from tests.infra import ROOT, unique_name
from tests.integration.conftest import SERVICES, Stack, register, start_worker

pytestmark = pytest.mark.integration

EXAMPLES_PER_OPERATION = 6
TIME_BUDGET_S = 90


def _schemathesis() -> str:
    """The schemathesis command of this interpreter's environment."""
    found = Path(sys.executable).with_name("schemathesis")
    if found.exists():
        return str(found)
    on_path = shutil.which("schemathesis")
    if on_path is None:
        pytest.skip("schemathesis is not installed (a dev dependency)")
    return on_path


@pytest.fixture(scope="module")
async def fuzzed_stack(test_env: SessionEnv) -> AsyncIterator[Stack]:
    env = dataclasses.replace(test_env, topic_prefix=unique_name("st"))
    await ensure_topics(env.kafka())
    model = ScriptedOpenAI(default=Content("A short answer."))
    await model.__aenter__()
    gateway = Gateway(
        env.service_settings(
            GatewaySettings, http_port=0, grpc_port=0, relay_port=0, request_timeout_s=10
        )
    )
    await gateway.start()
    llm = LLMSettings(
        base_url=model.base_url,
        max_retries=0,
        repair_attempts=0,
        timeout_s=5,
        backoff_base_s=0.01,
        backoff_max_s=0.05,
    )
    workers = [await start_worker(env, name, llm) for name in SERVICES]
    yield Stack(gateway, workers)
    for worker in workers:
        await worker.stop()
    await gateway.stop()
    await model.__aexit__(None, None, None)


async def test_no_input_in_the_openapi_document_gets_a_5xx(
    fuzzed_stack: Stack, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=fuzzed_stack.base_url, timeout=60) as http:
        _, auth = await register(http)
    proc = await asyncio.create_subprocess_exec(
        _schemathesis(),
        "run",
        f"{fuzzed_stack.base_url}/openapi.json",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        str(EXAMPLES_PER_OPERATION),
        "--max-time",
        str(TIME_BUDGET_S),
        "--seed",
        "7",
        "--no-shrink",
        # One worker: the coverage phase's generators are not thread-safe on Python 3.11
        # (hypothesis parses lambdas with ast, which fails when threads do it at once).
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--header",
        f"Authorization: {auth['Authorization']}",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path),
        "--warnings",
        "off",
        env={**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_TELEMETRY": "false"},
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), TIME_BUDGET_S + 60)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-12000:]
    # Every operation of the document was exercised, and the run says so.
    selected = re.search(r"Selected: (\d+)/(\d+)", text)
    tested = re.search(r"Tested: (\d+)", text)
    assert selected is not None, text[-4000:]
    assert tested is not None, text[-4000:]
    assert int(tested.group(1)) == int(selected.group(2)) > 30
    assert "No issues found" in text
