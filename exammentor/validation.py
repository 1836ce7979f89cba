"""Turning pydantic validation errors into reasons a client can act on."""

from __future__ import annotations

from pydantic import ValidationError


def validation_reason(exc: ValidationError) -> str:
    """One line naming each invalid field and why, e.g. ``days: Input should be <= 365``."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in exc.errors()
    )
