"""Process settings, read from the environment and validated at start-up.

Every process builds one settings object (a subclass of :class:`ServiceSettings`) and passes
the parts it needs down; nothing else reads the environment.
"""

from __future__ import annotations

import ipaddress
import secrets
from typing import ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from exammentor.contracts.kafka_topics import Service

MIN_SECRET_LENGTH = 32
"""Characters a secret must have in production (HS256 wants at least 256 bits of key)."""

_RUN_SECRETS: dict[str, SecretStr] = {}


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run_secret(name: str) -> SecretStr:
    """A random secret made once per process for ``name``: what a local run uses when the
    operator set none. Every settings object of one process gets the same value (so the
    in-process gateway and workers of a test agree); another process gets another, so
    tokens signed with it die with the process.
    """
    if name not in _RUN_SECRETS:
        _RUN_SECRETS[name] = SecretStr(secrets.token_urlsafe(32))
    return _RUN_SECRETS[name]


class KafkaSettings(BaseSettings):
    """Where the broker is and how topics are named."""

    model_config = SettingsConfigDict(env_prefix="KAFKA_", extra="ignore")

    bootstrap_servers: str = "127.0.0.1:9092"
    topic_prefix: str = "exammentor"
    partitions: int = 6
    replication_factor: int = 1
    max_attempts: int = Field(default=3, ge=1, le=20)
    """Attempts at a command before it goes to the dead-letter topic."""
    retry_backoff_s: float = 0.2
    command_deadline_s: float = Field(default=480.0, gt=0, lt=600)
    """Longest one attempt at a command may take, its model calls and their retries
    included; below the consumer's poll interval (600 s), so a hung call cannot get the
    consumer evicted and the command run twice at once."""
    outage_wait_s: float = Field(default=240.0, gt=0)
    """How long one record waits out a database or broker outage before it is handed back
    uncommitted (and retried); well below the consumer's poll interval (600 s)."""
    consumer_workers: int = Field(default=3, ge=1, le=64)
    """Unused since a worker consumes with one key-ordered consumer (``max_in_flight``
    records at once); read so that older configurations still start."""
    rebalance_wait_s: float = Field(default=15.0, ge=0, le=300)
    """How long a worker giving up partitions in a rebalance lets their commands in hand
    finish before cancelling them (handed back uncommitted, for the next owner)."""


class DatabaseSettings(BaseSettings):
    """Two connection strings: the owner's (migrations) and the services' (row-level security)."""

    model_config = SettingsConfigDict(extra="ignore")

    database_url: str = Field(
        default="postgresql://postgres@127.0.0.1:5433/exammentor",
        validation_alias="DATABASE_URL",
    )
    app_database_url: str = Field(
        default="postgresql://exammentor_app@127.0.0.1:5433/exammentor",
        validation_alias="APP_DATABASE_URL",
    )
    pool_min: int = Field(default=1, validation_alias="DB_POOL_MIN")
    pool_max: int = Field(default=10, validation_alias="DB_POOL_MAX")


class LLMSettings(BaseSettings):
    """The OpenAI-compatible endpoint; the embedded llama.cpp server when nothing is set."""

    model_config = SettingsConfigDict(env_prefix="OPENAI_", extra="ignore")

    base_url: str = "http://127.0.0.1:8090/v1"
    api_key: SecretStr = SecretStr("embedded")
    model: str = "smollm2-135m-instruct"
    timeout_s: float = 120.0
    max_retries: int = Field(default=4, ge=0, le=10)
    repair_attempts: int = Field(default=2, ge=0, le=5)
    backoff_base_s: float = 0.5
    backoff_max_s: float = 8.0
    max_concurrency: int | None = Field(default=None, ge=1, le=4096)
    """Model calls one process makes at once (``OPENAI_MAX_CONCURRENCY``), shared by every
    command kind; more wait for a slot, holding no partition and no database connection.
    Unset: the server's own slot count where it tells it (the embedded llama.cpp's
    ``--parallel``), else 64."""
    sampler_extras: Literal["auto", "on", "off"] = "auto"
    """Whether calls send llama.cpp's sampler parameters (``repeat_penalty``, DRY) besides
    OpenAI's: ``auto`` sends them to a server on this host (the embedded llama.cpp, a local
    Ollama or vLLM, which take or ignore them) and not to a remote one, which may refuse
    parameters it does not know (OpenAI does)."""

    @property
    def sends_sampler_extras(self) -> bool:
        """True when calls carry llama.cpp's sampler parameters (see ``sampler_extras``)."""
        if self.sampler_extras != "auto":
            return self.sampler_extras == "on"
        return self.is_on_this_host

    @property
    def is_on_this_host(self) -> bool:
        """True when the endpoint is on this host (the embedded server, a local Ollama)."""
        host = urlsplit(self.base_url).hostname or ""
        return host == "localhost" or _is_loopback(host)


class RetentionSettings(BaseSettings):
    """How long the tables that grow with every request keep their rows
    (``EXAMMENTOR_RETENTION_INBOX_DAYS`` ...); ``exammentor retention run`` applies them."""

    model_config = SettingsConfigDict(env_prefix="EXAMMENTOR_RETENTION_", extra="ignore")

    inbox_days: float = Field(default=30.0, gt=0)
    """Inbox rows: the dedupe of redelivered commands. Keep them longer than the command
    topics keep records (and than a dead letter waits for replay), or a redelivery could be
    applied twice."""
    outbox_sent_days: float = Field(default=7.0, gt=0)
    """Outbox rows already published (unpublished rows are never removed)."""
    request_events_days: float = Field(default=30.0, gt=0)
    """Stored progress of requests (a resumable stream); the request's final result stays."""
    model_usage_days: float = Field(default=90.0, gt=0)
    """Model call records behind ``exammentor usage`` (cost reports)."""
    batch_size: int = Field(default=5_000, ge=1, le=1_000_000)
    """Rows deleted per transaction, so a large backlog never holds long locks."""


class ServiceSettings(BaseSettings):
    """What every ExamMentor process shares."""

    model_config = SettingsConfigDict(env_prefix="EXAMMENTOR_", extra="ignore")

    mode: Literal["local", "production"] = "local"
    service_name: str = "exammentor"
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"
    ops_host: str = "127.0.0.1"
    ops_port: int = 0
    """Port of the /health, /ready and /metrics server (0 picks a free one)."""
    relay_token: SecretStr = Field(default_factory=lambda: run_secret("relay_token"))
    """Shared secret workers send on the internal result relay (``EXAMMENTOR_RELAY_TOKEN``);
    the gateway refuses a push without it. Random per process when unset in local mode;
    required in production."""
    shutdown_grace_s: float = 20.0
    fault_after_commit: bool = False
    """Test-only fault point (``EXAMMENTOR_FAULT_AFTER_COMMIT``): a worker exits right after a
    command's transaction committed and before its offset did, the crash window the inbox
    exists for. Refused in production."""
    startup_wait_s: float = Field(default=60.0, ge=0)
    """How long start-up waits for Kafka and Postgres to answer before giving up."""

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    db: DatabaseSettings = Field(default_factory=DatabaseSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)

    @model_validator(mode="after")
    def _refuse_test_faults_in_production(self) -> ServiceSettings:
        if self.mode == "production" and self.fault_after_commit:
            raise ValueError("EXAMMENTOR_FAULT_AFTER_COMMIT is a test fault point")
        return self

    required_secrets: ClassVar[tuple[str, ...]] = ()
    """Secret fields a running service needs: production refuses to start without them; a
    local run makes random ones (:func:`run_secret`). The operators' command needs none."""

    @model_validator(mode="after")
    def _refuse_missing_secrets(self) -> ServiceSettings:
        for name in self.required_secrets:
            env = f"EXAMMENTOR_{name.upper()}"
            given = name in self.model_fields_set
            value = getattr(self, name).get_secret_value()
            if given and not value.strip():
                raise ValueError(f"{env} is set but empty")
            if self.mode == "production" and not given:
                raise ValueError(f"{env} must be set in production mode")
            if self.mode == "production" and len(value) < MIN_SECRET_LENGTH:
                raise ValueError(f"{env} must have at least {MIN_SECRET_LENGTH} characters")
        return self

    @property
    def generated_secrets(self) -> list[str]:
        """The required secrets this run made up (local mode, none set): tokens signed or
        sent with them work only within this process. Logged at start-up."""
        return [
            f"EXAMMENTOR_{name.upper()}"
            for name in self.required_secrets
            if name not in self.model_fields_set
        ]


class WorkerSettings(ServiceSettings):
    """What every worker service reads; each service subclasses it and names itself there,
    the one place a service's name is stated.
    """

    service_name: Service
    required_secrets: ClassVar[tuple[str, ...]] = ("relay_token",)
    max_in_flight: int = Field(default=256, ge=1, le=10_000)
    """Commands one worker process holds at once (``EXAMMENTOR_MAX_IN_FLIGHT``), across its
    partitions: one session's in order, different sessions side by side. At the limit the
    consumer pauses its partitions."""
