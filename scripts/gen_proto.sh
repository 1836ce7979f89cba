#!/usr/bin/env bash
# Generates the Python gRPC code from proto/*.proto into exammentor/_proto (ignored by git).
# The -I mapping makes the generated modules import each other as exammentor._proto.*.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
python=${PYTHON:-.venv/bin/python}
export PATH="$(dirname "$python"):$PATH"
out=exammentor/_proto
rm -rf "$out"
mkdir -p "$out"
"$python" -m grpc_tools.protoc -I"$out=proto" --python_out=. --grpc_python_out=. --mypy_out=. \
  --mypy_grpc_out=. proto/*.proto
touch "$out/__init__.py" "$out/py.typed"
