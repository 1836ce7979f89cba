"""Writes the pins of every package the project installs (``make constraints``).

pip resolves ``.[dev,llm]`` afresh, as in a new virtual environment (``--ignore-installed``)
with no constraints, and reports what it would install without installing it
(``--dry-run --report``): the newest versions ``pyproject.toml`` allows, for this Python.
The project itself is left out, and so are pip and wheel (what ``pip freeze`` leaves out
too, setuptools excepted: grpcio-tools needs it at run time, so it is pinned as well).

    python scripts/constraints.py [OUT]      (default: constraints.txt)
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LEFT_OUT = {"exammentor", "pip", "wheel"}


def resolved_pins(extras: str = "dev,llm") -> dict[str, str]:
    """Name to version of every package pip would install for the project with ``extras``."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        subprocess.run(  # noqa: S603 (this interpreter's pip, fixed arguments)
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--dry-run",
                "--ignore-installed",
                "--report",
                str(report),
                "--editable",
                f".[{extras}]",
            ],
            cwd=ROOT,
            check=True,
        )
        installs = json.loads(report.read_text())["install"]
    pins = {
        canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"]
        for item in installs
    }
    return {name: version for name, version in sorted(pins.items()) if name not in LEFT_OUT}


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else ROOT / "constraints.txt"
    pins = resolved_pins()
    out.write_text("".join(f"{name}=={version}\n" for name, version in pins.items()))
    print(f"wrote {out}: {len(pins)} pins; review 'git diff constraints.txt', then make test")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
