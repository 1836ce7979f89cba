"""The deployment files (``deploy/Containerfile``, ``deploy/compose.yaml``, ``deploy/k8s/``)
against the code they deploy. No container engine runs here, so what can be checked is
checked: every file parses; each service runs its console script (``pyproject.toml``); its
ports and probe paths are the ones the code serves and ``deploy/local/stack.sh`` uses; every
environment variable is one a settings class (or the code) reads; KEDA scales each worker on
its own command topic and consumer group; the migration job runs before the services; and
no secret value is written anywhere, only referenced.
"""

from __future__ import annotations

import importlib
import inspect
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from exammentor.contracts.kafka_topics import SERVICES, command_topic
from exammentor.messaging.consumer import CommandConsumer
from exammentor.ops.routes import ops_routes
from exammentor.settings import ServiceSettings, WorkerSettings
from services.gateway.settings import GatewaySettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
ALL = ("gateway", *SERVICES)

HELPER_ENV = {
    "POD_IP": "the pod's address (downward API), for a relay address advertised per pod",
    "APP_DB_PASSWORD": "read by the migration step only, to set exammentor_app's password",
}
"""Environment variables of the deployment itself, not read by the code: each must be used
in its own container (``$(POD_IP)`` in another value, ``$APP_DB_PASSWORD`` in the command)."""

CREDENTIAL_ENV = {"DATABASE_URL", "APP_DATABASE_URL", "APP_DB_PASSWORD", "POSTGRES_PASSWORD"}
"""Secret by content, though not typed ``SecretStr`` (a URL with a password in it)."""


# --- what the code says -------------------------------------------------------------------


def _env_names(cls: type[BaseSettings]) -> set[str]:
    """The environment variables a settings class reads, its nested settings' included."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for name, field in cls.model_fields.items():
        alias = field.validation_alias
        names.add(alias.upper() if isinstance(alias, str) else f"{prefix}{name}".upper())
        nested = field.annotation
        if isinstance(nested, type) and issubclass(nested, BaseSettings):
            names |= _env_names(nested)
    return names


def _secret_env(cls: type[BaseSettings]) -> set[str]:
    prefix = str(cls.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for name, field in cls.model_fields.items():
        if field.annotation is SecretStr:
            names.add(f"{prefix}{name}".upper())
        nested = field.annotation
        if isinstance(nested, type) and issubclass(nested, BaseSettings):
            names |= _secret_env(nested)
    return names


def _settings_class(service: str) -> type[ServiceSettings]:
    if service == "gateway":
        return GatewaySettings
    module = importlib.import_module(f"services.{service}.settings")
    (cls,) = [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, WorkerSettings)
        and value is not WorkerSettings
    ]
    return cls


def _environ_reads() -> set[str]:
    """Variables the code reads directly (``os.environ.get("...")``), outside settings."""
    found: set[str] = set()
    for path in (ROOT / "exammentor").rglob("*.py"):
        found |= set(re.findall(r"os\.environ\.get\(\"([A-Z_]+)\"", path.read_text()))
    return found


SECRET_ENV = CREDENTIAL_ENV | {
    name for service in ALL for name in _secret_env(_settings_class(service))
}


def _allowed_env(service: str) -> set[str]:
    """What a container of ``service`` may set (``migrate``/``llm``: the operators' command)."""
    if service in ALL:
        return _env_names(_settings_class(service)) | _environ_reads()
    return _env_names(ServiceSettings) | _environ_reads()


def _stack_ports() -> dict[str, int]:
    """``SERVICES=(planner:9101 ...)`` of deploy/local/stack.sh: each service's ops port."""
    text = (DEPLOY / "local" / "stack.sh").read_text()
    match = re.search(r"^SERVICES=\(([^)]*)\)", text, re.MULTILINE)
    assert match, "stack.sh no longer lists SERVICES=(name:port ...)"
    pairs = (entry.split(":") for entry in match.group(1).split())
    return {name: int(port) for name, port in pairs}


def _console_scripts() -> dict[str, str]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        scripts: dict[str, str] = tomllib.load(f)["project"]["scripts"]
    return scripts


def _script_of(service: str) -> str:
    script = f"exammentor-{service}"
    assert _console_scripts().get(script) == f"services.{service}.app:main"
    return script


# --- the files -----------------------------------------------------------------------------


def _k8s_docs() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def _k8s(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in _k8s_docs() if d["kind"] == kind}


def _config() -> dict[str, str]:
    config: dict[str, str] = _k8s("ConfigMap")["exammentor-config"]["data"]
    return config


def _container(workload: dict[str, Any]) -> dict[str, Any]:
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    assert isinstance(container, dict)
    return container


def _plain_env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def _compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return doc


def test_stack_script_and_code_agree_on_the_ports() -> None:
    ports = _stack_ports()
    assert set(ports) == set(ALL)
    assert ports["gateway"] == GatewaySettings.model_fields["http_port"].default
    source = inspect.getsource(ops_routes)
    for path in ("/health", "/ready", "/metrics"):
        assert f'Route("{path}"' in source


def test_every_manifest_parses_and_is_known() -> None:
    kinds = {(d["apiVersion"], d["kind"]) for d in _k8s_docs()}
    assert kinds <= {
        ("v1", "ConfigMap"),
        ("v1", "Service"),
        ("apps/v1", "Deployment"),
        ("batch/v1", "Job"),
        ("keda.sh/v1alpha1", "ScaledObject"),
        ("kustomize.config.k8s.io/v1beta1", "Kustomization"),
    }


def test_a_deployment_per_service_running_its_console_script() -> None:
    deployments = _k8s("Deployment")
    assert set(deployments) == {f"exammentor-{s}" for s in ALL}
    for service in ALL:
        container = _container(deployments[f"exammentor-{service}"])
        assert container["command"] == [_script_of(service)]


@pytest.mark.parametrize("service", ALL)
def test_probes_and_ports_match_the_code(service: str) -> None:
    container = _container(_k8s("Deployment")[f"exammentor-{service}"])
    port = _stack_ports()[service]
    env = _plain_env(container)
    declared = {p["containerPort"] for p in container["ports"]}
    assert port in declared
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": port}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": port}
    if service == "gateway":
        assert env["EXAMMENTOR_HTTP_PORT"] == str(port)
        grpc = GatewaySettings.model_fields["grpc_port"].default
        relay = GatewaySettings.model_fields["relay_port"].default
        assert {int(env["EXAMMENTOR_GRPC_PORT"]), relay} | {port} <= declared
        assert env["EXAMMENTOR_GRPC_PORT"] == str(grpc)
        assert env["EXAMMENTOR_HTTP_HOST"] == "0.0.0.0"
    else:
        assert env["EXAMMENTOR_OPS_PORT"] == str(port)
        assert env["EXAMMENTOR_OPS_HOST"] == "0.0.0.0"  # the probes come from the kubelet
        assert env["EXAMMENTOR_SERVICE_NAME"] == service
    relay_port = env.get("EXAMMENTOR_RELAY_PORT")
    if relay_port is not None:
        assert int(relay_port) in declared
        assert env["EXAMMENTOR_RELAY_ADVERTISE"] == f"$(POD_IP):{relay_port}"
    grace = ServiceSettings.model_fields["shutdown_grace_s"].default
    assert _termination_grace(service) > grace


def _termination_grace(service: str) -> int:
    spec = _k8s("Deployment")[f"exammentor-{service}"]["spec"]["template"]["spec"]
    grace: int = spec["terminationGracePeriodSeconds"]
    return grace


def _check_env(service: str, names: set[str], where: str) -> None:
    unknown = names - _allowed_env(service) - set(HELPER_ENV)
    assert not unknown, f"{where}: no code reads {sorted(unknown)}"


@pytest.mark.parametrize("service", ALL)
def test_every_environment_variable_is_one_the_code_reads(service: str) -> None:
    container = _container(_k8s("Deployment")[f"exammentor-{service}"])
    _check_env(service, {e["name"] for e in container["env"]}, f"k8s {service}")
    _check_env(service, set(_config()), f"k8s ConfigMap, as seen by {service}")
    assert [ref["configMapRef"]["name"] for ref in container["envFrom"]] == ["exammentor-config"]
    text = yaml.safe_dump(container)
    if "POD_IP" in {e["name"] for e in container["env"]}:
        assert "$(POD_IP)" in text


def test_the_migration_job_migrates_makes_topics_and_runs_before_the_services() -> None:
    job = _k8s("Job")["exammentor-migrate"]
    container = _container(job)
    script = " ".join(container["command"])
    assert "exammentor migrate up" in script
    assert "exammentor topics create" in script
    assert "$APP_DB_PASSWORD" in script
    _check_env("migrate", {e["name"] for e in container["env"]}, "k8s migrate job")
    # kustomize cannot order a job before deployments: the job is left out of it, and the
    # rollout script applies it, waits for it, and only then the rest.
    kustomization = _k8s_docs_of("kustomization.yaml")[0]
    listed = set(kustomization["resources"])
    assert "migrate-job.yaml" not in listed
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {
        "migrate-job.yaml",
        "kustomization.yaml",
    }
    rollout = (K8S / "rollout.sh").read_text()
    steps = [
        rollout.index("migrate-job.yaml"),
        rollout.index("kubectl wait --for=condition=complete job/exammentor-migrate"),
        rollout.index('kubectl kustomize "$here"'),
    ]
    assert steps == sorted(steps)


def _k8s_docs_of(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


@pytest.mark.parametrize("service", SERVICES)
def test_each_worker_scales_on_its_own_consumer_lag(service: str) -> None:
    scaled = _k8s("ScaledObject")[f"exammentor-{service}"]
    config = _config()
    prefix = config["KAFKA_TOPIC_PREFIX"]
    assert scaled["spec"]["scaleTargetRef"]["name"] == f"exammentor-{service}"
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    meta = trigger["metadata"]
    assert meta["topic"] == command_topic(prefix, service)
    # The group the code subscribes with (CommandConsumer.consumer_name).
    assert 'f"{self._prefix}.{self.service}"' in inspect.getsource(CommandConsumer.__init__)
    assert meta["consumerGroup"] == f"{prefix}.{service}"
    assert meta["bootstrapServers"] == config["KAFKA_BOOTSTRAP_SERVERS"]
    # A replica is one consumer: past one replica per partition they would sit idle.
    assert scaled["spec"]["maxReplicaCount"] <= int(config["KAFKA_PARTITIONS"])
    # The lag KEDA reads includes the commands in hand: a replica must be able to hold the
    # lag that asks for the next one.
    container = _container(_k8s("Deployment")[f"exammentor-{service}"])
    in_flight = int(_plain_env(container)["EXAMMENTOR_MAX_IN_FLIGHT"])
    assert 0 < int(meta["lagThreshold"]) <= in_flight


def test_no_secret_is_written_in_the_manifests() -> None:
    assert "Secret" not in {d["kind"] for d in _k8s_docs()}
    assert not set(_config()) & SECRET_ENV
    for doc in _k8s_docs():
        if doc["kind"] not in {"Deployment", "Job"}:
            continue
        for entry in _container(doc).get("env", []):
            if entry["name"] in SECRET_ENV:
                assert "value" not in entry, entry["name"]
                assert entry["valueFrom"]["secretKeyRef"]["name"] == "exammentor-secrets"
    for path in K8S.glob("*.yaml"):
        assert not re.search(r"://[^/\s:@]+:[^/\s@$]+@", path.read_text()), path.name


def test_every_secret_a_service_requires_is_referenced() -> None:
    for service in ALL:
        container = _container(_k8s("Deployment")[f"exammentor-{service}"])
        referenced = {e["name"] for e in container["env"] if "valueFrom" in e}
        required = {f"EXAMMENTOR_{n.upper()}" for n in _settings_class(service).required_secrets}
        assert required | {"APP_DATABASE_URL"} <= referenced, service


# --- compose -------------------------------------------------------------------------------


def test_compose_runs_the_whole_stack() -> None:
    services = _compose()["services"]
    assert {"kafka", "postgres", "migrate", *ALL} <= set(services)
    kafka = services["kafka"]["environment"]
    assert "controller" in kafka["KAFKA_PROCESS_ROLES"]  # KRaft: no ZooKeeper
    assert not any("zookeeper" in name for name in services)
    assert "exammentor migrate up" in "\n".join(services["migrate"]["command"])
    for service in ALL:
        waits = services[service]["depends_on"]
        assert waits["migrate"] == {"condition": "service_completed_successfully"}


@pytest.mark.parametrize("service", ALL)
def test_compose_services_match_the_code(service: str) -> None:
    spec = _compose()["services"][service]
    port = _stack_ports()[service]
    env = {k: str(v) for k, v in spec["environment"].items()}
    assert spec["command"] == [_script_of(service)]
    assert f"{port}:{port}" in spec["ports"]
    assert f"http://127.0.0.1:{port}/ready" in " ".join(spec["healthcheck"]["test"])
    _check_env(service, set(env), f"compose {service}")
    if service != "gateway":
        assert env["EXAMMENTOR_OPS_PORT"] == str(port)
        assert env["EXAMMENTOR_SERVICE_NAME"] == service


def test_compose_writes_no_secret() -> None:
    interpolated = re.compile(r"^\$\{[A-Z_]+:\?[^}]*\}$")
    for name, spec in _compose()["services"].items():
        env = spec.get("environment") or {}
        if name in ALL:
            _check_env(name, set(env), f"compose {name}")
        elif name in {"migrate", "llm"}:
            _check_env("migrate", set(env), f"compose {name}")
        for key, raw in env.items():
            if key not in SECRET_ENV:
                continue
            value = str(raw)
            if "://" in value:
                # The password of a URL is an interpolation, never a literal.
                creds = re.search(r"://[^:/@]+:([^@]+)@", value)
                assert creds, f"{name}.{key}"
                assert interpolated.match(creds.group(1)), f"{name}.{key}"
            else:
                assert interpolated.match(value), f"{name}.{key} is written, not referenced"


# --- the image ----------------------------------------------------------------------------


def test_one_image_for_every_entry_point() -> None:
    text = (DEPLOY / "Containerfile").read_text()
    for service in ALL:
        assert _script_of(service) in text
    exposed = {int(p) for line in re.findall(r"^EXPOSE (.+)$", text, re.M) for p in line.split()}
    assert set(_stack_ports().values()) | {GatewaySettings.model_fields["grpc_port"].default} <= (
        exposed
    )
    env_block = re.findall(r"\b((?:EXAMMENTOR|KAFKA|OPENAI)_[A-Z_]+)=", text)
    _check_env("migrate", set(env_block), "Containerfile")
    assert "EXAMMENTOR_MIGRATIONS_DIR" in env_block  # a non-editable install has no tree
    assert not re.search(r"(SECRET|TOKEN|PASSWORD|API_KEY)=", text)
