"""The contracts distribution in a fresh environment: an integrator's install.

The wheel is built by ``scripts/build_contracts.sh`` and installed, with the pydantic and
protobuf of ``constraints.txt`` from the package index, into a new virtual environment
without system site packages, beside ``aiokafka`` (the integrator's own Kafka client, which
the example consumer uses). There the services' dependencies must be missing, and the
example consumer, run by that environment's python, decodes events that the kit made and
serialised here exactly as they go onto Kafka.

No broker or database is needed; the package index is (about 20 s for the first install).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import pytest
from faststream.kafka import TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage

import exammentor
from exammentor._proto import gateway_pb2
from exammentor.contracts.envelope import CommandEnvelope, EventEnvelope
from exammentor.contracts.events import DomainEvent, PlanGeneratedV1, SystemEchoedV1
from exammentor.contracts.kafka_topics import event_topic
from exammentor.messaging.consumer import CommandContext
from exammentor.messaging.kafka import create_broker
from exammentor.settings import KafkaSettings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "consume_events.py"
SERVICES_ONLY = ("exammentor.worker", "faststream", "asyncpg")
"""Modules an integrator's environment must not get from the contracts."""

# Run by the fresh environment's python, with -I: neither the current directory nor
# PYTHONPATH can lend it the repository's packages.
_DECODE = """
import base64, importlib.util, json, sys
from pydantic import ValidationError
spec = importlib.util.spec_from_file_location("consume_events", sys.argv[1])
example = importlib.util.module_from_spec(spec)
spec.loader.exec_module(example)
for line in sys.stdin:
    try:
        decoded = example.decode_event(base64.b64decode(line))
    except ValidationError as exc:
        print(json.dumps({"error": type(exc).__name__}))
        continue
    if decoded is None:
        print(json.dumps(None))
        continue
    envelope, payload = decoded
    print(json.dumps({
        "envelope_class": f"{type(envelope).__module__}.{type(envelope).__qualname__}",
        "payload_class": f"{type(payload).__module__}.{type(payload).__qualname__}",
        "envelope": envelope.model_dump(mode="json"),
        "payload": payload.model_dump(mode="json"),
        "from": sys.modules[type(payload).__module__].__file__,
    }))
"""

_MISSING = """
import importlib, json, sys
found = {}
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:
        found[name] = exc.name
    else:
        found[name] = None
print(json.dumps(found))
"""

_IMPORT_ALL = """
import hashlib, importlib, json, pkgutil, sys
import exammentor
names = [m.name for m in pkgutil.walk_packages(exammentor.__path__, "exammentor.")]
failed = {}
for name in names:
    try:
        importlib.import_module(name)
    except ImportError as exc:
        failed[name] = getattr(exc, "name", None)
gateway = importlib.import_module("exammentor._proto.gateway_pb2")
print(json.dumps({
    "modules": names,
    "failed": failed,
    "descriptor": hashlib.sha256(gateway.DESCRIPTOR.serialized_pb).hexdigest(),
    "site": exammentor.__file__,
    "version": exammentor.__version__,
}))
"""


def _run(python: Path, script: str, *args: str, stdin: str = "") -> Any:
    """Runs ``script`` isolated (-I) in ``python``'s environment; returns its JSON output."""
    done = subprocess.run(
        [str(python), "-I", "-c", script, *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        cwd=python.parent,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def decode_in(python: Path, values: Sequence[bytes]) -> list[dict[str, Any] | None]:
    """Decodes Kafka record values with the example consumer, in ``python``'s environment.

    Args:
        python: The interpreter of the environment to decode in.
        values: Record values as Kafka carries them.

    Returns:
        One item per value: ``None`` for an event the contracts do not know,
        ``{"error": ...}`` for a malformed one, else the decoded envelope and payload with
        their classes and the file the payload's model was loaded from.
    """
    lines = "".join(base64.b64encode(value).decode() + "\n" for value in values)
    return cast(list[dict[str, Any] | None], _run(python, _DECODE, str(EXAMPLE), stdin=lines))


@pytest.fixture(scope="session")
def contracts_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built once per session by the build script."""
    out = tmp_path_factory.mktemp("contracts-dist")
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "build_contracts.sh"), str(out)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHON": sys.executable},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip())


@pytest.fixture(scope="session")
def contracts_python(contracts_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a fresh environment holding the contracts (and aiokafka), once a session."""
    home = tmp_path_factory.mktemp("contracts-venv")
    # A venv's python makes venvs on its base interpreter; no system site packages by default.
    subprocess.run([sys.executable, "-m", "venv", str(home)], check=True, timeout=120)
    python = home / "bin" / "python"
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-input",
            "--constraint",
            str(ROOT / "constraints.txt"),
            str(contracts_wheel),
            "aiokafka",
        ],
        check=True,
        timeout=300,
    )
    return python


async def kafka_values(events: Sequence[EventEnvelope], prefix: str = "contracts") -> list[bytes]:
    """The record values the kit's broker produces for ``events``, as the outbox relay
    publishes them (the envelope's JSON form, to its domain's topic, keyed by user).
    """
    broker = create_broker(KafkaSettings(), "contracts-test", graceful_timeout=1.0)
    values: list[bytes] = []
    for domain in {event.domain for event in events}:

        @broker.subscriber(event_topic(prefix, domain))
        async def keep(message: KafkaMessage) -> None:
            values.append(message.body)

    async with TestKafkaBroker(broker) as test_broker:
        for event in events:
            await test_broker.publish(
                event.model_dump(mode="json"), event_topic(prefix, event.domain), key=event.key
            )
    assert len(values) == len(events)
    return values


def _command_events(payloads: Sequence[DomainEvent]) -> list[EventEnvelope]:
    """The events a handler would emit for ``payloads``, made by the kit's command context."""
    command = CommandEnvelope(
        type="system.echo", request_id=uuid.uuid4(), user_id=uuid.uuid4(), session_id=uuid.uuid4()
    )
    context = CommandContext(command, cast(Any, None), cast(Any, None), "planner")
    return [context.event(payload) for payload in payloads]


def test_the_wheel_holds_the_contracts_and_the_gateway_stubs_only(contracts_wheel: Path) -> None:
    assert contracts_wheel.name == f"exammentor_contracts-{exammentor.__version__}-py3-none-any.whl"
    with zipfile.ZipFile(contracts_wheel) as wheel:
        names = set(wheel.namelist())
        metadata = wheel.read(
            f"exammentor_contracts-{exammentor.__version__}.dist-info/METADATA"
        ).decode()
    sources = {
        str(path.relative_to(ROOT))
        for path in (ROOT / "exammentor" / "contracts").rglob("*.py")
        if "__pycache__" not in path.parts
    }
    assert sources <= names
    modules = {name for name in names if name.endswith(".py")}
    assert modules - sources == {
        "exammentor/__init__.py",
        "exammentor/_proto/__init__.py",
        "exammentor/_proto/gateway_pb2.py",
        "exammentor/_proto/gateway_pb2_grpc.py",
    }
    assert {"exammentor/py.typed", "exammentor/_proto/gateway_pb2.pyi"} <= names
    required = [
        line.split(":", 1)[1].strip()
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:") and "extra ==" not in line
    ]
    assert sorted(r.split("<")[0].split(">")[0] for r in required) == ["protobuf", "pydantic"]


def test_the_fresh_environment_has_none_of_the_services_dependencies(
    contracts_python: Path,
) -> None:
    (missing,) = _run(contracts_python, _MISSING, *SERVICES_ONLY, "exammentor.contracts.events")
    assert missing == {
        "exammentor.worker": "exammentor.worker",
        "faststream": "faststream",
        "asyncpg": "asyncpg",
        "exammentor.contracts.events": None,
    }


def test_every_module_of_the_wheel_loads_there_from_the_same_source(
    contracts_python: Path,
) -> None:
    (found,) = _run(contracts_python, _IMPORT_ALL)
    assert Path(found["site"]).is_relative_to(contracts_python.parent.parent)
    assert found["version"] == exammentor.__version__
    assert "exammentor.contracts.events" in found["modules"]
    # The client stubs are the one module that wants more: the [grpc] extra.
    assert found["failed"] == {"exammentor._proto.gateway_pb2_grpc": "grpc"}
    assert found["descriptor"] == hashlib.sha256(gateway_pb2.DESCRIPTOR.serialized_pb).hexdigest()


async def test_the_example_decodes_the_kits_events_with_the_contracts_alone(
    contracts_python: Path,
) -> None:
    echoed = SystemEchoedV1(text="bonjour, élève 👋", service="planner")
    planned = PlanGeneratedV1(
        plan_id=uuid.uuid4(),
        exam_name="Física NEET",
        total_days=5,
        start_date=dt.date(2026, 3, 2),
        topics_count=12,
        dropped_topics_count=1,
        critical_topics=["Kinematics", "Laws of Motion"],
        from_cache=False,
    )
    events = _command_events([echoed, planned])
    unknown = events[0].model_copy(update={"version": 99, "event_id": uuid.uuid4()})
    values = await kafka_values([*events, unknown])
    broken = values[1].replace(b'"total_days":5', b'"total_days":-1')
    assert broken != values[1]

    decoded = decode_in(contracts_python, [*values, broken, b"not json"])

    assert decoded[2:] == [None, {"error": "ValidationError"}, {"error": "ValidationError"}]
    for event, payload, result in zip(events, (echoed, planned), decoded, strict=False):
        assert result is not None
        cls = type(payload)
        assert result["payload_class"] == f"{cls.__module__}.{cls.__qualname__}"
        assert result["envelope_class"] == "exammentor.contracts.envelope.EventEnvelope"
        assert result["payload"] == payload.model_dump(mode="json")
        assert result["envelope"] == event.model_dump(mode="json")
        assert Path(result["from"]).is_relative_to(contracts_python.parent.parent)
