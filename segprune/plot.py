"""Plotly figures from a `Comparison`: what was kept, on the clip's own time axis.

    fig = segprune.plot.token_figure(c, index=0, samples=audio.samples)

Top row: the waveform (a min/max envelope), coloured where the pruned model kept the audio and
grey where it dropped it. Bottom row: the attention score of every audio token against time;
kept tokens are large coloured markers, dropped ones small and faded. Segmentwise selections
draw their S_eff - 1 inner segment boundaries as dashed vertical lines across both rows; clips
longer than one encoder window (30 s) draw the window boundaries as solid lines.

A token's x is the CENTRE of the audio it covers: ``token_seconds + token_duration / 2``
(token i of a window covers [start, start + 0.04 s) for Qwen2-Audio and Audio Flamingo 3).

Every trace and shape carries a ``name`` (see the constants below) so that tests and callers can
find them: the marker traces (``legendgroup`` ``KEPT`` and ``DROPPED``) hold one marker per token between
them, with ``customdata`` rows [index, start s, end s, kept 0/1, silent 0/1]. Silent stretches
(tokens whose audio is silent, see `segprune.audio.silent_tokens`) are shaded bands named
``SILENT_STRETCH``.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .comparison import Comparison
from .methods import get_method

KEPT = "kept"
DROPPED = "dropped"
SCORE_LINE = "score"
WAVE_KEPT = "audio kept"
WAVE_DROPPED = "audio dropped"
SEGMENT_BOUNDARY = "segment boundary"
WINDOW_BOUNDARY = "window boundary"
SILENT_STRETCH = "silent stretch"

KEPT_COLOR = "#e4572e"  # warm orange-red: what the pruned model hears
DROPPED_COLOR = "#9aa0a6"  # grey
BOUNDARY_COLOR = "#3f51b5"
SILENT_FILL = "rgba(63, 81, 181, 0.08)"
WINDOW_COLOR = "#202124"
MAX_WAVE_BINS = 4000  # waveform envelope resolution cap (2 strokes per pixel on a wide screen)


def token_centres(c: Comparison) -> np.ndarray:
    """[N] centre time in seconds of each audio token."""
    return c.tokens.token_seconds + c.tokens.token_duration / 2


def kept_mask(c: Comparison, index: int = 0) -> np.ndarray:
    """[N] bool: True where the pruned variant `index` kept the token."""
    mask = np.zeros(c.tokens.n, dtype=bool)
    mask[c.pruned[index].selection.indices] = True
    return mask


def token_figure(c: Comparison, index: int = 0, samples: np.ndarray | None = None, sample_rate: int = 16_000):
    """The two-row figure for pruned variant `index` of `c`.

    samples: the clip's mono samples [n] at `sample_rate` (what the model heard; anything past
    `c.audio_seconds` is ignored). Without samples the figure has only the score row.
    """
    p = c.pruned[index]
    kept = kept_mask(c, index)
    with_wave = samples is not None and len(samples) > 0
    rows = 2 if with_wave else 1
    fig = make_subplots(
        rows=rows,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.06,
        row_heights=[0.3, 0.7] if with_wave else [1.0],
    )
    if with_wave:
        _add_waveform(fig, c, kept, np.asarray(samples, dtype=np.float32), sample_rate)
    _add_scores(fig, c, kept, row=rows)
    _add_boundaries(fig, c, p.selection.segment_bounds)
    silent_runs = _add_silence(fig, c)

    method = get_method(p.setting.method)
    segments = f", S = {len(p.selection.segment_bounds) - 1}" if p.selection.segment_bounds is not None else ""
    key = [f"<span style='color:{KEPT_COLOR}'>●</span> kept: what the pruned model hears"]
    key.append(f"<span style='color:{DROPPED_COLOR}'>●</span> dropped")
    if p.selection.segment_bounds is not None:
        key.append("dashed: segment boundaries")
    if silent_runs:
        key.append("shaded: silent" + (" (dropped first)" if p.setting.drop_silent else ""))
    if len(c.tokens.window_starts) > 1:
        key.append(f"solid: {c.tokens.window_seconds:g} s encoder windows")
    title = (
        f"<b>{method.label}{segments}</b>: kept <b>{p.selection.k}</b> of {c.tokens.n} audio tokens "
        f"({100 * p.selection.k / c.tokens.n:.1f} %)<br><span style='font-size:12px;color:#5f6368'>"
        + "<br>".join(" · ".join(key[i : i + 3]) for i in range(0, len(key), 3))  # 3 per line: no clipping
        + "</span>"
    )
    fig.update_layout(
        title=dict(text=title, x=0.01, xanchor="left", y=0.97, yanchor="top", yref="container", font=dict(size=15)),
        height=480 if with_wave else 360,
        margin=dict(l=60, r=20, t=78 + 16 * ((len(key) - 1) // 3), b=45),
        showlegend=False,  # the title says what the colours mean
        hovermode="closest",
        plot_bgcolor="white",
        paper_bgcolor="white",
    )
    axis = dict(range=[0, c.audio_seconds], showgrid=True, gridcolor="#eeeeee", zeroline=False)
    fig.update_xaxes(**axis)
    fig.update_xaxes(title_text="time (s)", row=rows, col=1)
    fig.update_yaxes(title_text="attention score", row=rows, col=1, gridcolor="#eeeeee", zeroline=False)
    if with_wave:
        fig.update_yaxes(title_text="audio", row=1, col=1, showticklabels=False, showgrid=False, zeroline=False)
    return fig


def _add_waveform(fig, c: Comparison, kept: np.ndarray, samples: np.ndarray, rate: int) -> None:
    """Min/max envelope as vertical strokes, split into a kept and a dropped trace."""
    samples = samples[: round(c.audio_seconds * rate)]
    bins = int(min(MAX_WAVE_BINS, 4 * c.tokens.n, len(samples)))
    edges = np.linspace(0, len(samples), bins + 1).astype(np.int64)
    lo = np.minimum.reduceat(samples, edges[:-1])
    hi = np.maximum.reduceat(samples, edges[:-1])
    centre = (edges[:-1] + edges[1:]) / 2 / rate
    # The token covering each bin's centre; audio past the last token's end counts as dropped.
    starts = c.tokens.token_seconds
    token = np.clip(np.searchsorted(starts, centre, side="right") - 1, 0, c.tokens.n - 1)
    covered = centre < starts[token] + c.tokens.token_duration
    heard = kept[token] & covered
    for name, mask, color in [(WAVE_DROPPED, ~heard, DROPPED_COLOR), (WAVE_KEPT, heard, KEPT_COLOR)]:
        x = np.full((mask.sum(), 3), np.nan)
        y = np.full((mask.sum(), 3), np.nan)
        x[:, 0] = x[:, 1] = centre[mask]
        y[:, 0], y[:, 1] = lo[mask], hi[mask]
        fig.add_trace(
            go.Scatter(
                x=x.ravel(),
                y=y.ravel(),
                mode="lines",
                line=dict(color=color, width=1.2),
                name=name,
                showlegend=False,
                hoverinfo="skip",
                connectgaps=False,
            ),
            row=1,
            col=1,
        )


def _add_scores(fig, c: Comparison, kept: np.ndarray, row: int) -> None:
    x = token_centres(c)
    scores = np.asarray(c.tokens.scores, dtype=np.float64)
    index = np.arange(c.tokens.n)
    start = c.tokens.token_seconds
    silent = c.tokens.silent if c.tokens.silent is not None else np.zeros(c.tokens.n, dtype=bool)
    custom = np.stack([index, start, start + c.tokens.token_duration, kept, silent], axis=1).astype(np.float64)
    fig.add_trace(
        go.Scatter(
            x=x,
            y=scores,
            mode="lines",
            line=dict(color="#c8ccd0", width=1),
            name=SCORE_LINE,
            showlegend=False,
            hoverinfo="skip",
        ),
        row=row,
        col=1,
    )
    hover = "token %{customdata[0]:.0f}<br>%{customdata[1]:.2f} to %{customdata[2]:.2f} s<br>score %{y:.3f}<br><b>"
    quiet = np.where(silent, "<br>silent", "")
    for name, mask, marker in [
        (DROPPED, ~kept, dict(color=DROPPED_COLOR, size=5, opacity=0.45)),
        (KEPT, kept, dict(color=KEPT_COLOR, size=8, line=dict(color="white", width=0.5))),
    ]:
        fig.add_trace(
            go.Scatter(
                x=x[mask],
                y=scores[mask],
                customdata=custom[mask],
                mode="markers",
                marker=marker,
                name=f"{name} ({int(mask.sum())})",
                legendgroup=name,
                text=quiet[mask],
                hovertemplate=hover + name + "</b>%{text}<extra></extra>",
            ),
            row=row,
            col=1,
        )


def _add_silence(fig, c: Comparison) -> int:
    """Shade each run of silent tokens across both rows; returns the number of runs."""
    if c.tokens.silent is None or not c.tokens.silent.any():
        return 0
    flags = np.concatenate([[False], c.tokens.silent, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(flags))  # run starts and ends, alternating
    starts = c.tokens.token_seconds
    for first, end in zip(edges[::2], edges[1::2]):
        x1 = float(starts[end - 1] + c.tokens.token_duration)
        fig.add_shape(
            type="rect",
            x0=float(starts[first]),
            x1=min(x1, c.audio_seconds),
            xref="x",
            y0=0,
            y1=1,
            yref="paper",
            fillcolor=SILENT_FILL,
            line=dict(width=0),
            layer="below",
            name=SILENT_STRETCH,
        )
    return len(edges) // 2


def _add_boundaries(fig, c: Comparison, segment_bounds: np.ndarray | None) -> None:
    """Dashed lines between segments (segmentwise only), solid lines between 30 s windows."""
    starts = c.tokens.token_seconds
    lines = []
    if segment_bounds is not None:
        lines += [(SEGMENT_BOUNDARY, float(starts[b]), "dash", BOUNDARY_COLOR) for b in segment_bounds[1:-1]]
    window_edges = np.arange(1, len(c.tokens.window_starts)) * c.tokens.window_seconds
    lines += [(WINDOW_BOUNDARY, float(t), "solid", WINDOW_COLOR) for t in window_edges]
    for name, t, dash, color in lines:
        fig.add_shape(
            type="line",
            x0=t,
            x1=t,
            xref="x",
            y0=0,
            y1=1,
            yref="paper",
            line=dict(color=color, width=1.2 if dash == "dash" else 2, dash=dash),
            opacity=0.7,
            name=name,
        )
    for i, t in enumerate(window_edges, start=2):
        fig.add_annotation(
            x=t, y=1, xref="x", yref="paper", text=f"window {i}", showarrow=False, xanchor="left", yanchor="top"
        )


# --------------------------------------------------------------------------- compare all methods

MERGED_COLOR = "#7b1fa2"  # purple: a merge of several tokens (VisionZip's contextual tokens)
PADDING_FILL = "rgba(32, 33, 36, 0.06)"
MAX_STRIP_BINS = 600  # time bins per method strip: what is drawn, never what is selected
PADDING = "padding"


def methods_figure(c: Comparison, bins: int = MAX_STRIP_BINS):
    """Where each method's kept tokens fall: one strip per pruned variant of `c`, on the clip's
    time axis (the whole window the model receives, its padding shaded), in the order they ran.

    Each strip is cut into at most `bins` equal time bins; a bin is drawn where it keeps at least
    one token, the more opaque the larger its kept share, purple where the kept rows are merges
    (VisionZip's contextual tokens) and orange otherwise. Hover gives the bin's span and its kept
    count. Traces are named after the method labels; `customdata` rows are [start s, end s, kept,
    tokens]."""
    from .words import method_label  # words never imports plot: no circle

    tokens = c.tokens
    n = tokens.n
    starts = tokens.token_seconds
    end = float(starts[-1] + tokens.token_duration)
    count = int(min(bins, n))
    edges = np.linspace(0.0, end, count + 1)
    centre_bin = np.clip(np.searchsorted(edges, starts + tokens.token_duration / 2, side="right") - 1, 0, count - 1)
    per_bin = np.bincount(centre_bin, minlength=count)
    labels = [method_label(p) for p in c.pruned]  # the table's names (options included); the axis shows the method
    names = {label: get_method(p.setting.method).label for label, p in zip(labels, c.pruned)}
    if len(set(names.values())) < len(names):  # two settings of one method: the full labels tell them apart
        names = {label: label for label in labels}
    fig = go.Figure()
    for row, p in enumerate(c.pruned):
        merged = p.selection.merged if p.selection.merged is not None else np.zeros(p.selection.k, dtype=bool)
        for flags, color, kind in [(~merged, KEPT_COLOR, "kept"), (merged, MERGED_COLOR, "merged")]:
            hits = np.bincount(centre_bin[p.selection.indices[flags]], minlength=count)
            drawn = np.flatnonzero(hits)
            if kind == "merged" and drawn.size == 0:
                continue
            share = hits[drawn] / np.maximum(per_bin[drawn], 1)
            custom = np.stack([edges[drawn], edges[drawn + 1], hits[drawn], per_bin[drawn]], axis=1)
            fig.add_trace(
                go.Scatter(
                    x=(edges[drawn] + edges[drawn + 1]) / 2,
                    y=[labels[row]] * drawn.size,
                    mode="markers",
                    marker=dict(
                        symbol="line-ns", size=16, line=dict(color=color, width=2), opacity=0.35 + 0.65 * share
                    ),
                    customdata=custom,
                    name=f"{labels[row]} ({kind})",
                    legendgroup=kind,
                    hovertemplate=f"<b>{labels[row]}</b><br>%{{customdata[0]:.2f}} to %{{customdata[1]:.2f}} s<br>"
                    f"%{{customdata[2]:.0f}} of %{{customdata[3]:.0f}} tokens {kind}<extra></extra>",
                )
            )
    if c.audio_seconds < end:
        fig.add_shape(
            type="rect",
            x0=c.audio_seconds,
            x1=end,
            xref="x",
            y0=0,
            y1=1,
            yref="paper",
            fillcolor=PADDING_FILL,
            line=dict(width=0),
            layer="below",
            name=PADDING,
        )
    for t in np.arange(1, len(tokens.window_starts)) * tokens.window_seconds:
        fig.add_shape(
            type="line",
            x0=t,
            x1=t,
            xref="x",
            y0=0,
            y1=1,
            yref="paper",
            line=dict(color=WINDOW_COLOR, width=1.5),
            opacity=0.6,
            name=WINDOW_BOUNDARY,
        )
    note = "padding shaded: no audio · " if c.audio_seconds < end else ""
    has_merged = any(p.selection.merged is not None and p.selection.merged.any() for p in c.pruned)
    key = f"<span style='color:{KEPT_COLOR}'>|</span> kept" + (
        f" · <span style='color:{MERGED_COLOR}'>|</span> merged" if has_merged else ""
    )
    fig.update_layout(
        title=dict(
            text=f"<b>Where each method's K = {c.pruned[0].selection.k} tokens fall</b><br>"
            f"<span style='font-size:12px;color:#5f6368'>{key} · darker: more of the bin kept"
            f"{'<br>' + note.removesuffix(' · ') if note else ''}</span>",
            x=0.01,
            xanchor="left",
            y=0.97,
            yanchor="top",
            yref="container",
            font=dict(size=14),
        ),
        height=110 + 34 * len(c.pruned) + (16 if note else 0),
        margin=dict(l=10, r=15, t=70 + (16 if note else 0), b=40),
        showlegend=False,
        plot_bgcolor="white",
        paper_bgcolor="white",
        hovermode="closest",
    )
    fig.update_xaxes(range=[0, end], title_text="time (s)", showgrid=True, gridcolor="#eeeeee", zeroline=False)
    fig.update_yaxes(
        autorange="reversed",
        automargin=True,
        showgrid=False,
        categoryorder="array",
        categoryarray=labels,
        tickmode="array",
        tickvals=labels,
        ticktext=[names[label] for label in labels],
    )
    return fig


__all__ = [
    "DROPPED",
    "KEPT",
    "SEGMENT_BOUNDARY",
    "SILENT_STRETCH",
    "WINDOW_BOUNDARY",
    "kept_mask",
    "methods_figure",
    "token_centres",
    "token_figure",
]
