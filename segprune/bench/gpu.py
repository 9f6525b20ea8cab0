"""One-shot GPU benchmark (what `benchmarks/gpu.sh` runs): the full-size Qwen2-Audio-7B and
Audio Flamingo 3 architectures with random weights in bfloat16, 30 s of audio, keep 1 / 0.5 /
0.25 / 0.1, beside the paper's A100 numbers; Audio Flamingo 3 also at longer audio (up to 10 min)
for the growth of prefill time with length.

    python -m segprune.bench.gpu --out DIR                       # on the GPU machine
    python -m segprune.bench.gpu --out DIR --preset tiny --device cpu --dtype float32 --repeats 1

Writes DIR/gpu-<model>.json (schema `result.Result`), DIR/gpu.md (all tables, the paper
comparison) and DIR/gpu.html (figures of Audio Flamingo 3), each as soon as it is known.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path

import torch

from ..args import DTYPES, non_negative_int, positive_float, positive_int
from ..models.audioflamingo3 import AudioFlamingo3LM
from ..models.qwen2_audio import Qwen2AudioLM
from . import report
from .measure import Options
from .presets import build
from .result import SELECTION_N
from .run import benchmark

KEEP = [1.0, 0.5, 0.25, 0.1]


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m segprune.bench.gpu", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=os.environ.get("OUT", "."), help="output folder (default: $OUT or .)")
    p.add_argument("--preset", default="full")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="bfloat16", choices=DTYPES)
    p.add_argument("--repeats", type=positive_int, default=10)
    p.add_argument("--decode-tokens", type=non_negative_int, default=16)
    p.add_argument(
        "--selection-n",
        type=positive_int,
        nargs="+",
        default=list(SELECTION_N),
        help="token counts of the synthetic selection test of every method",
    )
    p.add_argument(
        "--long",
        type=positive_float,
        nargs="*",
        default=[30, 60, 120, 300, 600],
        help="audio lengths for Audio Flamingo 3 (Qwen2-Audio takes 30 s only)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dtype = getattr(torch, args.dtype)
    runs = [(Qwen2AudioLM, [30.0]), (AudioFlamingo3LM, sorted(set(args.long) | {30.0}))]
    sections = [
        "# segprune on a GPU: full-size architectures, random weights",
        "",
        f"`python -m segprune.bench.gpu {' '.join(sys.argv[1:] if argv is None else argv)}`",
        "",
    ]
    for family, seconds in runs:
        start = time.perf_counter()
        lm = build(family, args.preset, args.device, dtype)
        built = time.perf_counter() - start
        print(f"[gpu] {family.key}: built in {built:.1f} s", file=sys.stderr, flush=True)
        opts = Options(
            seconds=seconds,
            keep=KEEP,
            repeats=args.repeats,
            decode_tokens=args.decode_tokens,
            baseline_seconds=[30.0],
            selection_n=args.selection_n,
        )
        result = benchmark(lm, opts, args.preset)
        result.model["build_seconds"] = round(built, 1)
        (out / f"gpu-{family.key}.json").write_text(json.dumps(result.to_dict(), indent=1) + "\n")
        sections += [report.markdown(result), f"Model built on the device in {built:.1f} s.", ""]
        if family is AudioFlamingo3LM:
            sections += [
                "### Beside the paper (Audio Flamingo 3, 30 s; paper: NVIDIA A100)",
                "",
                report.paper_table(result),
                "",
            ]
            try:
                report.write_html(result, str(out / "gpu.html"))
            except ImportError:
                sections += ["(plotly is not installed here: no gpu.html)", ""]
        (out / "gpu.md").write_text("\n".join(sections))
        del lm
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    print("\n".join(sections))
    return 0


if __name__ == "__main__":
    sys.exit(main())
