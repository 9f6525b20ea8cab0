"""From measured rows to what a person reads: growth exponents, target checks, markdown tables
and a plotly HTML figure (speedup vs keep ratio; prefill time vs audio length)."""

from __future__ import annotations

import math

import numpy as np

from .result import PrefillRow, Result, ScalingFit, Target

PAPER_AF3_A100_MS = {1.0: 162.5, 0.5: 34.4, 0.25: 29.6, 0.1: 26.9}  # Gibier et al., AF3 prefill on an A100


def growth_exponent(seconds: list[float], ms: list[float]) -> float | None:
    """Least-squares slope of log(ms) on log(seconds): time grows like seconds ** exponent."""
    if len(set(seconds)) < 2:
        return None
    return float(np.polyfit(np.log(seconds), np.log(ms), 1)[0])


def scaling(rows: list[PrefillRow]) -> list[ScalingFit]:
    fits = []
    for r in sorted({row.keep_ratio for row in rows}, reverse=True):
        mine = sorted((row.seconds, row.prefill_ms) for row in rows if row.keep_ratio == r)
        seconds, ms = [s for s, _ in mine], [m for _, m in mine]
        fits.append(ScalingFit(r, growth_exponent(seconds, ms), seconds, ms))
    return fits


def targets(result: Result, encoder_layers: int) -> list[Target]:
    """Issue 4's targets, where this run has the measurement (30 s clip, keep 0.25, N = 15,000)."""
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


def _count(n: int) -> str:
    return f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.1f} M"


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(result: Result) -> str:
    """The whole report as markdown: header, one table per measurement, scaling, targets."""
    m, mc, o = result.model, result.machine, result.options
    params = m.get("params") or {}
    lines = [f"## segprune bench · {m['key']} · {m.get('preset') or 'pretrained'} · {m['device']} {m['dtype']}", ""]
    if result.note:
        lines += [f"**{result.note}**", ""]
    lines += [
        f"- model: {m['name']}; {_count(params.get('total', 0))} parameters "
        f"(audio encoder {_count(params.get('audio_encoder', 0))}, {m.get('encoder_layers')} layers; "
        f"LLM {m.get('llm_layers')} layers, {m.get('llm_hidden')} wide)",
        f"- machine: {mc['processor']}, {mc['cpus']} CPUs, torch {mc['torch']} with {mc['threads']} threads, "
        f"transformers {mc['transformers']}, GPU: {mc.get('gpu') or 'none'}; load average {mc.get('load_before')} "
        f"before, {mc.get('load_after')} after",
        f"- timing: medians (and minima) of {o['repeats']} runs after {o['warmup']} warm-up round(s), compared "
        "functions interleaved in one process; prompt: "
        f"{o['prompt']!r}; kept tokens chosen by {o['methods'][0]}",
        f"- memory: {mc['memory']}",
        "",
        "### Prefill (LLM over the whole prompt + LM head on the last position)",
        "",
        table(
            ["audio s", "N", "keep", "K", "prompt", "prefill ms", "min", "speedup", "token bound", "of bound",
             "CPU-time speedup", "decode ms/tok", "peak MiB"],
            [[_fmt(r.seconds, 0), r.n, f"{r.keep_ratio:g}", r.k, r.prompt_tokens, _fmt(r.prefill_ms),
              _fmt(r.prefill_ms_min), f"x{r.speedup:.2f}", f"x{r.bound:.2f}", f"{100 * r.of_bound:.0f} %",
              "-" if r.cpu_speedup is None else f"x{r.cpu_speedup:.2f}", _fmt(r.decode_ms_per_token),
              _fmt(r.peak_mb, 0)] for r in result.prefill],
        ),
        "",
        "### Encoder and scoring hook",
        "",
        table(
            ["audio s", "N", "windows", "encode ms", "min", "encoder ms (no hook)", "hook ms", "hook share",
             "peak MiB"],
            [[_fmt(r.seconds, 0), r.n, r.windows, _fmt(r.encode_ms), _fmt(r.encode_ms_min), _fmt(r.encoder_ms),
              _fmt(r.scoring_ms), f"{100 * r.scoring_share:.1f} %", _fmt(r.peak_mb, 0)] for r in result.encoder],
        ),
    ]
    if result.baseline:
        lines += [
            "",
            "### Scores: segprune's hook vs the peers' output_attentions on an eager encoder",
            "",
            table(
                ["audio s", "N", "ours ms", "peers ms", "time ratio", "ours peak MiB", "peers peak MiB",
                 "memory ratio", "max score diff"],
                [[_fmt(r.seconds, 0), r.n, _fmt(r.ours_ms), _fmt(r.peers_ms), f"x{r.time_ratio:.2f}",
                  _fmt(r.ours_peak_mb, 0), _fmt(r.peers_peak_mb, 0), f"x{r.memory_ratio:.1f}",
                  f"{r.max_score_diff:.1e}"] for r in result.baseline],
            ),
        ]
    lines += [
        "",
        "### Selection",
        "",
        table(
            ["method", "N", "keep", "K", "ms", "min", "scores"],
            [[r.method, r.n, f"{r.keep_ratio:g}", r.k, _fmt(r.select_ms, 3), _fmt(r.select_ms_min, 3), r.source]
             for r in result.selection],
        ),
    ]
    fitted = [f for f in result.scaling if f.exponent is not None]
    if fitted:
        lines += [
            "",
            "### Scaling: prefill ms ~ seconds ** exponent (least squares on log-log)",
            "",
            table(
                ["keep", "exponent", *[f"{s:g} s" for s in fitted[0].seconds]],
                [[f"{f.keep_ratio:g}", f"{f.exponent:.2f}", *[_fmt(ms) for ms in f.prefill_ms]] for f in fitted],
            ),
        ]
    if result.targets:
        lines += [
            "",
            "### Targets (issue 4)",
            "",
            table(
                ["target", "measured", "goal", "met", "detail"],
                [[t.name, f"{t.value:.3g}", t.target, "yes" if t.met else "**no**", t.detail] for t in result.targets],
            ),
        ]
    return "\n".join(lines) + "\n"


def paper_table(result: Result) -> str:
    """Our 30 s prefill times beside the paper's A100 numbers for Audio Flamingo 3."""
    rows = [r for r in result.prefill if r.seconds == 30 and r.keep_ratio in PAPER_AF3_A100_MS]
    return table(
        ["keep", "K", "prefill ms (here)", "speedup (here)", "token bound", "paper A100 ms", "paper speedup"],
        [[f"{r.keep_ratio:g}", r.k, _fmt(r.prefill_ms), f"x{r.speedup:.2f}", f"x{r.bound:.2f}",
          PAPER_AF3_A100_MS[r.keep_ratio], f"x{PAPER_AF3_A100_MS[1.0] / PAPER_AF3_A100_MS[r.keep_ratio]:.2f}"]
         for r in rows],
    )


# ---------------------------------------------------------------- figure


def figure(result: Result):
    """A plotly figure: speedup vs keep ratio (with the token bound), and prefill ms vs audio length."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("Prefill speedup vs keep ratio", "Prefill time vs audio length"))
    for s in sorted({r.seconds for r in result.prefill}):
        rows = sorted((r for r in result.prefill if r.seconds == s), key=lambda r: r.keep_ratio)
        keep = [r.keep_ratio for r in rows]
        fig.add_trace(go.Scatter(x=keep, y=[r.speedup for r in rows], mode="lines+markers", name=f"{s:g} s measured"), 1, 1)
        fig.add_trace(
            go.Scatter(x=keep, y=[r.bound for r in rows], mode="lines", line={"dash": "dash"}, name=f"{s:g} s token bound"),
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
