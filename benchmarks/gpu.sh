#!/usr/bin/env bash
# One-shot GPU benchmark (issue 4): the full-size Qwen2-Audio-7B-Instruct and Audio Flamingo 3
# architectures with RANDOM weights in bfloat16, built on the GPU without a download; 30 s of audio
# at keep 1 / 0.5 / 0.25 / 0.1 beside the paper's A100 numbers, and Audio Flamingo 3's prefill
# against audio length up to 10 minutes. Sized for one H100 within 10 minutes, model construction
# included (hard stop after 9); writes gpu.md, gpu-*.json, gpu.html, gpu-device.txt and
# gpu-log.txt to $OUT (default benchmarks/gpu-out/).
#
# On this workplace's lent GPU machine (no network; its image has torch but transformers 5.17 and
# no plotly): once, here, `bash benchmarks/gpu_wheels.sh` (wheels into the git-ignored .whl/), then
# call the device tool with command "bash benchmarks/gpu.sh", carry [".whl"], timeout_s 600.
# Anywhere else: `pip install -e .` in a CUDA environment, then `bash benchmarks/gpu.sh`. Arguments
# go to `python -m segprune.bench.gpu` (e.g. `--preset tiny --device cpu --dtype float32` to try it).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-benchmarks/gpu-out}"
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
  site="$(mktemp -d)"
  trap 'rm -rf "$site"' EXIT
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl
  export PYTHONPATH="$site"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "no nvidia-smi"
  python3 -c "import torch, transformers; print('torch', torch.__version__, '| transformers', transformers.__version__)"
} | tee "$OUT/gpu-device.txt"
python3 -c "
import sys, transformers
from packaging.version import Version
if Version(transformers.__version__) < Version('5.24'):
    sys.exit('segprune needs transformers >= 5.24: run benchmarks/gpu_wheels.sh and carry .whl')
"
timeout 540 python3 -m segprune.bench.gpu --out "$OUT" "$@" 2>&1 | tee "$OUT/gpu-log.txt"
