"""Gateway settings."""

from __future__ import annotations

from pydantic import Field

from exammentor.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    """Where the gateway listens, and its limits (environment: ``EXAMMENTOR_HTTP_PORT`` ...)."""

    service_name: str = "gateway"
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 50051
    relay_host: str = "127.0.0.1"
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
    cors_origins: list[str] = Field(default_factory=list)
    """Browser origins allowed to call the API (``EXAMMENTOR_CORS_ORIGINS='["https://..."]'``);
    none by default."""
