#!/usr/bin/env bash
# Regenerate the preview images the README shows (docs/images/), from the bundled example.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
.venv/bin/img2mesh examples/toy.jpg -o "$tmp/toy-inflate.ply" --segment key --depth inflate -q
.venv/bin/img2mesh examples/toy.jpg -o "$tmp/toy-depth.ply" --segment key --depth-map examples/toy_depth.png -q
cp "$tmp/toy-inflate.preview.png" "$tmp/toy-depth.preview.png" docs/images/
