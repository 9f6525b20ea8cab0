"""`segprune bench`: where the real speedup is, measured honestly.

    segprune bench --model qwen2-audio --preset mid --seconds 30 --keep 1 0.5 0.25 0.1 --json out.json

For each audio length it times, in one process and interleaved: the language model's prefill on
the full prompt and on each pruned prompt (median, min, speedup, the token-count bound), the
encoder with segprune's scoring hook (the hook's own share), the peers' way of getting the same
scores (`output_attentions=True` on an eager encoder: time, peak memory), every selection method,
decode ms/token; then the growth of prefill time with audio length. Presets (`presets.py`)
build a family's real architecture with random weights, so the 7B models can be timed on any
machine that holds them, without a download; `mid` fits a CPU.

The JSON layout is `result.Result` (its docstring is the schema); `run.benchmark` makes one, `cli`
is the command (it imports no torch until the arguments are parsed, so `--help` is quick), and
`python -m segprune.bench.gpu` is the one-shot GPU run behind `benchmarks/gpu.sh`.
"""
