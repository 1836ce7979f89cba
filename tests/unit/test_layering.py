"""Services never import each other: what two services share lives in the kit
(``exammentor``) or the contracts (``exammentor.contracts``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = sorted(p.name for p in (ROOT / "services").iterdir() if (p / "__init__.py").exists())


def foreign_service_imports(source: str, own: str) -> list[str]:
    """The imports in ``source`` of a service package other than ``own``."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        for name in names:
            parts = name.split(".")
            if len(parts) >= 2 and parts[0] == "services" and parts[1] != own:
                found.append(f"line {node.lineno}: {name}")
    return sorted(set(found))


@pytest.mark.parametrize("service", SERVICES)
def test_no_service_imports_another(service: str) -> None:
    offences = {
        str(path.relative_to(ROOT)): found
        for path in sorted((ROOT / "services" / service).rglob("*.py"))
        if (found := foreign_service_imports(path.read_text(), service))
    }
    assert offences == {}


def test_the_kit_imports_no_service() -> None:
    offences = {
        str(path.relative_to(ROOT)): found
        for path in sorted((ROOT / "exammentor").rglob("*.py"))
        if "_proto" not in path.parts
        and (found := foreign_service_imports(path.read_text(), own=""))
    }
    assert offences == {}


def test_the_check_sees_each_form_of_import() -> None:
    assert foreign_service_imports("from services.planner import repo", "gateway")
    assert foreign_service_imports("import services.quiz.domain", "tutor")
    assert foreign_service_imports("from services import planner", "gateway")
    assert foreign_service_imports("def f():\n    from services.quiz import x", "tutor")
    assert not foreign_service_imports("from services.gateway import core", "gateway")
    assert not foreign_service_imports("from . import repo", "gateway")
