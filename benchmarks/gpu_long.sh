#!/usr/bin/env bash
# Long audio on a GPU (issue 16): the full-size Audio Flamingo Next architecture with RANDOM weights
# in bfloat16 (segprune/presets/full-audio-flamingo-next.json, built on the GPU without a download),
# synthetic clips of 1, 5, 10, 20 and 30 minutes (N up to 45,000), prefill time and peak memory
# (host RSS and torch.cuda.max_memory_allocated) at keep 0.1 / 0.25 / 1 with Segmentwise. One child
# process per duration (each builds the model, ~17 GB of weights); writes long-full.md,
# long-full.json, gpu-device.txt and long-log.txt to $OUT (default benchmarks/gpu-out/).
#
# On this workplace's lent GPU machine (no network; its image has torch but an older transformers):
# once, here, `bash benchmarks/gpu_wheels.sh` (wheels into the git-ignored .whl/), then call the
# device tool with command "bash benchmarks/gpu_long.sh", carry [".whl"], timeout_s 600. Anywhere
# else: `pip install -e .` in a CUDA environment, then `bash benchmarks/gpu_long.sh`. Arguments go to
# benchmarks/long_audio.py (e.g. `--minutes 10 30` for a shorter run).
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
timeout 560 python3 benchmarks/long_audio.py --preset full --device cuda --dtype bfloat16 --repeats 5 \
  --out "$OUT/long-full.json" "$@" 2>"$OUT/long-log.txt" | tee "$OUT/long-full.md"
