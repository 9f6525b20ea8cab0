#!/usr/bin/env bash
# The wheels benchmarks/gpu.sh needs on a GPU machine without network whose image lacks them
# (transformers >= 5.24, plotly): run here, where pip reaches its registry; they land in .whl/,
# which this script adds to git's local exclude list. Both are pure-Python wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
exclude="$(git rev-parse --git-path info/exclude)"
mkdir -p "$(dirname "$exclude")"
grep -qx '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >>"$exclude"
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl transformers==5.24.0 plotly==7.1.0
