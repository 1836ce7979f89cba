"""Client input read into contract models, and the error every transport answers.

:func:`parse` is the one validation every body, query and gRPC message goes through, so HTTP
and gRPC refuse the same input the same way. A :class:`GatewayError` carries an
:class:`~exammentor.contracts.commands.ErrorCode`, which names its HTTP status and gRPC status
code beside its machine-readable code.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar
from uuid import UUID

from pydantic import BaseModel, ValidationError

from exammentor.contracts.api import Error
from exammentor.contracts.commands import (
    DEAD_LETTERED,
    GATEWAY_ERRORS,
    INVALID_REQUEST,
    STILL_RUNNING,
    Command,
    ErrorCode,
)
from exammentor.validation import field_name

P = TypeVar("P", bound=BaseModel)

_GATEWAY_CODES = {e.code: e for e in GATEWAY_ERRORS}


class GatewayError(Exception):
    """A refusal or failure, as every transport answers it."""

    def __init__(
        self,
        error: ErrorCode,
        message: str,
        details: dict[str, Any] | None = None,
        request_id: UUID | None = None,
    ) -> None:
        super().__init__(message)
        self.error = error
        self.message = message
        self.details = details or {}
        self.request_id = request_id

    @property
    def code(self) -> str:
        """The machine-readable code."""
        return self.error.code

    def as_error(self) -> Error:
        """The error as the API's contract shape."""
        return Error(
            code=self.code, message=self.message, details=self.details, request_id=self.request_id
        )

    def body(self) -> dict[str, Any]:
        """The HTTP body's ``detail``: code, message and the details flat beside them."""
        body: dict[str, Any] = {**self.details, "code": self.code, "message": self.message}
        if self.request_id is not None:
            body["request_id"] = str(self.request_id)
        return body


def command_error(
    command: Command[Any, Any], data: dict[str, Any], request_id: UUID
) -> GatewayError:
    """A command's final error chunk as a :class:`GatewayError` with its declared statuses.

    An undeclared code (a worker older or newer than this gateway) is answered as a failure
    of the pipeline rather than guessed at.
    """
    code = str(data.get("code", ""))
    details = {k: v for k, v in data.items() if k not in {"code", "message", "request_id"}}
    if command.declares(code):
        error = command.error(code)
    else:
        error = _GATEWAY_CODES.get(code, DEAD_LETTERED)
    return GatewayError(error, str(data.get("message", code)), details, request_id)


def _unstorable_text(data: Any, path: str = "") -> tuple[str, str] | None:
    """The first string in ``data`` Postgres cannot store, as ``(field, reason)``."""
    if isinstance(data, str):
        if "\x00" in data:
            return path or "body", "contains a NUL character"
        try:
            data.encode("utf-8")
        except UnicodeEncodeError:
            return path or "body", "is not valid UTF-8 text (a lone surrogate)"
        return None
    if isinstance(data, dict):
        items: Any = data.items()
    elif isinstance(data, list):
        items = enumerate(data)
    else:
        return None
    for key, value in items:
        key_problem = _unstorable_text(key, path) if isinstance(key, str) else None
        where = f"{path}.{key}" if path else str(key)
        found = key_problem or _unstorable_text(value, where)
        if found is not None:
            return found
    return None


def parse(model: type[P], data: Any, command: Command[Any, Any] | None = None) -> P:
    """``data`` as ``model``, or a :class:`GatewayError` naming each bad field.

    Text Postgres cannot store (NUL characters, lone surrogates) is refused wherever it is,
    before anything is stored, published or sent to a model. A validation error whose type is
    an error code the command declares (such as ``syllabus_too_large``) is answered with that
    code and its status; any other is ``invalid_request``.
    """
    unstorable = _unstorable_text(data)
    if unstorable is not None:
        field_, reason = unstorable
        raise GatewayError(
            INVALID_REQUEST,
            f"{field_}: {reason}",
            {"errors": [{"field": field_, "reason": reason, "type": "text_unstorable"}]},
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [
            {"field": field_name(err["loc"]) or "body", "reason": err["msg"], "type": err["type"]}
            for err in exc.errors(include_url=False)
        ]
        message = "; ".join(f"{e['field']}: {e['reason']}" for e in errors)
        declared = next(
            (e for e in errors if command is not None and command.declares(e["type"])), None
        )
        error = command.error(declared["type"]) if command and declared else INVALID_REQUEST
        raise GatewayError(error, message, {"errors": errors}) from exc


def parse_json(model: type[P], raw: bytes, command: Command[Any, Any] | None = None) -> P:
    """A JSON body as ``model``: bytes that are not UTF-8 or not JSON are refused by name."""
    return parse(model, json_input(raw), command)


def json_input(raw: bytes) -> Any:
    """A JSON body's data (an empty body is ``{}``); bytes that are not UTF-8 or not JSON
    are refused by name."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        reason = f"not UTF-8 text (invalid byte at position {exc.start})"
        raise GatewayError(
            INVALID_REQUEST,
            f"body: {reason}",
            {"errors": [{"field": "body", "reason": reason, "type": "text_not_utf8"}]},
        ) from exc
    try:
        # json.loads keeps a lone surrogate ("\ud800"), so the model's check can name the
        # field that holds it; pydantic's own parser would only say "invalid JSON".
        data = json.loads(text) if text.strip() else {}
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, json.JSONDecodeError):
            reason = f"not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        elif isinstance(exc, RecursionError):
            reason = "not JSON: nested too deeply"
        else:  # an integer past Python's digit limit
            reason = "not JSON: a number has more digits than any field accepts"
        raise GatewayError(
            INVALID_REQUEST,
            f"body: {reason}",
            {"errors": [{"field": "body", "reason": reason, "type": "json_invalid"}]},
        ) from exc
    return data


def parse_uuid(field_: str, value: str) -> UUID:
    """``value`` as a UUID, or ``invalid_request`` naming ``field_``."""
    try:
        return UUID(value)
    except ValueError as exc:
        raise GatewayError(
            INVALID_REQUEST,
            f"{field_}: not a UUID",
            {"errors": [{"field": field_, "reason": "not a UUID", "type": "uuid_parsing"}]},
        ) from exc


def still_running(request_id: UUID) -> GatewayError:
    """The error of a command whose result did not come within the wait: the client fetches
    the request later (HTTP answers it 202)."""
    return GatewayError(
        STILL_RUNNING, f"still running; fetch request {request_id} later", request_id=request_id
    )


MAX_IDEMPOTENCY_KEY_CHARS = 200


def idempotency_key(value: str | None) -> str | None:
    """A client's idempotency key, checked (``invalid_request`` naming the header)."""
    if value is None:
        return None
    if not 1 <= len(value) <= MAX_IDEMPOTENCY_KEY_CHARS or not value.isprintable():
        reason = f"1 to {MAX_IDEMPOTENCY_KEY_CHARS} printable characters"
        raise GatewayError(
            INVALID_REQUEST,
            f"Idempotency-Key: {reason}",
            {"errors": [{"field": "Idempotency-Key", "reason": reason, "type": "header"}]},
        )
    return value
