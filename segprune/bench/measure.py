"""The measurements, one function per table of the report; `run` strings them together.

Every comparison (full vs pruned prefill, segprune's hook vs the peers' baseline, one method vs
another) is timed with `segprune.timing.interleaved` in this one process: warm-up rounds first,
then round-robin repeats with device synchronisation, medians and minima. Memory is measured
apart from the timing, one phase at a time (`memory.PeakMemory`).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch

from ..audio import from_samples
from ..comparison import EncodedClip, InProcess, Setting, encode_clip, prepare, run_variants
from ..methods import DEFAULT_METHOD, METHODS, keep_count, make_method, select, selection_multiply_adds
from ..models.base import AudioLM, NoEagerBaseline
from ..models.types import AudioTokens
from ..timing import Repeats, Stopwatch, interleaved
from ..timing import speedup as speedup_of
from .estimate import FirstLook, Progress, plan
from .memory import PeakMemory
from .result import (
    SELECTION_KEEP,
    SELECTION_N,
    SELECTION_SLOW_MS,
    SELECTION_SLOW_REPEATS,
    BaselineRow,
    EncoderRow,
    PrefillRow,
    SelectionRow,
)

PROMPT = "Describe the audio in detail."


@dataclass
class Options:
    """What to measure. `keep` may contain 1.0 (reported as the full model)."""

    seconds: list[float] = field(default_factory=lambda: [30.0])
    keep: list[float] = field(default_factory=lambda: [1.0, 0.5, 0.25, 0.1])
    methods: list[str] = field(default_factory=lambda: [DEFAULT_METHOD])
    options: dict = field(default_factory=dict)  # method options; each method gets the ones it has
    repeats: int = 5
    warmup: int = 1
    decode_tokens: int = 8
    baseline_seconds: list[float] = field(default_factory=lambda: [30.0])  # where to run the peers' way
    selection_n: list[int] = field(default_factory=lambda: list(SELECTION_N))  # synthetic selection: every method
    selection_keep: float = SELECTION_KEEP
    selection_hidden: int | None = None  # H of the synthetic embeddings (None: the model's LLM width)
    selection_repeats: int = 20  # timed runs of the quick methods (result.SELECTION_SLOW_MS)
    prompt: str = PROMPT
    score_layers: int = 1  # scores averaged over the encoder's last L layers (the baseline needs L = 1)


def synthetic_audio(seconds: float, seed: int = 0):
    """`seconds` of deterministic noise at 16 kHz (timings do not depend on the content)."""
    rng = np.random.default_rng(seed)
    return from_samples((0.1 * rng.standard_normal(round(seconds * 16000))).astype(np.float32), 16000)


def log_progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- encoder and scoring


def peers_scores(lm: AudioLM, inputs) -> np.ndarray:
    """Scores the way the peers' code gets them (the whole encoder in eager attention with
    ``output_attentions``; `AudioLM.eager_scores`): [N] float64, the same definition as the hook's."""
    return lm.eager_scores(inputs)


def measure_encoder(
    lm: AudioLM, inputs, seconds: float, opts: Options, baseline: bool
) -> tuple[AudioTokens, EncoderRow, BaselineRow | None]:
    """Encode the clip `repeats` times (hook timed inside), interleaved with the peers' baseline
    when `baseline` and the family has one (else the row says why not); then one pass of each
    under `PeakMemory`."""
    no_baseline = None
    if baseline:
        try:
            peers_scores(lm, inputs)
        except NoEagerBaseline as why:
            baseline, no_baseline = False, str(why)
    runs: list[AudioTokens] = []
    fns: dict[str, Callable] = {"ours": lambda: runs.append(lm.encode(inputs, opts.score_layers)[0])}
    if baseline:
        fns["peers"] = partial(peers_scores, lm, inputs)
    t = interleaved(fns, opts.repeats, lm.device, opts.warmup)
    timed = runs[opts.warmup :]
    tokens = timed[-1]
    with PeakMemory(lm.device) as ours_mem:
        lm.encode(inputs, opts.score_layers)
    row = EncoderRow(
        seconds=seconds,
        n=tokens.n,
        windows=len(tokens.window_starts),
        encode_ms=t["ours"].median,
        encode_ms_min=t["ours"].min,
        encoder_ms=float(np.median([r.encoder_ms for r in timed])),
        scoring_ms=float(np.median([r.scoring_ms for r in timed])),
        scoring_share=float(np.median([r.scoring_ms / r.encoder_ms for r in timed])),
        peak_mb=ours_mem.mb,
        baseline_note=no_baseline,
    )
    if not baseline:
        return tokens, row, None
    with PeakMemory(lm.device) as peers_mem:
        peers_scores(lm, inputs)
    peers, same_pass = lm.eager_scores(inputs, with_hook=True)
    base = BaselineRow(
        seconds=seconds,
        n=tokens.n,
        ours_ms=t["ours"].median,
        ours_ms_min=t["ours"].min,
        peers_ms=t["peers"].median,
        peers_ms_min=t["peers"].min,
        ours_peak_mb=ours_mem.mb,
        peers_peak_mb=peers_mem.mb,
        memory_ratio=peers_mem.mb / ours_mem.mb if ours_mem.mb > 0 else float("inf"),
        time_ratio=t["peers"].median / t["ours"].median,
        max_score_diff=float(np.max(np.abs(peers - same_pass))),
        max_score_diff_backends=float(np.max(np.abs(peers - tokens.scores))),
    )
    return tokens, row, base


# ---------------------------------------------------------------- prefill and decode


class CpuTimed(InProcess):
    """The in-process engine, noting the process CPU time (ms, all threads) of every prefill per
    prompt. On a machine shared with other work, CPU time counts only this process's work, where
    wall time also counts the waits for a core."""

    def __init__(self, lm: AudioLM):
        super().__init__(lm)
        self.cpu_ms: dict[int, list[float]] = {}

    def prefill(self, x):
        start = time.process_time()
        out = super().prefill(x)
        self.cpu_ms.setdefault(id(x), []).append((time.process_time() - start) * 1e3)
        return out


def measure_prefill(lm: AudioLM, clip: EncodedClip, seconds: float, opts: Options) -> list[PrefillRow]:
    """The full and every pruned prompt through the one loop (`compare.prepare` and
    `compare.run_variants`: prefills timed round robin, then `decode_tokens` greedy steps each);
    then per prompt one prefill under `PeakMemory`."""
    method = opts.methods[0]
    ratios = sorted({r for r in opts.keep if r < 1.0}, reverse=True)
    settings = [Setting(method, r, **_options(method, opts.options)) for r in ratios]
    variants = prepare(lm, clip, settings)
    engine = CpuTimed(lm)
    decode_tokens = opts.decode_tokens if opts.decode_tokens > 1 else 0
    runs = run_variants(variants, engine, decode_tokens, Repeats.fixed(opts.repeats, opts.warmup), lm.device)
    on_cpu = lm.device.type == "cpu"
    cpu_ms = [float(np.median(engine.cpu_ms[id(v.inputs)][opts.warmup :])) for v in variants] if on_cpu else None
    full = runs[0]
    rows = []
    for i, (ratio, variant, run) in enumerate(zip([1.0, *ratios], variants, runs)):
        with PeakMemory(lm.device) as mem:
            lm.prefill(variant.inputs)
        decode = run.decode_ms_per_token
        verdict = speedup_of(full.prefill, run.prefill, full.prompt_tokens, run.prompt_tokens)
        speedup, bound = verdict.ratio, verdict.bound
        rows.append(
            PrefillRow(
                seconds=seconds,
                n=clip.tokens.n,
                keep_ratio=ratio,
                k=run.audio_tokens,
                method=method if ratio < 1.0 else "none",
                prompt_tokens_full=full.prompt_tokens,
                prompt_tokens=run.prompt_tokens,
                prefill_ms=run.prefill_ms,
                prefill_ms_min=run.prefill_ms_min,
                full_prefill_ms=full.prefill_ms,
                full_prefill_ms_min=full.prefill_ms_min,
                speedup=speedup,
                bound=bound,
                of_bound=speedup / bound,
                prefill_cpu_ms=cpu_ms[i] if cpu_ms else None,
                cpu_speedup=cpu_ms[0] / cpu_ms[i] if cpu_ms else None,
                decode_ms_per_token=None if not np.isfinite(decode) else float(decode),
                peak_mb=mem.mb,
                prefill_ms_spread=list(run.prefill_ms_spread),
                speedup_interval=[verdict.low, verdict.high],
                verdict=verdict.verdict,
                suspect=verdict.suspect,
            )
        )
    return rows


def _options(method: str, options: dict) -> dict:
    """The options of `options` that `method` has."""
    cls = METHODS[method]
    return {k: v for k, v in options.items() if cls.takes(k)}


# ---------------------------------------------------------------- selection

FLOOR_COLUMNS = 512  # columns per block of the floor's matrix product (its result buffer is reused)


def _cpu_timed(fn: Callable, cpu: list[float]) -> Callable:
    """fn, noting the process CPU time (ms, all threads) of every call in `cpu`."""

    def timed():
        start = time.process_time()
        fn()
        cpu.append((time.process_time() - start) * 1e3)

    return timed


def floor_product(embeddings: torch.Tensor, multiply_adds: int) -> Callable[[], None]:
    """A function doing `multiply_adds` multiply-adds as one float32 product of embeddings [N, H]
    with a random [H, C] matrix, C = ceil(multiply_adds / (N * H)), in column blocks of
    FLOOR_COLUMNS into one reused [N, FLOOR_COLUMNS] buffer (no N x C result to write)."""
    n, h = embeddings.shape
    work = torch.promote_types(embeddings.dtype, torch.float32)
    x = embeddings.to(work)
    columns = -(-multiply_adds // (n * h))
    w = torch.randn(h, columns, dtype=work, device=embeddings.device)
    out = torch.empty(n, min(FLOOR_COLUMNS, columns), dtype=work, device=embeddings.device)

    def product():
        for lo in range(0, columns, FLOOR_COLUMNS):
            block = w[:, lo : lo + FLOOR_COLUMNS]
            torch.mm(x, block, out=out[:, : block.shape[1]])

    return product


def time_selections(
    scores: np.ndarray, embeddings: torch.Tensor, keep: float, methods: list[str], opts: Options, source: str, device
) -> list[SelectionRow]:
    """Time each of `methods` on `scores` [N] (and `embeddings` [N, H]) at `keep`, wall and CPU time.

    One untimed call each first; the methods that took under SELECTION_SLOW_MS are then timed together,
    interleaved, `opts.selection_repeats` times, each slower one alone SELECTION_SLOW_REPEATS times; a method
    whose work is a product's is interleaved with its arithmetic floor (`floor_product`)."""
    n, h = len(scores), embeddings.shape[1]
    k = keep_count(n, keep)
    calls = {
        m: partial(
            select,
            make_method(m, **_options(m, opts.options)),
            scores,
            keep,
            embeddings=embeddings if METHODS[m].needs_embeddings else None,
        )
        for m in methods
    }
    macs_of = {m: selection_multiply_adds(m, n, k, h, opts.options) for m in methods}
    probe = interleaved(calls, 1, device, warmup=0)
    quick = [m for m in methods if probe[m].median <= SELECTION_SLOW_MS]
    groups = [(quick, opts.selection_repeats)] + [([m], SELECTION_SLOW_REPEATS) for m in methods if m not in quick]
    rows = {}
    for group, repeats in groups:
        if not group:
            continue
        cpu = {name: [] for name in group}
        fns = {m: _cpu_timed(calls[m], cpu[m]) for m in group}
        floors = {}
        for m in group:
            if macs_of[m]:
                floors[m] = f"{m} floor"
                cpu[floors[m]] = []
                fns[floors[m]] = _cpu_timed(floor_product(embeddings, macs_of[m]), cpu[floors[m]])
        t = interleaved(fns, Repeats.fixed(repeats, warmup=0), device)
        on_cpu = torch.device(device).type == "cpu"
        for m in group:
            floor = t[floors[m]] if m in floors else None
            rows[m] = SelectionRow(
                method=m,
                n=n,
                keep_ratio=keep,
                k=k,
                select_ms=t[m].median,
                select_ms_min=t[m].min,
                source=source,
                hidden=h,
                repeats=repeats,
                select_cpu_ms=float(np.median(cpu[m])) if on_cpu else None,
                multiply_adds=macs_of[m],
                floor_ms=floor.median if floor else None,
                floor_cpu_ms=float(np.median(cpu[floors[m]])) if floor and on_cpu else None,
                of_floor=t[m].median / floor.median if floor else None,
            )
    return [rows[m] for m in methods]


def measure_selection(
    scores: np.ndarray, embeddings: torch.Tensor, opts: Options, source: str, device
) -> list[SelectionRow]:
    """Every method of `opts.methods` at every keep ratio below 1 on a clip's `scores` [N] (and
    `embeddings` [N, H] for methods that need them)."""
    rows = []
    for r in sorted({r for r in opts.keep if r < 1.0}, reverse=True):
        rows += time_selections(scores, embeddings, r, opts.methods, opts, source, device)
    return rows


def synthetic_embeddings(n: int, hidden: int, device, dtype) -> tuple[np.ndarray, torch.Tensor]:
    """Random scores [n] and embeddings [n, hidden] (seed 0) on `device` in `dtype`."""
    g = torch.Generator(device="cpu").manual_seed(0)
    return np.random.default_rng(0).random(n), torch.randn(n, hidden, generator=g).to(device=device, dtype=dtype)


def synthetic_selection(lm: AudioLM, opts: Options, n: int) -> list[SelectionRow]:
    """Every registry method at `opts.selection_keep` on random scores and embeddings [n, H] (H: the
    model's LLM width unless `opts.selection_hidden`), on the model's device and dtype. `run` calls
    it for each N of `opts.selection_n` (10 and 30 minutes of audio by default)."""
    hidden = opts.selection_hidden or lm.architecture()["llm_hidden"]
    scores, embeddings = synthetic_embeddings(n, hidden, lm.device, lm.dtype)
    return time_selections(scores, embeddings, opts.selection_keep, list(METHODS), opts, "synthetic", lm.device)


# ---------------------------------------------------------------- run time


def first_look(lm: AudioLM, clip: EncodedClip, encode_ms: float, opts: Options) -> FirstLook:
    """The first measurements that `estimate.plan` prices the run from, on the first clip (whose
    encoder pass, `encode_ms`, is already done): see `segprune.bench.estimate`."""
    method = opts.methods[0]
    lowest = min([r for r in opts.keep if r < 1.0], default=None)
    settings = [Setting(method, lowest, **_options(method, opts.options))] if lowest else []
    variants = prepare(lm, clip, settings)
    engine = InProcess(lm)
    points = []
    for v in (variants[-1], variants[0]):  # the shortest prompt (or the full one), then the full one
        with Stopwatch(lm.device) as sw:
            engine.prefill(v.inputs)
        points.append((v.inputs.prompt_tokens, sw.ms))
    step = 0.0
    if opts.decode_tokens > 1:
        g = engine.generate(variants[-1].inputs, 2)
        step = g.decode_ms_per_token if math.isfinite(g.decode_ms_per_token) else 0.0
    n0 = min(opts.selection_n, default=SELECTION_N[0])  # every registry method once at the smallest synthetic N
    hidden = opts.selection_hidden or lm.architecture()["llm_hidden"]
    scores, embeddings = synthetic_embeddings(n0, hidden, lm.device, lm.dtype)
    select_ms = {}
    for m in METHODS:
        fn = partial(
            select,
            make_method(m, **_options(m, opts.options)),
            scores,
            opts.selection_keep,
            embeddings=embeddings if METHODS[m].needs_embeddings else None,
        )
        with Stopwatch(lm.device) as sw:
            fn()
        select_ms[m] = sw.ms
    windows = len(clip.tokens.window_starts)
    return FirstLook(encode_ms, windows, points, step, select_ms, n0, hidden, opts.selection_keep, dict(opts.options))


# ---------------------------------------------------------------- everything


def run(lm: AudioLM, opts: Options, log: Callable[[str], None] = log_progress) -> dict:
    """All measurements for every audio length; returns the row lists by table name. Progress goes
    to `log`, with an estimate of the run time from a first measurement (`estimate`)."""
    out = {"prefill": [], "encoder": [], "baseline": [], "selection": []}
    progress = Progress(log)
    clips = {}
    for i, seconds in enumerate(opts.seconds):
        if i > 0:
            progress.next()  # this length's encoder phase, its own encoding first
        with Stopwatch(lm.device) as sw:
            clip = encode_clip(lm, synthetic_audio(seconds), opts.prompt, max(opts.decode_tokens, 1), opts.score_layers)
        if i == 0:
            log(
                f"{seconds:g} s: one encoder pass, one prefill of the full and of the shortest prompt, one of each selection"
            )
            look = first_look(lm, clip, sw.ms, opts)
            log(look.summary())
            for s in opts.seconds:  # the other lengths' token counts, from the processor alone
                inputs = clip.inputs if s == seconds else lm.inputs(synthetic_audio(s), opts.prompt)
                n = lm.audio_counts(inputs)[0]
                clips[s] = (n, lm.prompt_tokens(inputs), math.ceil(min(s, lm.max_seconds) / lm.window_seconds))
            progress.estimate(plan(opts, look, clips))
            progress.next()
        # the peers' baseline scores the last layer only: compare it with ours at L = 1
        baseline = opts.score_layers == 1 and any(abs(seconds - b) < 1e-9 for b in opts.baseline_seconds)
        tokens, enc, base = measure_encoder(lm, clip.inputs, seconds, opts, baseline)
        out["encoder"].append(enc)
        if base is not None:
            out["baseline"].append(base)
        progress.next()
        out["prefill"] += measure_prefill(lm, clip, seconds, opts)
        out["selection"] += measure_selection(tokens.scores, tokens.embeddings, opts, "clip", lm.device)
    for n in opts.selection_n:
        progress.next()
        out["selection"] += synthetic_selection(lm, opts, n)
    progress.finish()
    return out
