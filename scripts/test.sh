#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite: the core in .venv, the add-on in bpy 4.5
# (.venv-blender) and in the real Blender binary, ruff, and mypy on the add-on. Extra arguments go to
# both pytest runs.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --tests || exit 1

status=0
run() {
  local name=$1; shift
  printf '\n\033[1m== %s ==\033[0m\n' "$name"
  "$@"
  local rc=$?
  # 5 = pytest collected nothing: a broken setup, never a pass
  if [ $rc -eq 5 ]; then echo "no tests were collected for $name: the setup is broken" >&2; rc=1; fi
  [ $rc -ne 0 ] && status=1
  return 0
}
run "core (.venv)" .venv/bin/python -m pytest tests/core "$@"
run "Blender add-on (bpy 4.5, .venv-blender)" .venv-blender/bin/python -m pytest tests/blender "$@"
run "lint (ruff)" .venv/bin/ruff check .
run "types (mypy + fake-bpy-module)" .venv-typecheck/bin/mypy
exit $status
