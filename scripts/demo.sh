#!/usr/bin/env bash
# Set up (if needed) and turn the bundled example photo into a coloured mesh and a preview:
# out/toy.ply and out/toy.preview.png. With the default models (downloaded once); on a machine
# that cannot reach the model hub, says so and uses the weight-free methods instead.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh || exit 1
mkdir -p out
.venv/bin/img2mesh examples/toy.jpg -o out/toy.ply --overwrite --report out/toy.json "$@"
rc=$?
if [ $rc -eq 3 ]; then
  echo
  echo "The default models could not be had (see above), so this demo falls back to the weight-free"
  echo "methods: background keyed by colour (--segment key) and depth from the silhouette (--depth inflate)."
  .venv/bin/img2mesh examples/toy.jpg -o out/toy.ply --overwrite --report out/toy.json \
    --segment key --depth inflate "$@"
  rc=$?
fi
[ $rc -eq 0 ] && echo "Wrote out/toy.ply, out/toy.preview.png and out/toy.json."
exit $rc
