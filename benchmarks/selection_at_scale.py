"""The synthetic selection of `segprune bench` (segprune.bench.measure.time_selections) at N = 15,000
and 45,000 alone, without a model: every registry method, keep 0.25, H = 896, float32, with each
product-like method's arithmetic floor interleaved. On a shared machine, one timed run of each slow
method (and of its floor):

    python benchmarks/selection_at_scale.py THREADS OUT.json
"""

import json
import sys
import time
from dataclasses import asdict

import torch

from segprune.bench import measure
from segprune.bench.measure import Options, synthetic_embeddings, time_selections
from segprune.methods import METHODS

threads = int(sys.argv[1])
out = sys.argv[2]
torch.set_num_threads(threads)
measure.SELECTION_SLOW_REPEATS = 1  # one timed run (and one of the floor) per slow method: the machine is shared
opts = Options(selection_repeats=10)
rows = []
for n in [15000, 45000]:
    scores, emb = synthetic_embeddings(n, 896, "cpu", torch.float32)
    t0 = time.perf_counter()
    rows += time_selections(scores, emb, 0.25, list(METHODS), opts, "synthetic", "cpu")
    print(n, "done in", round(time.perf_counter() - t0), "s", flush=True)
    json.dump([asdict(r) for r in rows], open(out, "w"), indent=1)
for r in rows:
    print(
        f"{r.method:22s} N={r.n} ms {r.select_ms:10.1f} cpu {r.select_cpu_ms:10.1f} runs {r.repeats}"
        + (f" floor {r.floor_ms:.1f} (cpu {r.floor_cpu_ms:.1f}) of_floor {r.of_floor:.2f}" if r.floor_ms else "")
    )
