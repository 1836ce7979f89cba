"""Every table has one owner, only its owner writes it, and every read of it by someone else
is declared with its reason (:mod:`exammentor.contracts.tables`).

The SQL is read from the string literals of the Python sources of ``services/`` and
``exammentor/`` (docstrings aside): a write is ``INSERT INTO``, ``UPDATE``, ``DELETE FROM``,
``COPY`` or ``TRUNCATE`` of a table, a read is ``FROM`` or ``JOIN`` of one. A table name
built at run time (an f-string) is a write only its declared module may make; such reads
(the backup's row counts) are not followed. Benchmarks and tests set up their own rows and
are not read.
"""

from __future__ import annotations

import ast
import functools
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from exammentor.contracts.tables import FOREIGN_READS, FOREIGN_WRITES, TABLES, WRITERS
from exammentor.ops.retention import rules
from exammentor.settings import RetentionSettings

ROOT = Path(__file__).resolve().parents[2]
READ_MODELS = "exammentor.read_models"
DYNAMIC = "{}"

_NAME = r"(\{\}|[a-z_][a-z0-9_]*)"
WRITE = re.compile(
    r"\b(?:INSERT\s+INTO|(?<!FOR )(?<!DO )UPDATE|DELETE\s+FROM|COPY|TRUNCATE(?:\s+TABLE)?)"
    rf"\s+(?:ONLY\s+)?{_NAME}"
)
READ = re.compile(rf"\b(?:FROM|JOIN)\s+{_NAME}")
CREATE = re.compile(r"\bCREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?([a-z_][a-z0-9_]*)", re.I)


@dataclass(frozen=True)
class Statement:
    """One table a string of SQL names."""

    module: str
    line: int
    function: str
    kind: str  # "write" or "read"
    table: str


def _strings(tree: ast.Module) -> Iterator[tuple[ast.AST, str]]:
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    inside_fstring = {
        id(part)
        for node in ast.walk(tree)
        if isinstance(node, ast.JoinedStr)
        for part in node.values
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            yield (
                node,
                "".join(p.value if isinstance(p, ast.Constant) else DYNAMIC for p in node.values),
            )
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and id(node) not in inside_fstring
        ):
            yield node, node.value


def _functions(tree: ast.Module) -> dict[int, str]:
    """The name of the outermost function around each line."""
    found: dict[int, str] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            for line in range(node.lineno, (node.end_lineno or node.lineno) + 1):
                found[line] = node.name
    return found


def statements(source: str, module: str) -> list[Statement]:
    """The tables the SQL of ``source`` writes and reads."""
    tree = ast.parse(source)
    functions = _functions(tree)
    found: list[Statement] = []
    for node, text in _strings(tree):
        line = getattr(node, "lineno", 0)
        where = functions.get(line, "")
        found.extend(Statement(module, line, where, "write", m[1]) for m in WRITE.finditer(text))
        found.extend(Statement(module, line, where, "read", m[1]) for m in READ.finditer(text))
    return found


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@functools.cache
def sources() -> dict[str, str]:
    return {
        module_name(path): path.read_text()
        for folder in ("services", "exammentor")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if "_proto" not in path.parts
    }


@functools.cache
def _all_statements() -> tuple[Statement, ...]:
    return tuple(s for module, text in sources().items() for s in statements(text, module))


def all_statements() -> list[Statement]:
    return list(_all_statements())


def owner_of_module(module: str) -> str | None:
    """The owner whose files ``module`` is (None: a kit module of no owner)."""
    parts = module.split(".")
    if parts[0] == "services" and len(parts) > 1:
        return parts[1]
    if module.startswith(READ_MODELS + ".") and len(parts) == 3:
        return parts[2]
    return next((owner for owner, mods in WRITERS.items() if module in mods), None)


def _under(module: str, reader: str) -> bool:
    return module == reader or module.startswith(reader + ".")


# ---- the declaration --------------------------------------------------------------------


def test_every_table_of_the_migrations_has_an_owner() -> None:
    created = {
        name
        for path in sorted((ROOT / "migrations").glob("*.sql"))
        if not path.name.endswith(".down.sql")
        for name in CREATE.findall(path.read_text())
    }
    created.add("schema_migrations")  # made by exammentor.ops.migrate itself
    assert created == set(TABLES)


def test_every_declared_module_exists() -> None:
    modules = set(sources())
    named = {
        *(m for mods in WRITERS.values() for m in mods),
        *(r.via for r in FOREIGN_READS),
        *(w.writer for w in FOREIGN_WRITES),
    }
    assert named - modules == set()
    assert all(any(_under(m, r.reader) for m in modules) for r in FOREIGN_READS)
    assert set(TABLES.values()) == set(WRITERS)


# ---- writes -------------------------------------------------------------------------------


def write_offences(found: list[Statement]) -> list[str]:
    """Writes of a table outside its owner's writer modules and not declared."""
    bad: list[str] = []
    for s in (s for s in found if s.kind == "write"):
        declared = [w for w in FOREIGN_WRITES if w.writer == s.module]
        where = f"{s.module}:{s.line}"
        if s.table == DYNAMIC:
            if not declared:
                bad.append(f"{where} writes a table named at run time")
        elif s.table not in TABLES:
            bad.append(f"{where} writes {s.table}, which no migration declares an owner of")
        elif s.module not in WRITERS[TABLES[s.table]] and not any(
            s.table in w.tables for w in declared
        ):
            bad.append(f"{where} writes {s.table} of {TABLES[s.table]}")
    return bad


def test_tables_are_written_only_by_their_owner() -> None:
    assert write_offences(all_statements()) == []


def test_the_retention_job_deletes_only_what_it_declares() -> None:
    declared = {
        t for w in FOREIGN_WRITES if w.writer == "exammentor.ops.retention" for t in w.tables
    }
    assert {rule.table for rule in rules(RetentionSettings())} == declared


def test_the_write_check_sees_each_form_of_write() -> None:
    def offences(sql: str, module: str = "services.tutor.repo") -> list[str]:
        return write_offences(statements(f"def f():\n    x = {sql!r}\n", module))

    assert offences("INSERT INTO quiz_answers (id) VALUES ($1)")
    assert offences("UPDATE learner_topics SET score = 1")
    assert offences("UPDATE autopilot_leases l SET owner = NULL")
    assert offences("DELETE FROM study_plans WHERE id = $1")
    assert offences("COPY quizzes FROM STDIN")
    assert offences("TRUNCATE TABLE inbox")
    assert offences("INSERT INTO mystery (id) VALUES (1)")
    assert offences("INSERT INTO tutor_chats (id) VALUES (1)", "services.tutor.handlers")
    assert not offences("INSERT INTO tutor_chats (id) VALUES (1) ON CONFLICT DO UPDATE SET x = 1")
    assert not offences("SELECT 1 FROM tutor_materials WHERE id = $1 FOR UPDATE SKIP LOCKED")
    assert not offences("UPDATE study_sessions SET x = 1", "exammentor.sessions")
    found = statements('def f(t):\n    x = f"DELETE FROM {t} WHERE a"\n', "services.quiz.repo")
    assert write_offences(found)


# ---- reads --------------------------------------------------------------------------------


def read_offences(found: list[Statement]) -> list[str]:
    """Reads of another owner's table, outside a read model, that are not declared."""
    bad: list[str] = []
    for s in found:
        if s.kind != "read" or s.table not in TABLES or s.module.startswith(READ_MODELS):
            continue
        owner = TABLES[s.table]
        if owner == owner_of_module(s.module):
            continue
        if not any(
            _under(s.module, r.reader) and r.via == s.module and s.table in r.tables
            for r in FOREIGN_READS
            if r.owner == owner
        ):
            bad.append(f"{s.module}:{s.line} reads {s.table} of {owner}")
    return bad


def test_reads_of_another_owners_tables_are_declared() -> None:
    assert read_offences(all_statements()) == []


def test_read_models_read_only_their_owners_tables() -> None:
    found = [s for s in all_statements() if s.module.startswith(READ_MODELS + ".")]
    assert {s.module for s in found} >= {f"{READ_MODELS}.{o}" for o in ("quiz", "tutor")}
    assert [f"{s.module}:{s.line} writes {s.table}" for s in found if s.kind == "write"] == []
    assert [
        f"{s.module}:{s.line} reads {s.table} of {TABLES[s.table]}"
        for s in found
        if s.table in TABLES and TABLES[s.table] != owner_of_module(s.module)
    ] == []


def read_model_uses(source: str) -> dict[str, set[str]]:
    """The read-model functions ``source`` calls, by read-model module."""
    tree = ast.parse(source)
    aliases: dict[str, str] = {}
    used: dict[str, set[str]] = defaultdict(set)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == READ_MODELS:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{READ_MODELS}.{alias.name}"
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(READ_MODELS):
            for alias in node.names:
                used[node.module or ""].add(alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(READ_MODELS + ".") and alias.asname:
                    aliases[alias.asname] = alias.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
        ):
            used[aliases[node.value.id]].add(node.attr)
    return dict(used)


def test_uses_of_another_owners_read_model_are_declared() -> None:
    offences: list[str] = []
    for module, text in sources().items():
        if not module.startswith("services."):
            continue
        for read_model, functions in read_model_uses(text).items():
            owner = read_model.rsplit(".", 1)[1]
            if owner == owner_of_module(module):
                continue
            declared = {
                f
                for r in FOREIGN_READS
                if _under(module, r.reader) and r.via == read_model
                for f in r.functions
            }
            offences.extend(f"{module} calls {read_model}.{f}" for f in functions - declared)
    assert offences == []


def test_every_declared_read_is_still_made() -> None:
    """A declaration names exactly the tables its functions (or its module's SQL) read, and
    each function it names is called by its reader: a stale one fails here."""
    found = all_statements()
    texts = sources()
    stale: list[str] = []
    for r in FOREIGN_READS:
        if r.functions:
            read = {
                s.table
                for s in found
                if s.module == r.via and s.kind == "read" and s.function in r.functions
            }
            called = {
                f
                for module, text in texts.items()
                if _under(module, r.reader)
                for f in read_model_uses(text).get(r.via, set())
            }
            missing = set(r.functions) - called
        else:
            read = {
                s.table
                for s in found
                if s.module == r.via
                and s.kind == "read"
                and s.table in TABLES
                and TABLES[s.table] == r.owner
            }
            missing = set()
        if read != set(r.tables) or missing:
            stale.append(f"{r.reader} of {r.owner}: reads {sorted(read)}, not called {missing}")
    assert stale == []


def test_the_read_check_sees_a_read_of_another_owner() -> None:
    quiz_reads_plans = statements(
        'def f():\n    x = "SELECT plan FROM study_plans"\n', "services.quiz.repo"
    )
    assert read_offences(quiz_reads_plans)
    own = statements(
        'def f():\n    x = "SELECT 1 FROM quizzes q JOIN quiz_answers a"\n', "services.quiz.repo"
    )
    assert own
    assert not read_offences(own)
    declared = statements(
        'def f():\n    x = "SELECT text FROM tutor_passages"\n', "services.quiz.repo"
    )
    assert declared
    assert not read_offences(declared)
    uses = read_model_uses(
        "from exammentor.read_models import quiz as q\nq.learner_snapshot(c)\n"
        "from exammentor.read_models.tutor import tutor_chat\n"
    )
    assert uses == {
        f"{READ_MODELS}.quiz": {"learner_snapshot"},
        f"{READ_MODELS}.tutor": {"tutor_chat"},
    }


@pytest.mark.parametrize("service", ["planner", "tutor", "quiz", "autopilot"])
def test_a_worker_checks_the_session_only_through_the_kit(service: str) -> None:
    """``study_sessions`` is read by :mod:`exammentor.sessions` alone: a service asks it."""
    found = [
        s
        for s in all_statements()
        if s.module.startswith(f"services.{service}.") and s.table == "study_sessions"
    ]
    assert found == []
