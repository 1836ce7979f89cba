"""Planner service settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from exammentor.contracts.kafka_topics import Service
from exammentor.settings import WorkerSettings


class PlannerSettings(WorkerSettings):
    """What the planner reads from the environment (``EXAMMENTOR_*``)."""

    service_name: Service = "planner"
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
