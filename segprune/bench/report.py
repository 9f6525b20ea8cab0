"""From measured rows to what a person reads: growth exponents, target checks, markdown tables
and a plotly HTML figure (speedup vs keep ratio; prefill time vs audio length)."""

from __future__ import annotations

import math

import numpy as np

from .result import PrefillRow, Result, ScalingFit, Target

PAPER_AF3_A100_MS = {1.0: 162.5, 0.5: 34.4, 0.25: 29.6, 0.1: 26.9}  # Gibier et al., AF3 prefill on an A100


def growth_exponent(x: list[float], ms: list[float]) -> float | None:
    """Least-squares slope of log(ms) on log(x): time grows like x ** exponent (None below 2 x's)."""
    if len(set(x)) < 2:
        return None
    return float(np.polyfit(np.log(x), np.log(ms), 1)[0])


def scaling(rows: list[PrefillRow]) -> list[ScalingFit]:
    fits = []
    for r in sorted({row.keep_ratio for row in rows}, reverse=True):
        mine = sorted((row for row in rows if row.keep_ratio == r), key=lambda row: row.seconds)
        seconds, prompt, ms = [x.seconds for x in mine], [x.prompt_tokens for x in mine], [x.prefill_ms for x in mine]
        fits.append(ScalingFit(r, growth_exponent(seconds, ms), growth_exponent(prompt, ms), seconds, prompt, ms))
    return fits


def targets(result: Result, encoder_layers: int) -> list[Target]:
    """Issue 4's and 16's targets, where this run has the measurement (30 s clip, keep 0.25, synthetic
    selection at N = 15,000 and 45,000: every method but DivPrune under 50 ms at 45,000, DivPrune
    within 2x of its arithmetic floor)."""
    out = []
    for row in result.prefill:
        if row.seconds == 30 and row.keep_ratio == 0.25:
            out.append(
                Target(
                    "prefill speedup / token bound (30 s, keep 0.25)",
                    row.of_bound,
                    ">= 0.90",
                    row.of_bound >= 0.90,
                    f"x{row.speedup:.2f} measured, x{row.bound:.2f} bound ({row.prompt_tokens_full} -> {row.prompt_tokens} tokens)",
                )
            )
            if row.cpu_speedup is not None:
                out.append(
                    Target(
                        "same, from process CPU time (robust to a shared machine)",
                        row.cpu_speedup / row.bound,
                        ">= 0.90",
                        row.cpu_speedup / row.bound >= 0.90,
                        f"x{row.cpu_speedup:.2f} in CPU time (medians), x{row.bound:.2f} bound",
                    )
                )
    for row in result.encoder:
        if row.seconds == 30 and encoder_layers >= 12:
            out.append(
                Target(
                    f"scoring hook / encoder time (30 s, {encoder_layers}-layer encoder)",
                    row.scoring_share,
                    "<= 0.05",
                    row.scoring_share <= 0.05,
                    f"{row.scoring_ms:.1f} ms hook vs {row.encoder_ms:.1f} ms encoder (medians)",
                )
            )
    for row in result.baseline:
        if row.seconds == 30:
            out.append(
                Target(
                    "peak memory, output_attentions baseline / ours (30 s)",
                    row.memory_ratio,
                    ">= 3",
                    row.memory_ratio >= 3,
                    f"{row.peers_peak_mb:.0f} MiB vs {row.ours_peak_mb:.0f} MiB",
                )
            )
    for row in result.selection:
        if row.source != "synthetic" or row.keep_ratio != 0.25:
            continue
        if row.method == "divprune" and row.n >= 15_000 and row.of_floor is not None:
            out.append(
                Target(
                    f"DivPrune selection / its arithmetic floor (N = {row.n}, keep 0.25, H = {row.hidden})",
                    row.of_floor,
                    "<= 2",
                    row.of_floor <= 2.0,
                    f"{row.select_ms:.0f} ms vs {row.floor_ms:.0f} ms for its {row.multiply_adds:.2e} multiply-adds "
                    f"as one matrix product (medians of {row.repeats})",
                )
            )
        elif row.method != "divprune" and row.n >= 45_000:
            out.append(
                Target(
                    f"selection time of {row.method} (N = {row.n}, keep 0.25, H = {row.hidden})",
                    row.select_ms,
                    "< 50 ms",
                    row.select_ms < 50.0,
                    f"median of {row.repeats}, min {row.select_ms_min:.1f} ms"
                    + (f", CPU {row.select_cpu_ms:.1f} ms" if row.select_cpu_ms is not None else "")
                    + (f"; its floor {row.floor_ms:.0f} ms" if row.floor_ms is not None else ""),
                )
            )
    for row in result.selection:
        if row.source == "synthetic" and row.n >= 15_000 and row.method == "segmentwise" and row.keep_ratio == 0.25:
            out.append(
                Target(
                    f"segmentwise selection time (N = {row.n}, keep 0.25)",
                    row.select_ms,
                    "< 1 ms",
                    row.select_ms < 1.0,
                    f"median of {result.options.get('selection_repeats')}, min {row.select_ms_min:.3f} ms",
                )
            )
    return out


# ---------------------------------------------------------------- markdown


def _fmt(x, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def _ratio(x: float | None) -> str:
    return "-" if x is None else f"x{x:.2f}"


def _interval(bounds: list[float] | None) -> str:
    """[low, high] of a speedup as x1.80-x2.10 (none with fewer than 3 runs a side)."""
    if not bounds or not math.isfinite(bounds[1]) or bounds[0] <= 0:
        return "-"
    return f"x{bounds[0]:.2f}-x{bounds[1]:.2f}"


def _count(n: int) -> str:
    return f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.1f} M"


# One table per row type: (header, how to show a row's value).
CLIP = [("audio s", lambda r: _fmt(r.seconds, 0)), ("N", lambda r: r.n)]
PREFILL = [
    *CLIP,
    ("keep", lambda r: f"{r.keep_ratio:g}"),
    ("K", lambda r: r.k),
    ("prompt", lambda r: r.prompt_tokens),
    ("prefill ms", lambda r: _fmt(r.prefill_ms)),
    ("min", lambda r: _fmt(r.prefill_ms_min)),
    ("speedup", lambda r: _ratio(r.speedup)),
    ("interval", lambda r: _interval(r.speedup_interval)),
    ("verdict", lambda r: r.verdict + (" (suspect)" if r.suspect else "") if r.verdict else "-"),
    ("token bound", lambda r: _ratio(r.bound)),
    ("of bound", lambda r: f"{100 * r.of_bound:.0f} %"),
    ("CPU-time speedup", lambda r: _ratio(r.cpu_speedup)),
    ("decode ms/tok", lambda r: _fmt(r.decode_ms_per_token)),
    ("peak MiB", lambda r: _fmt(r.peak_mb, 0)),
]
ENCODER = [
    *CLIP,
    ("windows", lambda r: r.windows),
    ("encode ms", lambda r: _fmt(r.encode_ms)),
    ("min", lambda r: _fmt(r.encode_ms_min)),
    ("encoder ms (no hook)", lambda r: _fmt(r.encoder_ms)),
    ("hook ms", lambda r: _fmt(r.scoring_ms)),
    ("hook share", lambda r: f"{100 * r.scoring_share:.1f} %"),
    ("peak MiB", lambda r: _fmt(r.peak_mb, 0)),
]
BASELINE = [
    *CLIP,
    ("ours ms", lambda r: _fmt(r.ours_ms)),
    ("peers ms", lambda r: _fmt(r.peers_ms)),
    ("time ratio", lambda r: _ratio(r.time_ratio)),
    ("ours peak MiB", lambda r: _fmt(r.ours_peak_mb, 0)),
    ("peers peak MiB", lambda r: _fmt(r.peers_peak_mb, 0)),
    ("memory ratio", lambda r: f"x{r.memory_ratio:.1f}"),
    ("max score diff (same pass)", lambda r: f"{r.max_score_diff:.1e}"),
    ("vs our SDPA pass", lambda r: f"{r.max_score_diff_backends:.1e}"),
]
SELECTION = [
    ("method", lambda r: r.method),
    ("N", lambda r: r.n),
    ("H", lambda r: r.hidden),
    ("keep", lambda r: f"{r.keep_ratio:g}"),
    ("K", lambda r: r.k),
    ("ms", lambda r: _fmt(r.select_ms, 3)),
    ("min", lambda r: _fmt(r.select_ms_min, 3)),
    ("CPU ms", lambda r: _fmt(r.select_cpu_ms, 3)),
    ("runs", lambda r: r.repeats),
    ("floor ms", lambda r: _fmt(r.floor_ms, 1)),
    ("of floor", lambda r: _ratio(r.of_floor)),
    ("scores", lambda r: r.source),
]
FLOOR_NOTE = (
    "ms: median wall time of one selection (min: the fastest run; CPU ms: process CPU time, all threads). "
    "floor ms: for the methods whose work is a matrix product's (divprune K·N·H multiply-adds, visionzip "
    "K_c·(N−K)·H where its window holds every target), that many multiply-adds as one float32 product "
    "of the embeddings [N, H] with a random [H, C] matrix (in column blocks, one reused result buffer), timed "
    "interleaved with the method; of floor = ms / floor ms."
)
TARGETS = [
    ("target", lambda t: t.name),
    ("measured", lambda t: f"{t.value:.3g}"),
    ("goal", lambda t: t.target),
    ("met", lambda t: "yes" if t.met else "**no**"),
    ("detail", lambda t: t.detail),
]


def table(columns: list[tuple], rows: list) -> str:
    """A markdown table of `rows`, one column per (header, value function)."""
    lines = ["| " + " | ".join(h for h, _ in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(show(row)) for _, show in columns) + " |" for row in rows]
    return "\n".join(lines)


def _header(result: Result) -> list[str]:
    m, mc, o = result.model, result.machine, result.options
    params = m.get("params") or {}
    model = (
        f"{m['name']}; {_count(params.get('total', 0))} parameters (audio encoder "
        f"{_count(params.get('audio_encoder', 0))}, {m.get('encoder_layers')} layers; LLM {m.get('llm_layers')} "
        f"layers, {m.get('llm_hidden')} wide)"
    )
    machine = (
        f"{mc['processor']}, {mc['cpus']} CPUs, torch {mc['torch']} with {mc['threads']} thread(s), transformers "
        f"{mc['transformers']}, GPU: {mc.get('gpu') or 'none'}; load average {mc.get('load_before')} before, "
        f"{mc.get('load_after')} after"
    )
    timing = (
        f"medians (and minima) of {o['repeats']} runs after {o['warmup']} warm-up round(s), compared functions "
        f"interleaved in one process; speedup interval: q1/q3 to q3/q1 of the two timings, verdict 'within noise' "
        f"where it holds 1; prompt {o['prompt']!r}; kept tokens chosen by {o['methods'][0]}"
    )
    lines = [f"## segprune bench · {m['key']} · {m.get('preset') or 'pretrained'} · {m['device']} {m['dtype']}", ""]
    if result.note:
        lines += [f"**{result.note}**", ""]
    return [*lines, f"- model: {model}", f"- machine: {machine}", f"- timing: {timing}", f"- memory: {mc['memory']}"]


def markdown(result: Result) -> str:
    """The whole report as markdown: header, one table per measurement, scaling, targets."""
    sections = [
        ("Prefill (LLM over the whole prompt + LM head on the last position)", table(PREFILL, result.prefill)),
        ("Encoder and scoring hook", table(ENCODER, result.encoder)),
    ]
    title = "Scores: segprune's hook vs the peers' output_attentions on an eager encoder"
    if result.baseline:
        sections.append((title, table(BASELINE, result.baseline)))
    notes = sorted({e.baseline_note for e in result.encoder if e.baseline_note})
    if notes:
        sections.append((title, "No output_attentions baseline for this family: " + " ".join(notes)))
    sections.append(("Selection", table(SELECTION, result.selection) + "\n\n" + FLOOR_NOTE))
    fitted = [f for f in result.scaling if f.exponent is not None]
    if fitted:
        columns = [("keep", lambda f: f"{f.keep_ratio:g}"), ("exponent", lambda f: f"{f.exponent:.2f}")]
        columns += [("vs prompt length", lambda f: f"{f.exponent_prompt:.2f}")]
        columns += [(f"{s:g} s", lambda f, i=i: _fmt(f.prefill_ms[i])) for i, s in enumerate(fitted[0].seconds)]
        sections.append(
            ("Scaling: prefill ms ~ audio seconds ** exponent (least squares on log-log)", table(columns, fitted))
        )
    if result.targets:
        sections.append(("Targets (issues 4 and 16)", table(TARGETS, result.targets)))
    lines = _header(result)
    for title, body in sections:
        lines += ["", f"### {title}", "", body]
    return "\n".join(lines) + "\n"


PAPER = [
    ("keep", lambda r: f"{r.keep_ratio:g}"),
    ("K", lambda r: r.k),
    ("prefill ms (here)", lambda r: _fmt(r.prefill_ms)),
    ("speedup (here)", lambda r: _ratio(r.speedup)),
    ("token bound", lambda r: _ratio(r.bound)),
    ("paper A100 ms", lambda r: PAPER_AF3_A100_MS[r.keep_ratio]),
    ("paper speedup", lambda r: _ratio(PAPER_AF3_A100_MS[1.0] / PAPER_AF3_A100_MS[r.keep_ratio])),
]


def paper_table(result: Result) -> str:
    """Our 30 s prefill times beside the paper's A100 numbers for Audio Flamingo 3."""
    return table(PAPER, [r for r in result.prefill if r.seconds == 30 and r.keep_ratio in PAPER_AF3_A100_MS])


# ---------------------------------------------------------------- figure


def figure(result: Result):
    """A plotly figure: speedup vs keep ratio (with the token bound), and prefill ms vs audio length."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=1, cols=2, subplot_titles=("Prefill speedup vs keep ratio", "Prefill time vs audio length")
    )
    for s in sorted({r.seconds for r in result.prefill}):
        rows = sorted((r for r in result.prefill if r.seconds == s), key=lambda r: r.keep_ratio)
        keep = [r.keep_ratio for r in rows]
        fig.add_trace(
            go.Scatter(x=keep, y=[r.speedup for r in rows], mode="lines+markers", name=f"{s:g} s measured"), 1, 1
        )
        fig.add_trace(
            go.Scatter(
                x=keep, y=[r.bound for r in rows], mode="lines", line={"dash": "dash"}, name=f"{s:g} s token bound"
            ),
            1,
            1,
        )
    for f in result.scaling:
        label = "full" if f.keep_ratio == 1.0 else f"keep {f.keep_ratio:g}"
        if f.exponent is not None:
            label += f" (~ s^{f.exponent:.2f})"
        fig.add_trace(go.Scatter(x=f.seconds, y=f.prefill_ms, mode="lines+markers", name=label), 1, 2)
    fig.update_xaxes(title_text="keep ratio (fraction of audio tokens kept)", row=1, col=1)
    fig.update_yaxes(title_text="speedup (full / pruned prefill)", row=1, col=1)
    fig.update_xaxes(title_text="audio seconds", type="log", row=1, col=2)
    fig.update_yaxes(title_text="prefill ms (median)", type="log", row=1, col=2)
    m = result.model
    title = f"segprune bench: {m['key']} [{m.get('preset') or 'pretrained'}] on {m['device']}, {m['dtype']}"
    fig.update_layout(title=title + (" — random weights, timings only" if result.note else ""), width=1200, height=500)
    return fig


def write_html(result: Result, path: str) -> None:
    """The figure as a self-contained HTML file (plotly.js inline, viewable offline)."""
    figure(result).write_html(path, include_plotlyjs=True)
