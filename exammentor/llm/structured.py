"""Structured output: the JSON inside a model's reply, validated against a pydantic model and a
semantic check, and the repair prompt that sends the errors back."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

MAX_REPORTED_ERRORS = 8
"""Validation errors quoted back to the model; more only dilutes a small model's attention."""


class InvalidOutputError(Exception):
    def __init__(self, errors: Sequence[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = list(errors)


_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n?(.*?)```", re.DOTALL)


_DECODER = json.JSONDecoder()


def extract_json(text: str) -> Any:
    """Finds the JSON value in a model's reply.

    Models wrap JSON in Markdown fences or put a sentence before it even when asked not to;
    this takes the fenced block when there is one, else the first JSON object or array in
    the text, and ignores whatever follows it.

    Args:
        text: The reply.

    Returns:
        The decoded JSON value.

    Raises:
        ValueError: The text holds no decodable JSON object or array.
    """
    candidates = [m.group(1) for m in _FENCE.finditer(text)]
    candidates.append(text)
    first_error = "no JSON object or array in the reply"
    for candidate in candidates:
        stripped = candidate.strip()
        starts = sorted(i for i in (stripped.find("{"), stripped.find("[")) if i >= 0)
        for start in starts:
            try:
                value, _end = _DECODER.raw_decode(stripped, start)
            except json.JSONDecodeError as exc:
                if first_error.startswith("no JSON"):
                    first_error = f"{exc.msg} (character {exc.pos})"
                continue
            return value
    raise ValueError(first_error)


def describe_validation_error(exc: ValidationError) -> list[str]:
    described = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        described.append(f"{where}: {error['msg']}")
    return described[:MAX_REPORTED_ERRORS]


def parse_output(
    text: str,
    schema: type[M],
    validate: Callable[[M], None] | None,
    finish_reason: str | None,
) -> M:
    truncated = (
        ["the reply was cut off at the token limit: give a shorter answer"]
        if finish_reason == "length"
        else []
    )
    try:
        data = extract_json(text)
    except ValueError as exc:
        raise InvalidOutputError([f"the reply is not valid JSON: {exc}", *truncated]) from exc
    try:
        result = schema.model_validate(data)
    except ValidationError as exc:
        raise InvalidOutputError(describe_validation_error(exc) + truncated) from exc
    if validate is not None:
        try:
            validate(result)
        except ValidationError as exc:
            raise InvalidOutputError(describe_validation_error(exc)) from exc
        except ValueError as exc:
            raise InvalidOutputError([str(exc) or type(exc).__name__]) from exc
    return result


def repair_prompt(errors: Sequence[str], schema_json: dict[str, Any]) -> str:
    listed = "\n".join(f"- {error}" for error in errors)
    return (
        "Your previous reply could not be used:\n"
        f"{listed}\n"
        "Reply again with only the corrected JSON, with no other text, "
        "matching this JSON schema:\n"
        f"{json.dumps(schema_json, separators=(',', ':'))}"
    )


def schema_name(schema: type[BaseModel]) -> str:
    # OpenAI accepts [a-zA-Z0-9_-]{1,64} here.
    return re.sub(r"[^a-zA-Z0-9_-]", "_", schema.__name__)[:64] or "output"
