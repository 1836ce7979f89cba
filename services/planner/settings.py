"""Planner service settings."""

from __future__ import annotations

from pathlib import Path

from exammentor.settings import ServiceSettings


class PlannerSettings(ServiceSettings):
    """What the planner reads from the environment (``EXAMMENTOR_*``)."""

    service_name: str = "planner"
    plan_cache_ttl_s: int = 24 * 3600
    """How long a verified plan answers identical requests from the cache."""
    max_fix_rounds: int = 2
    """Rounds of model-proposed changes checked by the verifier before giving up."""
    extra_syllabi_dir: Path | None = None
    """A folder of operator-supplied registry files (``*.toml``) loaded beside the built-in."""
