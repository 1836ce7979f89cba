"""The contracts stay installable alone: they import nothing of the kit or the services.

``exammentor-contracts`` ships ``exammentor/__init__.py`` and ``exammentor/contracts/`` with
pydantic and protobuf as its only dependencies, so a module there that imports the kit (or
anything else) would break every integrator's install. Checked statically, from the source.
"""

from __future__ import annotations

import ast
import importlib.util
import keyword
import re
import sys
import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.requirements import Requirement

import exammentor

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "exammentor" / "contracts"

CONTRACT_DEPENDENCIES = ("pydantic", "pydantic_core", "google.protobuf", "exammentor.contracts")
"""What the contracts may import besides the standard library (dotted prefixes)."""
EXAMPLE_DEPENDENCIES = (*CONTRACT_DEPENDENCIES, "aiokafka")
"""The integrator's example may use its own Kafka client too."""

_DYNAMIC_IMPORTS = {"import_module", "__import__"}


def _is_allowed(module: str, allowed: tuple[str, ...]) -> bool:
    if module.split(".", 1)[0] in sys.stdlib_module_names:
        return True
    return any(module == root or module.startswith(f"{root}.") for root in allowed)


def _targets(node: ast.AST, package: str, allowed: tuple[str, ...]) -> list[str]:
    """The modules one AST node imports ([] when it imports nothing)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        base = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
        if any(root.startswith(f"{base}.") for root in allowed):
            # ``from exammentor import db`` imports the module exammentor.db: judge each name.
            return [f"{base}.{alias.name}" for alias in node.names]
        return [base]
    if (
        isinstance(node, ast.Call)
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name in _DYNAMIC_IMPORTS:
            return [importlib.util.resolve_name(node.args[0].value, package)]
    return []


def foreign_imports(
    source: str, package: str, allowed: tuple[str, ...] = CONTRACT_DEPENDENCIES
) -> list[str]:
    """The imports in ``source`` outside the standard library and ``allowed``.

    Every import counts, wherever it is (inside functions, under ``TYPE_CHECKING``: an
    integrator's type checker follows those too), and so does ``importlib.import_module``
    with a literal name.

    Args:
        source: Python source of one module.
        package: The package the module is in, to resolve relative imports against.
        allowed: Dotted prefixes of the modules it may import besides the standard library.

    Returns:
        ``"line N: module"`` for each import outside what is allowed, in source order.
    """
    found = []
    for node in ast.walk(ast.parse(source)):
        for module in _targets(node, package, allowed):
            if not _is_allowed(module, allowed):
                found.append((getattr(node, "lineno", 0), module))
    return [f"line {line}: {module}" for line, module in sorted(found)]


def _package_of(path: Path) -> str:
    # A module's relative imports resolve against its folder's package, __init__.py's too.
    return ".".join(path.parent.relative_to(ROOT).parts)


def test_the_shipped_sources_import_only_the_standard_library_pydantic_and_protobuf() -> None:
    shipped = [ROOT / "exammentor" / "__init__.py", *sorted(CONTRACTS.rglob("*.py"))]
    offenders = {
        str(path.relative_to(ROOT)): found
        for path in shipped
        if (found := foreign_imports(path.read_text(), _package_of(path)))
    }
    assert len(shipped) >= 6, "the contracts package is not where this test looks"
    assert offenders == {}, (
        "exammentor-contracts depends on pydantic and protobuf only; move these imports out "
        f"of the contracts (or the code into the kit): {offenders}"
    )


def test_the_example_consumer_needs_only_the_contracts_and_its_kafka_client() -> None:
    example = ROOT / "examples" / "consume_events.py"
    assert foreign_imports(example.read_text(), "examples", EXAMPLE_DEPENDENCIES) == []


@pytest.mark.parametrize(
    ("source", "module"),
    [
        ("from exammentor.db import Pool", "exammentor.db"),
        ("import faststream", "faststream"),
        ("from ..outbox import add_event", "exammentor.outbox"),
        ("from exammentor import settings", "exammentor.settings"),
        ("from services.planner import repo", "services.planner"),
        ("import google.cloud.storage", "google.cloud.storage"),
        ("import grpc", "grpc"),
        ("import importlib\nimportlib.import_module('asyncpg')", "asyncpg"),
        ("if TYPE_CHECKING:\n    from exammentor.worker import Worker", "exammentor.worker"),
        ("def later():\n    import structlog", "structlog"),
    ],
)
def test_an_import_of_the_kit_or_a_third_party_is_caught(source: str, module: str) -> None:
    found = foreign_imports(source, "exammentor.contracts")
    assert len(found) == 1
    assert found[0].endswith(f": {module}")


def test_what_the_contracts_may_import_passes() -> None:
    source = "\n".join(
        [
            "from __future__ import annotations",
            "import datetime as dt",
            "from typing import ClassVar",
            "from pydantic import BaseModel",
            "import pydantic_core.core_schema",
            "from google.protobuf import message",
            "from google import protobuf",
            "from . import events",
            "from .envelope import EventEnvelope",
            "from exammentor.contracts.plan import StudyPlan",
            "from exammentor import contracts",
        ]
    )
    assert foreign_imports(source, "exammentor.contracts") == []


def test_a_refusal_names_the_line() -> None:
    source = "import json\n\nfrom exammentor.llm.client import LLMClient\n"
    assert foreign_imports(source, "exammentor.contracts") == ["line 3: exammentor.llm.client"]


@given(st.sampled_from(sorted(sys.stdlib_module_names)))
def test_any_standard_library_module_is_allowed(module: str) -> None:
    assert foreign_imports(f"import {module}\nfrom {module} import x", "exammentor.contracts") == []


@given(
    st.from_regex(r"[a-z_][a-z0-9_]{0,15}", fullmatch=True).filter(
        lambda n: n != "contracts" and not keyword.iskeyword(n)
    )
)
def test_any_kit_module_is_refused(name: str) -> None:
    found = foreign_imports(f"from exammentor.{name} import thing", "exammentor.contracts")
    assert found == [f"line 1: exammentor.{name}"]


def test_the_distribution_has_the_main_version_and_needs_pydantic_and_protobuf_only() -> None:
    main = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    ours = tomllib.loads((ROOT / "packaging" / "contracts" / "pyproject.toml").read_text())
    project = ours["project"]
    assert project["name"] == "exammentor-contracts"
    assert project["dynamic"] == ["version"]
    assert ours["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "exammentor.__version__"}
    # The wheel's version is read from exammentor/__init__.py: it must be the main one's.
    assert exammentor.__version__ == main["version"]
    assert {Requirement(r).name for r in project["dependencies"]} == {"pydantic", "protobuf"}
    assert set(project["optional-dependencies"]) == {"grpc"}


def test_the_build_script_stages_the_gateway_stubs_and_not_the_internal_relay() -> None:
    script = (ROOT / "scripts" / "build_contracts.sh").read_text()
    copies = re.findall(r"^cp .*$", script, re.MULTILINE)
    assert any("gateway_pb2*" in line for line in copies)
    assert not any("relay" in line for line in copies)
