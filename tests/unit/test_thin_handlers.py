"""Handlers stay thin: decode, call the domain or the workflow, persist, emit. A function of
a service's ``handlers.py`` over :data:`MAX_LINES` lines holds orchestration that belongs in
the pure domain (``services/<svc>/domain/``) or the workflow, where it can be tested alone."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 80
HANDLERS = sorted((ROOT / "services").glob("*/handlers.py"))


def long_functions(source: str, limit: int = MAX_LINES) -> list[str]:
    """Functions and methods of ``source`` longer than ``limit`` lines (decorators aside)."""
    tree = ast.parse(source)
    found: list[str] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (child.end_lineno or child.lineno) - child.lineno + 1
                if lines > limit:
                    found.append(f"{prefix}{child.name}: {lines} lines")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")

    visit(tree, "")
    return found


@pytest.mark.parametrize("path", HANDLERS, ids=lambda p: p.parent.name)
def test_handlers_are_thin(path: Path) -> None:
    assert long_functions(path.read_text()) == []


def test_the_check_counts_methods_and_functions() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(90))
    assert long_functions(f"def f():\n{body}\n") == ["f: 91 lines"]
    assert long_functions(f"class H:\n  async def g(self):\n{body}\n") == ["H.g: 91 lines"]
    assert long_functions("def f():\n    return 1\n") == []
