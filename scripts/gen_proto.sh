#!/usr/bin/env bash
# Generates the Python gRPC code from proto/*.proto into exammentor/_proto (ignored by git).
# The -I mapping makes the generated modules import each other as exammentor._proto.* (and
# name their classes' module so). The protos import each other by bare name (import
# "gateway.proto"), as a client compiles them from proto/; so protoc reads copies whose imports
# of our own files carry the same exammentor/_proto/ prefix.
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
mkdir -p "$work/$out" "$work/src"
ours=$(cd proto && ls -- *.proto | sed 's/\./\\./' | paste -sd'|' -)
for file in proto/*.proto; do
  sed -E "s#^import \"($ours)\";#import \"$out/\1\";#" "$file" >"$work/src/${file#proto/}"
done
"$python" -m grpc_tools.protoc -I"$out=$work/src" --python_out="$work" --grpc_python_out="$work" \
  --mypy_out="$work" --mypy_grpc_out="$work" "$work"/src/*.proto
touch "$work/$out/__init__.py" "$work/$out/py.typed"
rm -rf "$out.old"
[[ -d "$out" ]] && mv "$out" "$out.old"
mv "$work/$out" "$out"
rm -rf "$out.old"
