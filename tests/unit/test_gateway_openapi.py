"""The gateway's OpenAPI document stands alone: every ``$ref`` in it points at something in it.

Bodies read by ``json_body`` are documented with ``body_schema``; a model with nested models
once brought its ``#/$defs/...`` references along, which inside an OpenAPI document point at
its root, where nothing is. Clients could not read those bodies, and the schemathesis run
(tests/integration/test_schemathesis.py) sent them no body at all: six routes were never fuzzed.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import BaseModel

from services.gateway.http_api import create_http_app
from services.gateway.http_base import GatewayState, body_schema


def _document() -> dict[str, Any]:
    # Building the document reads the routes only; no route runs, so no core is needed.
    nothing: Any = SimpleNamespace()
    state = GatewayState(core=nothing, readiness=nothing, max_body_bytes=1)
    document: dict[str, Any] = create_http_app(state).openapi()
    return document


def _refs(node: Any, where: str = "#") -> list[tuple[str, str]]:
    """Every ``(location, $ref)`` in ``node``."""
    if isinstance(node, dict):
        found = [(where, node["$ref"])] if isinstance(node.get("$ref"), str) else []
        for key, value in node.items():
            found += _refs(value, f"{where}/{key}")
        return found
    if isinstance(node, list):
        return [ref for i, item in enumerate(node) for ref in _refs(item, f"{where}/{i}")]
    return []


def _resolves(document: dict[str, Any], ref: str) -> bool:
    if not ref.startswith("#/"):
        return False
    node: Any = document
    for escaped in ref.removeprefix("#/").split("/"):
        part = escaped.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def test_every_ref_of_the_document_points_inside_it() -> None:
    document = _document()
    refs = _refs(document)
    assert refs, "the document has no $ref at all: the walk is broken"
    dangling = [(where, ref) for where, ref in refs if not _resolves(document, ref)]
    assert not dangling, dangling


def test_the_bodies_with_nested_models_are_documented_in_full() -> None:
    paths = _document()["paths"]
    body = paths["/api/autopilot/start"]["post"]["requestBody"]["content"]["application/json"]
    plan = body["schema"]["properties"]["study_plan"]
    # The nested model is written in, down to its own nested models.
    assert "properties" in plan, plan
    assert "$defs" not in str(body)


class _Node(BaseModel):
    children: list[_Node] = []


def test_a_recursive_body_model_is_refused_rather_than_looping() -> None:
    with pytest.raises(ValueError, match="recursive"):
        body_schema(_Node)
