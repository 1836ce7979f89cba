"""Turning pydantic validation errors into reasons a client can act on."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError

_WHERE = frozenset({"body", "query", "path", "header", "cookie"})
"""FastAPI's first location part says where a field came from, not what it is called."""


def field_name(loc: Sequence[int | str]) -> str:
    """The dotted name of an error's location (FastAPI's leading ``body``, ``query`` ...
    left out)."""
    parts = list(loc[1:] if loc and loc[0] in _WHERE else loc)
    return ".".join(str(part) for part in parts if part != "body") or "body"


def validation_reason(exc: ValidationError) -> str:
    """One line naming each invalid field and why, e.g. ``days: Input should be <= 365``."""
    return "; ".join(f"{field_name(err['loc'])}: {err['msg']}" for err in exc.errors())
