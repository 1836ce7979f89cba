"""Gateway settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from exammentor.settings import ServiceSettings, run_secret
from services.gateway.sweeper import SweepPolicy

WEB_BUILD = Path(__file__).resolve().parents[1] / "web" / "build"
"""Where ``services/web/build.sh`` puts the web app."""


class AttemptLimits(BaseModel):
    """How many register or login attempts one name or one client address may make in a
    window (``EXAMMENTOR_LOGIN_LIMITS='{"per_address": 30}'``). Counted per gateway
    instance, in memory."""

    per_name: int = Field(default=10, ge=1)
    """Attempts at one user name per window (a password guesser aims at one name)."""
    per_address: int = Field(default=30, ge=1)
    """Attempts from one client address per window (one client trying many names)."""
    window_s: float = Field(default=60.0, gt=0)
    """The window: a spent attempt comes back ``window_s / limit`` seconds later."""
    max_tracked: int = Field(default=100_000, ge=100)
    """Names and addresses remembered at most; the least recently seen are forgotten
    first, so a flood of made-up names cannot fill the memory."""


class GatewaySettings(ServiceSettings):
    """Where the gateway listens, and its limits (environment: ``EXAMMENTOR_HTTP_PORT`` ...)."""

    service_name: str = "gateway"
    required_secrets: ClassVar[tuple[str, ...]] = ("jwt_secret", "relay_token")
    jwt_secret: SecretStr = Field(default_factory=lambda: run_secret("jwt_secret"))
    """Key that signs bearer tokens (``EXAMMENTOR_JWT_SECRET``). Random per process when
    unset in local mode (tokens die with the process); required in production."""
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 50051
    relay_host: str = "127.0.0.1"
    """The internal result relay listens on loopback unless told otherwise; workers on other
    hosts need it reachable (and always send ``relay_token``)."""
    relay_port: int = 50052
    relay_advertise: str | None = Field(
        default=None,
        description="host:port workers use to reach this instance's relay "
        "(defaults to relay_host:relay_port)",
    )
    token_ttl_s: int = 12 * 3600
    request_timeout_s: float = 300.0
    """How long a client call waits for a result before it is answered 202 (fetch later)."""
    max_body_bytes: int = 1_000_000
    publish_timeout_s: float = Field(default=10.0, gt=0)
    """How long a command's publish may take; past it the request stays stored, is answered
    202 (``queued``) and is sent again by the sweeper."""
    sweep: SweepPolicy = Field(default_factory=SweepPolicy)
    """When stored commands are sent again and stuck requests expired
    (``EXAMMENTOR_SWEEP='{"republish_after_s": 30, ...}'``)."""
    login_limits: AttemptLimits = Field(default_factory=AttemptLimits)
    """Register and login attempts per name and per client address."""
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Browser origins allowed to call the API, none by default: a JSON list
    (``EXAMMENTOR_CORS_ORIGINS='["https://..."]'``) or origins separated by commas
    (``EXAMMENTOR_CORS_ORIGINS=http://localhost:3000``, what an operator types first)."""
    web_dir: Path | None = WEB_BUILD
    """The student web app's built files, served at ``/app/`` on this origin
    (``EXAMMENTOR_WEB_DIR``; ``make setup`` builds them into ``services/web/build``). Not
    served when the folder is missing or the setting is empty."""

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [o.strip() for o in text.split(",") if o.strip()]
        return value
