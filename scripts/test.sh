#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite: the core in .venv, the add-on in bpy 4.5
# (.venv-blender, which also runs the real Blender 3.4 binary) and in bpy 5.3 (.venv-bpy5, Python
# 3.13), ruff, and mypy on the add-on. Extra arguments go to every pytest run.
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
# the core's tests on every core (pytest-xdist); a Ray test's group stays on one worker
run "core (.venv)" .venv/bin/python -m pytest tests/core -n auto --dist loadgroup "$@"
run "add-on logic without Blender (.venv)" .venv/bin/python -m pytest tests/addon_pure "$@"
run "Blender add-on (bpy 4.5, Python 3.11, .venv-blender)" .venv-blender/bin/python -m pytest tests/blender "$@"
# Blender 4.2, the oldest the extension declares (blender_manifest.toml): install, import, a round trip.
run "Blender add-on smoke (bpy 4.2, Python 3.11, .venv-bpy42)" .venv-bpy42/bin/python -m pytest \
  tests/blender/test_extension.py tests/blender/test_importer.py tests/blender/test_environment.py \
  tests/blender/test_operator.py -k "not thickness and not hung and not killed" "$@"
if [ -x .venv-bpy5/bin/python ]; then
  run "Blender add-on (bpy 5.3, Python 3.13, .venv-bpy5)" .venv-bpy5/bin/python -m pytest tests/blender "$@"
else
  printf '\n\033[1m== Blender add-on (bpy 5.3) ==\033[0m\nskipped: no Python 3.13 on this machine (BPY5_PYTHON=/path/to/python3.13 scripts/setup.sh --tests makes it)\n'
fi
run "lint (ruff)" .venv/bin/ruff check .
run "types (mypy + fake-bpy-module)" .venv-typecheck/bin/mypy
exit $status
