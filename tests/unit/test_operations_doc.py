"""docs/operations.md shows commands an operator copies: each ``exammentor`` line of its
code blocks must parse with the command's own parser, each ``exammentor`` or ``make`` named
anywhere on the page must exist, and each test it cites as proof must be there."""

from __future__ import annotations

import argparse
import re
import shlex

import pytest

from exammentor.ops.cli import build_parser
from tests.infra import ROOT

PAGE = ROOT / "docs" / "operations.md"


def code_lines() -> list[str]:
    """The command lines of the page's fenced and indented code blocks, continuations
    joined and comments removed."""
    lines: list[str] = []
    fenced = False
    pending = ""
    for raw in PAGE.read_text().splitlines():
        if raw.startswith("```"):
            fenced = not fenced
            continue
        if not (fenced or raw.startswith("    ")):
            continue
        line = pending + raw.strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        command = line.split(" #", 1)[0].strip()
        if command and not command.startswith("#"):
            lines.append(command)
    return lines


def exammentor_commands() -> list[list[str]]:
    commands = []
    for line in code_lines():
        for part in re.split(r"&&|;", line):
            words = shlex.split(part)
            if words and words[0].endswith("exammentor"):
                commands.append(words[1:])
    return commands


def test_the_page_shows_commands() -> None:
    assert len(exammentor_commands()) >= 10


@pytest.mark.parametrize("argv", exammentor_commands(), ids=" ".join)
def test_every_exammentor_command_shown_parses(argv: list[str]) -> None:
    build_parser().parse_args(argv)  # exits (SystemExit) on a command it does not accept


def test_every_subcommand_and_make_target_named_exists() -> None:
    text = PAGE.read_text()
    parser = build_parser()
    # argparse lists its subcommands only on the private action that holds them.
    subcommands = {
        name
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for name in action.choices
    }
    named = set(re.findall(r"`exammentor ([a-z-]+)", text))
    assert named
    assert named <= subcommands
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.MULTILINE))
    made = set(re.findall(r"`make ([a-z][a-z-]*)", text)) | {
        line.split()[1] for line in code_lines() if line.startswith("make ")
    }
    assert made
    assert made <= targets


def test_every_test_cited_as_proof_exists() -> None:
    cited = set(re.findall(r"`((?:tests/[\w/]+/)?test_\w+\.py)", PAGE.read_text()))
    assert cited
    for name in cited:
        found = [ROOT / name] if "/" in name else list((ROOT / "tests").rglob(name))
        assert found, f"{name} is cited in docs/operations.md and does not exist"
        assert all(path.exists() for path in found), name
