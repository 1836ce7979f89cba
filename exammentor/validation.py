"""Turning pydantic validation errors into reasons a client can act on."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError


def field_name(loc: Sequence[int | str]) -> str:
    """The dotted name of an error's location (FastAPI's leading ``body`` left out)."""
    return ".".join(str(part) for part in loc if part != "body") or "body"


def validation_reason(exc: ValidationError) -> str:
    """One line naming each invalid field and why, e.g. ``days: Input should be <= 365``."""
    return "; ".join(f"{field_name(err['loc'])}: {err['msg']}" for err in exc.errors())
