"""The measurements, one function per table of the report; `run` strings them together.

Every comparison (full vs pruned prefill, segprune's hook vs the peers' baseline, one method vs
another) is timed with `segprune.timing.interleaved` in this one process: warm-up rounds first,
then round-robin repeats with device synchronisation, medians and minima. Memory is measured
apart from the timing, one phase at a time (`memory.PeakMemory`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch

from ..audio import from_samples
from ..compare import Setting, prune_tokens
from ..methods import DEFAULT_METHOD, DEFAULT_SEGMENTS, METHODS, keep_count, select
from ..models.base import AudioLM, AudioTokens
from ..scoring import pool_scores
from ..timing import interleaved
from .memory import PeakMemory
from .result import BaselineRow, EncoderRow, PrefillRow, SelectionRow

PROMPT = "Describe the audio in detail."
SELECTION_N = 15_000  # 10 minutes of audio at 25 tokens per second


@dataclass
class Options:
    """What to measure. `keep` may contain 1.0 (reported as the full model)."""

    seconds: list[float] = field(default_factory=lambda: [30.0])
    keep: list[float] = field(default_factory=lambda: [1.0, 0.5, 0.25, 0.1])
    methods: list[str] = field(default_factory=lambda: [DEFAULT_METHOD])
    segments: int = DEFAULT_SEGMENTS
    repeats: int = 5
    warmup: int = 1
    decode_tokens: int = 8
    baseline_seconds: list[float] = field(default_factory=lambda: [30.0])  # where to run the peers' way
    selection_n: int = SELECTION_N
    selection_repeats: int = 20
    prompt: str = PROMPT
    score_layers: int = 1  # scores averaged over the encoder's last L layers (the baseline needs L = 1)


def synthetic_audio(seconds: float, seed: int = 0):
    """`seconds` of deterministic noise at 16 kHz (timings do not depend on the content)."""
    rng = np.random.default_rng(seed)
    return from_samples((0.1 * rng.standard_normal(round(seconds * 16000))).astype(np.float32), 16000)


def cpu_timed(fn: Callable, sink: list[float]) -> Callable:
    """`fn`, noting the process CPU time (ms, all threads) of each call in `sink`. On a machine
    shared with other work, CPU time still counts only this process's work, where wall time
    also counts the waits for a core."""

    def timed():
        start = time.process_time()
        fn()
        sink.append((time.process_time() - start) * 1e3)

    return timed


def _log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- encoder and scoring


def peers_scores(lm: AudioLM, inputs) -> np.ndarray:
    """Scores the way the peers' code gets them: the whole encoder in eager attention with
    ``output_attentions``, then the last layer's weights [W, heads, T, T] summed over valid
    queries, averaged over heads and pooled like the encoder. Returns [N] float64 (same
    definition as segprune's hook). The encoder is put back to its own attention on exit."""
    tower = lm.model.model.audio_tower
    features = inputs["input_features"].to(lm.device, tower.dtype)
    mask = inputs[lm.feature_mask_key].to(lm.device)
    frames = lm._frame_lengths(mask.sum(-1))
    tokens = lm._token_lengths(frames).clamp(min=0)
    captured = {}
    saved = tower.config._attn_implementation
    handle = tower.register_forward_hook(lambda module, args, out: captured.update(attentions=out.attentions))
    tower.set_attn_implementation("eager")
    tower.config.output_attentions = True
    try:
        with torch.inference_mode():
            lm._audio_embeddings(features, mask)
            last = captured["attentions"][-1]
            scores = [
                pool_scores(last[w, :, :f, :f].float().sum(dim=1).mean(dim=0), int(n))
                for w, (f, n) in enumerate(zip(frames.tolist(), tokens.tolist()))
            ]
    finally:
        handle.remove()
        tower.config.output_attentions = False
        tower.set_attn_implementation(saved)
    return torch.cat(scores).double().cpu().numpy()


def measure_encoder(
    lm: AudioLM, inputs, seconds: float, opts: Options, baseline: bool
) -> tuple[AudioTokens, EncoderRow, BaselineRow | None]:
    """Encode the clip `repeats` times (hook timed inside), interleaved with the peers' baseline
    when `baseline`; then one pass of each under `PeakMemory`."""
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
    )
    if not baseline:
        return tokens, row, None
    with PeakMemory(lm.device) as peers_mem:
        scores = peers_scores(lm, inputs)
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
        max_score_diff=float(np.max(np.abs(scores - tokens.scores))),
    )
    return tokens, row, base


# ---------------------------------------------------------------- prefill and decode


def measure_prefill(lm: AudioLM, inputs, tokens: AudioTokens, seconds: float, opts: Options) -> list[PrefillRow]:
    """Full and every pruned prompt, prefilled `repeats` times round robin; then per prompt one
    pass under `PeakMemory` and one greedy generation for the decode time."""
    method = opts.methods[0]
    prompts = {1.0: lm.assemble(inputs, [tokens.embeddings])}
    for r in sorted({r for r in opts.keep if r < 1.0}, reverse=True):
        _, kept, _ = prune_tokens(tokens, Setting(method, r, opts.segments))
        prompts[r] = lm.assemble(inputs, [kept])
    cpu = {r: [] for r in prompts}
    fns = {r: cpu_timed(partial(lm.prefill, x), cpu[r]) for r, x in prompts.items()}
    t = interleaved(fns, opts.repeats, lm.device, opts.warmup)
    cpu_ms = {r: float(np.median(v[opts.warmup :])) for r, v in cpu.items()} if lm.device.type == "cpu" else None
    full = prompts[1.0]
    if opts.decode_tokens > 1:
        lm.generate(full, 2)  # warm-up: the first generate call pays one-time costs
    rows = []
    for r, x in prompts.items():
        with PeakMemory(lm.device) as mem:
            lm.prefill(x)
        decode = lm.generate(x, opts.decode_tokens)[0].decode_ms_per_token if opts.decode_tokens > 1 else None
        speedup = t[1.0].median / t[r].median
        bound = full.prompt_tokens / x.prompt_tokens
        rows.append(
            PrefillRow(
                seconds=seconds,
                n=tokens.n,
                keep_ratio=r,
                k=x.audio_tokens[0],
                method=method if r < 1.0 else "none",
                prompt_tokens_full=full.prompt_tokens,
                prompt_tokens=x.prompt_tokens,
                prefill_ms=t[r].median,
                prefill_ms_min=t[r].min,
                full_prefill_ms=t[1.0].median,
                full_prefill_ms_min=t[1.0].min,
                speedup=speedup,
                bound=bound,
                of_bound=speedup / bound,
                prefill_cpu_ms=cpu_ms[r] if cpu_ms else None,
                cpu_speedup=cpu_ms[1.0] / cpu_ms[r] if cpu_ms else None,
                decode_ms_per_token=None if decode is None or np.isnan(decode) else float(decode),
                peak_mb=mem.mb,
            )
        )
    return rows


# ---------------------------------------------------------------- selection


def measure_selection(
    scores: np.ndarray, embeddings: torch.Tensor, opts: Options, source: str, device
) -> list[SelectionRow]:
    """Every method of `opts.methods` at every keep ratio below 1 on `scores` [N] (and
    `embeddings` [N, H] for methods that merge), interleaved across methods."""
    rows = []
    for r in sorted({r for r in opts.keep if r < 1.0}, reverse=True):
        fns = {
            m: partial(
                select,
                m,
                scores,
                r,
                segments=opts.segments,
                embeddings=embeddings if METHODS[m].needs_embeddings else None,
            )
            for m in opts.methods
        }
        t = interleaved(fns, opts.selection_repeats, device, opts.warmup)
        k = keep_count(len(scores), r)
        rows += [SelectionRow(m, len(scores), r, k, t[m].median, t[m].min, source) for m in opts.methods]
    return rows


def synthetic_selection(lm: AudioLM, opts: Options) -> list[SelectionRow]:
    """Selection on random scores of length `opts.selection_n` (10 minutes of audio by default)."""
    rng = np.random.default_rng(0)
    hidden = lm.model.get_input_embeddings().weight.shape[1]
    embeddings = torch.randn(opts.selection_n, hidden, device=lm.device, dtype=lm.dtype)
    return measure_selection(rng.random(opts.selection_n), embeddings, opts, "synthetic", lm.device)


# ---------------------------------------------------------------- everything


def run(lm: AudioLM, opts: Options, log: Callable[[str], None] = _log) -> dict:
    """All measurements for every audio length; returns the row lists by table name."""
    out = {"prefill": [], "encoder": [], "baseline": [], "selection": []}
    for seconds in opts.seconds:
        inputs = lm.inputs(synthetic_audio(seconds), opts.prompt)
        # the peers' baseline scores the last layer only: compare it with ours at L = 1
        baseline = opts.score_layers == 1 and any(abs(seconds - b) < 1e-9 for b in opts.baseline_seconds)
        log(
            f"{seconds:g} s: encoder x{opts.repeats}"
            + (" interleaved with the output_attentions baseline" if baseline else "")
        )
        tokens, enc, base = measure_encoder(lm, inputs, seconds, opts, baseline)
        out["encoder"].append(enc)
        if base is not None:
            out["baseline"].append(base)
        log(f"{seconds:g} s: N = {tokens.n}, prefill full and keep {sorted(opts.keep, reverse=True)} x{opts.repeats}")
        out["prefill"] += measure_prefill(lm, inputs, tokens, seconds, opts)
        out["selection"] += measure_selection(tokens.scores, tokens.embeddings, opts, "clip", lm.device)
    log(f"selection on N = {opts.selection_n} synthetic scores")
    out["selection"] += synthetic_selection(lm, opts)
    return out
