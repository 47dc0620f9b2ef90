#!/usr/bin/env bash
# Set up img2mesh on Debian/Ubuntu: system packages, the core's environment (.venv) and,
# with --tests, the Blender test environments (.venv-blender: bpy 4.5 + numpy 1.x on Python 3.11;
# .venv-bpy5: bpy 5.3 + numpy 2 on Python 3.13) and Blender 3.4.
# Safe to run again: it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

TESTS=0
for arg in "$@"; do
  case "$arg" in
    --tests) TESTS=1 ;;
    -h|--help) sed -n '2,5p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

PY=${PYTHON:-python3}
# torch: the CPU build by default. On a machine whose pip reaches PyTorch's own index,
# TORCH_INDEX=https://download.pytorch.org/whl/cpu avoids the large CUDA download.
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null; then
    say "please install these system packages yourself: ${missing[*]}"; return 0
  fi
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  say "installing system packages: ${missing[*]}"
  $sudo apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

# open3d needs libusb; libgl1/libgomp1 for open3d and opencv on minimal systems
PKGS=(libusb-1.0-0 libgomp1)
# the real Blender binary for the headless tests, with numpy for its Python
[ $TESTS -eq 1 ] && PKGS+=(blender python3-numpy)
apt_install "${PKGS[@]}"

# The environments take about 3.5 GB (core) and 7 GB with --tests, plus pip's unpacking space:
# say so in one sentence before pip runs out of disk half-way.
if [ ! -x .venv/bin/python ] || { [ $TESTS -eq 1 ] && [ ! -x .venv-bpy5/bin/python ]; }; then
  NEED_GB=5; [ $TESTS -eq 1 ] && NEED_GB=9
  FREE_GB=$(df -Pk . | awk 'NR==2 {print int($4 / 1048576)}')
  TMP_FREE_GB=$(df -Pk "${TMPDIR:-/tmp}" | awk 'NR==2 {print int($4 / 1048576)}')
  [ "$TMP_FREE_GB" -lt "$FREE_GB" ] && FREE_GB=$TMP_FREE_GB
  if [ "$FREE_GB" -lt "$NEED_GB" ]; then
    say "only ${FREE_GB} GB of disk is free here; setting up needs about ${NEED_GB} GB: free some space and run again"
    exit 1
  fi
fi
if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $($PY --version)"
  $PY -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
fi
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  say "installing $TORCH_SPEC"
  if [ -n "${TORCH_INDEX:-}" ]; then
    .venv/bin/pip install -q "$TORCH_SPEC" --index-url "$TORCH_INDEX" 2>&1 | grep -v "is ignored" || true
  else
    .venv/bin/pip install -q "$TORCH_SPEC" 2>&1 | grep -v "is ignored" || true
  fi
fi
EXTRA=""
[ $TESTS -eq 1 ] && EXTRA="[test]"
say "installing img2mesh$EXTRA and its dependencies into .venv"
# setuptools tells every editable install about import precedence (an "Editable installation"
# notice that says nothing to a user of this project): its build-time notices are muted.
PYTHONWARNINGS="ignore::UserWarning" .venv/bin/pip install -q -e ".$EXTRA" 2>&1 | grep -v "is ignored" || true
.venv/bin/python -W ignore -c "import core, open3d, transformers, rembg, cv2" \
  || { say "the core's environment is incomplete (see the pip output above)"; exit 1; }

BPY_PY=${BPY_PYTHON:-$(scripts/find_python.sh 3.11 || echo "$PY")}
if [ $TESTS -eq 1 ] && ! .venv-blender/bin/python -c "import bpy" 2>/dev/null; then
  say "creating .venv-blender (bpy 4.5 needs Python 3.11)"
  rm -rf .venv-blender
  "$BPY_PY" -m venv .venv-blender
  .venv-blender/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
  .venv-blender/bin/pip install -q "bpy==4.5.*" "numpy<2" pytest 2>&1 | grep -v "is ignored" || true
  .venv-blender/bin/python -c "import bpy" || { say "bpy 4.5 could not be installed"; exit 1; }
fi
# Blender 4.2 (the oldest the extension declares) for a smoke track.
if [ $TESTS -eq 1 ] && ! .venv-bpy42/bin/python -c "import bpy" 2>/dev/null; then
  say "creating .venv-bpy42 (bpy 4.2, the oldest Blender the extension supports)"
  rm -rf .venv-bpy42
  "$BPY_PY" -m venv .venv-bpy42
  .venv-bpy42/bin/pip install -q "bpy==4.2.*" "numpy<2" pytest 2>&1 | grep -v "is ignored" || true
  .venv-bpy42/bin/python -c "import bpy" || { say "bpy 4.2 could not be installed"; exit 1; }
fi
# Blender 5.1-5.3 bundle Python 3.13 and numpy 2: the add-on's second track runs in bpy 5.3.
if [ $TESTS -eq 1 ] && ! .venv-bpy5/bin/python -c "import bpy" 2>/dev/null; then
  if PY313=$(scripts/find_python.sh 3.13); then
    say "creating .venv-bpy5 (bpy 5.3, Python 3.13 as in Blender 5.1-5.3)"
    rm -rf .venv-bpy5
    "$PY313" -m venv .venv-bpy5
    .venv-bpy5/bin/pip install -q "bpy==5.3.*" pytest 2>&1 | grep -v "is ignored" || true
    .venv-bpy5/bin/python -c "import bpy" || { say "bpy 5.3 could not be installed"; exit 1; }
  elif [ -n "${CI:-}" ]; then
    say "no Python 3.13 on this machine: CI needs it for the Blender 5.3 track"; exit 1
  else
    say "no Python 3.13 on this machine: the Blender 5.3 tests will be skipped (set BPY5_PYTHON)"
  fi
fi
if [ $TESTS -eq 1 ] && ! .venv-typecheck/bin/mypy --version >/dev/null 2>&1; then
  say "creating .venv-typecheck (mypy and fake-bpy-module, to type-check the add-on)"
  rm -rf .venv-typecheck
  $PY -m venv .venv-typecheck
  .venv-typecheck/bin/pip install -q "fake-bpy-module-4.5" mypy "numpy<2" 2>&1 | grep -v "is ignored" || true
  .venv-typecheck/bin/mypy --version >/dev/null || { say "mypy could not be installed"; exit 1; }
fi
say "ready"
