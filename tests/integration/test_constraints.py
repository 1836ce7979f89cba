"""The dependency update procedure (``make constraints``, docs/operations.md): the pins come
from what pip resolves for ``pyproject.toml`` on the package index, and the committed pins
keep every requirement of ``pyproject.toml``. Needs the package index, no Kafka."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.infra import ROOT

pytestmark = pytest.mark.integration


def requirements() -> list[Requirement]:
    """Every requirement of the project with the extras the environment installs."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return [Requirement(r) for r in [*project["dependencies"], *extras["dev"], *extras["llm"]]]


def read_pins(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        name, separator, version = line.partition("==")
        assert separator, f"{path.name}: not name==version: {line!r}"
        assert name, f"{path.name}: no name: {line!r}"
        assert version, f"{path.name}: no version: {line!r}"
        pins[canonicalize_name(name)] = version
    return pins


def assert_pins_meet_the_requirements(pins: dict[str, str]) -> None:
    for requirement in requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is not pinned"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{name}=={pins[name]} does not meet {requirement}"
        )


def test_the_committed_pins_meet_every_requirement_of_pyproject() -> None:
    assert_pins_meet_the_requirements(read_pins(ROOT / "constraints.txt"))


def test_make_constraints_writes_the_pins_pip_resolves(tmp_path: Path) -> None:
    out = tmp_path / "constraints.txt"
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "constraints.py"), str(out)],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert f"wrote {out}" in done.stdout
    pins = read_pins(out)
    assert list(pins) == sorted(pins)
    assert_pins_meet_the_requirements(pins)
    # The project itself and pip's own tools are not pins; what the project needs at run
    # time is, down to the transitive packages (pydantic's core, grpcio-tools' setuptools).
    assert not {"exammentor", "pip", "wheel"} & set(pins)
    assert {"pydantic-core", "setuptools", "grpcio"} <= set(pins)
