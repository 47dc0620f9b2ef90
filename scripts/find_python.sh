#!/usr/bin/env bash
# Print the path of a Python X.Y (e.g. `scripts/find_python.sh 3.13`) and exit 0, or exit 1 when
# there is none. Looks at $BPY5_PYTHON (for 3.13), pythonX.Y on the PATH, pyenv's and uv's
# installed versions, then /usr/bin and /usr/local/bin.
set -u
want=${1:?usage: find_python.sh X.Y}
works() { [ -n "$1" ] && "$1" -c "import sys, venv; sys.exit(sys.version_info[:2] != tuple(map(int, '$want'.split('.'))))" >/dev/null 2>&1; }
candidates=()
[ "$want" = 3.13 ] && [ -n "${BPY5_PYTHON:-}" ] && candidates+=("$BPY5_PYTHON")
command -v "python$want" >/dev/null 2>&1 && candidates+=("$(command -v "python$want")")
if command -v pyenv >/dev/null 2>&1; then
  for v in $(pyenv versions --bare 2>/dev/null | grep -E "^$want(\.[0-9]+)?$" | sort -rV); do
    candidates+=("$(pyenv root)/versions/$v/bin/python$want")
  done
fi
if command -v uv >/dev/null 2>&1; then
  candidates+=("$(uv python find "$want" 2>/dev/null)")
fi
candidates+=("/usr/bin/python$want" "/usr/local/bin/python$want")
for c in "${candidates[@]}"; do
  if works "$c"; then echo "$c"; exit 0; fi
done
exit 1
