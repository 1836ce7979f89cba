"""Every ``CommandRejected`` names a declared error code: a constant of
``exammentor.contracts`` (``SESSION_NOT_FOUND.code``) or a code carried by a domain error
or variable, never a string literal written at the raise site (a literal drifts from the
command's declared ``errors`` unseen)."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import exammentor.contracts
from exammentor.contracts.commands import ErrorCode

ROOT = Path(__file__).resolve().parents[2]


def declared_codes() -> set[str]:
    """The module-level names of ``exammentor.contracts`` that are error codes."""
    names: set[str] = set()
    for info in pkgutil.iter_modules(exammentor.contracts.__path__):
        module = importlib.import_module(f"exammentor.contracts.{info.name}")
        names.update(n for n, v in vars(module).items() if isinstance(v, ErrorCode))
    return names


def _leaves(node: ast.expr) -> list[ast.expr]:
    if isinstance(node, ast.IfExp):
        return [*_leaves(node.body), *_leaves(node.orelse)]
    return [node]


def rejection_codes(source: str) -> list[tuple[int, ast.expr]]:
    """The code arguments of every ``CommandRejected(...)`` call in ``source`` (each branch
    of a conditional on its own)."""
    found: list[tuple[int, ast.expr]] = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if name != "CommandRejected":
            continue
        args = [*node.args[:1], *(k.value for k in node.keywords if k.arg == "code")]
        found.extend((node.lineno, leaf) for arg in args for leaf in _leaves(arg))
    return found


def offences(source: str, declared: set[str]) -> list[str]:
    """The code arguments that are not a declared constant's ``.code`` nor a name."""
    bad: list[str] = []
    for line, code in rejection_codes(source):
        if isinstance(code, ast.Attribute) and code.attr == "code":
            owner = code.value
            if isinstance(owner, ast.Name) and owner.id.isupper() and owner.id not in declared:
                bad.append(f"line {line}: {owner.id} is not an ErrorCode of the contracts")
            continue
        if isinstance(code, ast.Name):
            continue
        bad.append(f"line {line}: {ast.unparse(code)}")
    return bad


def test_every_rejection_names_a_declared_code() -> None:
    declared = declared_codes()
    found = {
        str(path.relative_to(ROOT)): bad
        for folder in ("services", "exammentor")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if "_proto" not in path.parts and (bad := offences(path.read_text(), declared))
    }
    assert found == {}


def test_the_check_sees_each_form_of_literal() -> None:
    declared = {"SESSION_NOT_FOUND"}
    assert offences('raise CommandRejected("session_not_found", "x")', declared)
    assert offences('CommandRejected(f"{kind}_failed", "x")', declared)
    assert offences('commands.CommandRejected(code="model_failed", message="x")', declared)
    assert offences('CommandRejected(A.code if ok else "planning_failed", "x")', declared)
    assert offences('CommandRejected(UNDECLARED.code, "x")', declared)
    assert not offences('CommandRejected(SESSION_NOT_FOUND.code, "message: a literal")', declared)
    assert not offences('CommandRejected(error.code, f"{field}: {error}")', declared)
    assert not offences("CommandRejected(code, message)", declared)


def test_the_contracts_declare_the_codes_the_services_use() -> None:
    assert {"SESSION_NOT_FOUND", "UNKNOWN_EXAM", "MATERIAL_NOT_FOUND"} <= declared_codes()
