"""JSON text of the values the services write most: jsonb parameters, relayed chunks and
results, HTTP bodies and NDJSON lines.

orjson writes them, 6 to 10 times faster than the standard library (``bench/json_bodies.py``:
a 60-day study plan of 48 KB in 47 us instead of 315, an echo result in 0.25 us instead of
1.75). What orjson refuses (an integer past 64 bits, a string with a lone surrogate) goes
through the standard library, so everything written before is still written, to the same
values. Two differences, both to the good: not-a-number and infinities are written as
``null`` (the standard library wrote ``NaN``, which is not JSON: Postgres and the HTTP
response refused it), and datetimes and UUIDs are written instead of refused. Reading stays
with the standard library: orjson reads an integer past 64 bits as a float, losing digits.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS  # {1: x} -> {"1": x}, as the standard library writes it


def dumps_bytes(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON.

    Raises:
        TypeError: Neither writer can write ``value`` (an object JSON has no form for).
    """
    try:
        return orjson.dumps(value, option=_OPTIONS)
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":")).encode()


def dumps(value: Any) -> str:
    """``value`` as compact JSON text (:func:`dumps_bytes`)."""
    return dumps_bytes(value).decode()
