#!/usr/bin/env bash
# Builds the exammentor-contracts wheel (pydantic and protobuf only) into dist/ or the folder
# given as $1, from the very files the main distribution ships: exammentor/__init__.py,
# exammentor/contracts/ and the generated public gRPC code, staged beside
# packaging/contracts/pyproject.toml in a temporary tree. Prints the wheel's path.
#
#   bash scripts/build_contracts.sh [out-dir]     (PYTHON=... to use another interpreter)
#
# Offline: it builds with the setuptools already installed (no build isolation).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
python=${PYTHON:-.venv/bin/python}
mkdir -p "${1:-dist}"
out=$(cd "${1:-dist}" && pwd)
proto=exammentor/_proto

if [[ ! -f $proto/gateway_pb2.py ]]; then
  echo "build_contracts: $proto/gateway_pb2.py is missing; run scripts/gen_proto.sh first" >&2
  exit 1
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

cp packaging/contracts/pyproject.toml packaging/contracts/README.md "$stage/"
mkdir -p "$stage/$proto"
# py.typed as well: without the top-level marker an integrator's mypy ignores the types.
cp exammentor/__init__.py exammentor/py.typed "$stage/exammentor/"
find exammentor/contracts -name __pycache__ -prune -o -type f ! -name '*.pyc' -print |
  while read -r file; do
    mkdir -p "$stage/$(dirname "$file")"
    cp "$file" "$stage/$file"
  done
# The gateway's public API only: the relay is internal to the services.
cp "$proto/__init__.py" "$proto/py.typed" "$proto"/gateway_pb2*.py* "$stage/$proto/"

# Generated code refuses to load on a runtime older than its generator, so the declared
# floors must be at least the generator's versions; and the version must be the main one's.
"$python" - "$stage" <<'PY'
import re
import sys
import tomllib
from pathlib import Path

stage = Path(sys.argv[1])
root = tomllib.loads(Path("pyproject.toml").read_text())
version = re.search(r'^__version__ = "(.+)"$', Path("exammentor/__init__.py").read_text(), re.M)
if version is None or version[1] != root["project"]["version"]:
    sys.exit("build_contracts: exammentor.__version__ differs from the root pyproject.toml")

ours = tomllib.loads((stage / "pyproject.toml").read_text())["project"]
requirements = ours["dependencies"] + ours["optional-dependencies"]["grpc"]
floors = {
    name: tuple(map(int, floor.split(".")))
    for name, floor in (re.match(r"([a-z]+)>=([0-9.]+)", r).groups() for r in requirements)
}
generated = {
    "protobuf": r"^# Protobuf Python Version: ([0-9.]+)$",
    "grpcio": r"^GRPC_GENERATED_VERSION = '([0-9.]+)'$",
}
for (name, pattern), path in zip(
    generated.items(), ("gateway_pb2.py", "gateway_pb2_grpc.py"), strict=True
):
    found = re.search(pattern, (stage / "exammentor/_proto" / path).read_text(), re.M)
    if found is None:
        sys.exit(f"build_contracts: no generator version in {path}")
    made_by = tuple(map(int, found[1].split(".")))
    if floors[name] < made_by:
        sys.exit(
            f"build_contracts: {path} was generated for {name} {found[1]}, but "
            f"packaging/contracts/pyproject.toml allows {name} from "
            f"{'.'.join(map(str, floors[name]))}; raise the floor"
        )
PY

"$python" -m pip wheel --quiet --no-deps --no-build-isolation --no-cache-dir \
  --disable-pip-version-check --wheel-dir "$out" "$stage" >&2
version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' exammentor/__init__.py)
echo "$out/exammentor_contracts-$version-py3-none-any.whl"
