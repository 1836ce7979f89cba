#!/usr/bin/env bash
# Generates the Python gRPC code from proto/*.proto into exammentor/_proto (ignored by git).
# The -I mapping makes the generated modules import each other as exammentor._proto.*.
# Generated beside the old code and swapped in at the end, so a proto that does not compile
# leaves the previous code in place (and running processes keep importing it).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
python=${PYTHON:-.venv/bin/python}
export PATH="$(dirname "$python"):$PATH"
out=exammentor/_proto
work=$(mktemp -d "${TMPDIR:-/tmp}/exammentor-proto.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/$out"
"$python" -m grpc_tools.protoc -I"$out=proto" --python_out="$work" --grpc_python_out="$work" \
  --mypy_out="$work" --mypy_grpc_out="$work" proto/*.proto
touch "$work/$out/__init__.py" "$work/$out/py.typed"
rm -rf "$out.old"
[[ -d "$out" ]] && mv "$out" "$out.old"
mv "$work/$out" "$out"
rm -rf "$out.old"
