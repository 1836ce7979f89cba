"""Process settings, read from the environment and validated at start-up.

Every process builds one settings object (a subclass of :class:`ServiceSettings`) and passes
the parts it needs down; nothing else reads the environment.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from exammentor.contracts.topics import Service

DEV_JWT_SECRET = "exammentor-local-development-secret-change-me"  # noqa: S105 - refused outside local


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
    consumer_workers: int = Field(default=3, ge=1, le=64)
    """Consumers per service process, each owning some partitions and handling them in
    order; more replicas add more (up to the partition count)."""


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
    jwt_secret: SecretStr = SecretStr(DEV_JWT_SECRET)
    shutdown_grace_s: float = 20.0
    startup_wait_s: float = Field(default=60.0, ge=0)
    """How long start-up waits for Kafka and Postgres to answer before giving up."""

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    db: DatabaseSettings = Field(default_factory=DatabaseSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)

    @model_validator(mode="after")
    def _refuse_default_secrets(self) -> ServiceSettings:
        if self.mode != "local" and self.jwt_secret.get_secret_value() == DEV_JWT_SECRET:
            raise ValueError("EXAMMENTOR_JWT_SECRET must be set outside local mode")
        return self


class WorkerSettings(ServiceSettings):
    """What every worker service reads; each service subclasses it and names itself there,
    the one place a service's name is stated.
    """

    service_name: Service
