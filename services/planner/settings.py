"""Planner service settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from exammentor.settings import ServiceSettings


class PlannerSettings(ServiceSettings):
    """What the planner reads from the environment (``EXAMMENTOR_*``)."""

    service_name: str = "planner"
    plan_cache_ttl_s: int = Field(default=24 * 3600, ge=0)
    """How long a verified plan answers identical requests from the cache (0: no cache)."""
    max_fix_rounds: int = Field(default=2, ge=0, le=10)
    """Rounds of model-proposed changes checked by the verifier before giving up."""
    extra_syllabi_dir: Path | None = None
    """A folder of operator-supplied registry files (``*.toml``) loaded beside the built-in."""
    llm_enabled: bool = True
    """Off: no model call at all; routing from the request's words, the scheduler's own text."""
    prose_max_days: int = Field(default=7, ge=0, le=366)
    """Days whose theme the model writes (the first learning days); the rest keep the
    scheduler's theme, so a year-long plan costs no more tokens than a week-long one."""
    prose_max_topics: int = Field(default=6, ge=0, le=100)
    """Topics whose rationale the model writes (critical ones first)."""


def planner_settings(settings: ServiceSettings) -> PlannerSettings:
    """The planner's settings from whatever settings a worker was started with.

    A worker started by tests or tools with plain :class:`ServiceSettings` keeps its Kafka,
    database and LLM settings; the planner's own fields come from the environment.

    Args:
        settings: The worker's settings.

    Returns:
        ``settings`` itself when it is already a :class:`PlannerSettings`.
    """
    if isinstance(settings, PlannerSettings):
        return settings
    shared = {name: getattr(settings, name) for name in ServiceSettings.model_fields}
    return PlannerSettings(**shared)
