"""Plotly figures from a `Comparison`: what was kept, on the time axis of what the model receives.

    fig = segprune.plot.token_figure(c, index=0, samples=audio.samples)

Top row: the waveform (a min/max envelope), coloured where the pruned model kept the audio and
grey where it dropped it. Bottom row: the attention score of every audio token against time;
kept tokens are large coloured markers, dropped ones small and faded; a merge method's merged
tokens (`Selection.merged`) are diamonds with a dark outline, drawn at their anchor. Segmentwise
selections draw their S_eff - 1 inner segment boundaries as dashed vertical lines across both rows;
clips longer than one encoder window (30 s) draw the window boundaries as solid lines.

The time axis is the whole span the model receives: for a family whose tokens run past the clip
(`AudioTokens.audio_end` < N: Whisper's 1500-frame window, Voxtral's padded last chunk) it runs to
the end of the last window, the padding is a grey band named ``PADDING`` labelled "padding (no
audio)", and a solid line ``AUDIO_END`` marks where the audio stops.

A token's x is the CENTRE of the audio it covers: ``token_seconds + token_duration / 2``
(token i of a window covers [start, start + 0.04 s) for Qwen2-Audio and Audio Flamingo 3).

Every trace and shape carries a ``name`` (see the constants below) so that tests and callers can
find them: the marker traces (``legendgroup`` ``KEPT`` and ``DROPPED``) hold one marker per token
between them (up to ``DRAW_ALL`` tokens, see below), with ``customdata`` rows [index, start s, end s, kept 0/1, silent 0/1, merged 0/1,
padding 0/1]. Silent stretches of the audio (see `segprune.silence`) are shaded bands named
``SILENT_STRETCH``.

What is DRAWN is decimated on long clips; what is selected never is. Up to ``DRAW_ALL`` tokens
(5,000: 3 min 20 s at 25 tokens per second) every token is one marker and the score line has every
token. Above it the time axis is cut into ``COLUMNS`` (1,000) columns, about one pixel each on a
desktop screen: the dropped markers and the score line keep, per column, the token of lowest and
the token of highest score (real tokens, with their own hover data), and the kept markers are all
drawn while K <= ``KEPT_ALL`` (3,000), else decimated the same way; the key states how many of
each are drawn. So a figure never holds more than 5,000 markers. Measured on this project's 2-core
CPU at N = 45,000 (30 minutes of audio, keep 0.25, waveform included; `tests/test_plot.py` checks
the size and the cost against a 5,000-token figure): 0.68 MB of JSON and 0.09 s of CPU time to build
and serialise for Segmentwise Top-K (VisionZip, with per-point marker styles: 0.80 MB, 0.17 s),
against 5.2 MB and 3.0 s when every token was drawn.
"""

from __future__ import annotations

import re

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .comparison import Comparison
from .methods import Selection, get_method

KEPT = "kept"
DROPPED = "dropped"
SCORE_LINE = "score"
WAVE_KEPT = "audio kept"
WAVE_DROPPED = "audio dropped"
SEGMENT_BOUNDARY = "segment boundary"
WINDOW_BOUNDARY = "window boundary"
SILENT_STRETCH = "silent stretch"
PADDING = "padding"
AUDIO_END = "audio end"

KEPT_COLOR = "#e4572e"  # warm orange-red: what the pruned model hears
MERGED_OUTLINE = "#3b1305"  # a merged token: a kept-coloured diamond with a dark outline
DROPPED_COLOR = "#9aa0a6"  # grey
BOUNDARY_COLOR = "#3f51b5"
SILENT_FILL = "rgba(63, 81, 181, 0.08)"
PADDING_FILL = "rgba(95, 99, 104, 0.13)"
WINDOW_COLOR = "#202124"
MAX_WAVE_BINS = 4000  # waveform envelope resolution cap (2 strokes per pixel on a wide screen)
DRAW_ALL = 5_000  # up to this many tokens, every token is drawn
COLUMNS = 1_000  # above it: min/max per column of the time axis
KEPT_ALL = 3_000  # above DRAW_ALL, kept markers are all drawn up to this K
MAX_WINDOW_LABELS = 5  # each window is labelled up to 5 windows (they fit 390 px), none beyond
KEY_LINE_CHARS = 44  # a line of the colour key fits a 390 px phone screen at 12 px


def token_centres(c: Comparison) -> np.ndarray:
    """[N] centre time in seconds of each audio token."""
    return c.tokens.token_seconds + c.tokens.token_duration / 2


def kept_mask(c: Comparison, index: int = 0) -> np.ndarray:
    """[N] bool: True where the pruned variant `index` kept the token."""
    mask = np.zeros(c.tokens.n, dtype=bool)
    mask[c.pruned[index].selection.indices] = True
    return mask


def time_span(c: Comparison) -> float:
    """Seconds of the time axis: the clip, or the end of the last token where tokens run past it
    (`audio_end` < N: a window's padding that the model receives)."""
    t = c.tokens
    if t.audio_end >= t.n:
        return float(c.audio_seconds)
    return max(float(c.audio_seconds), float(t.token_seconds[-1] + t.token_duration))


def envelope(column: np.ndarray, values: np.ndarray, which: np.ndarray) -> np.ndarray:
    """The tokens to draw of `which` (sorted indices [M]): per column, the one of lowest and the one
    of highest value. column: [N] int column of each token; values: [N]. Returns sorted indices
    [<= 2 * columns], a subset of `which` (all of it when every column holds at most two)."""
    if which.size == 0:
        return which
    order = which[np.lexsort((values[which], column[which]))]  # by column, then by value
    col = column[order]
    first = np.flatnonzero(np.r_[True, col[1:] != col[:-1]])
    last = np.r_[first[1:] - 1, col.size - 1]
    return np.unique(np.r_[order[first], order[last]])


def token_figure(c: Comparison, index: int = 0, samples: np.ndarray | None = None, sample_rate: int = 16_000):
    """The two-row figure for pruned variant `index` of `c`.

    samples: the clip's mono samples [n] at `sample_rate` (what the model heard; anything past
    `c.audio_seconds` is ignored). Without samples the figure has only the score row.
    """
    p = c.pruned[index]
    kept = kept_mask(c, index)
    span = time_span(c)
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
    drawn = _add_scores(fig, c, p.selection, kept, span, row=rows)
    # Shapes and labels are set once: plotly re-validates every shape on each add_shape.
    silent = _silence(c, span)
    pad_shapes, pad_labels = _padding(c, span)
    line_shapes, line_labels = _boundaries(c, p.selection.segment_bounds)
    fig.update_layout(shapes=silent + pad_shapes + line_shapes, annotations=pad_labels + line_labels)

    sel = p.selection
    merged = sel.merged is not None and bool(sel.merged.any())
    key = [f"<span style='color:{KEPT_COLOR}'>●</span> kept: what the model hears"]
    if merged:
        key.append(f"<span style='color:{MERGED_OUTLINE}'>◆</span> merged ({int(sel.merged.sum())}): a mean of several")
    key.append(f"<span style='color:{DROPPED_COLOR}'>●</span> dropped")
    if sel.segment_bounds is not None:
        key.append("dashed: segment boundaries")
    if silent:
        key.append("blue: silent" + (" (dropped first)" if p.setting.drop_silent else ""))
    if pad_shapes:
        key.append("grey: padding the model receives")
    if len(c.tokens.window_starts) > 1:
        key.append(f"solid: {c.tokens.window_seconds:g} s windows")
    key += drawn
    lines = _pack(key, KEY_LINE_CHARS)
    method = get_method(p.setting.method)
    segments = f", S = {sel.segments}" if sel.segment_bounds is not None else ""
    title = (
        f"<b>{method.label}{segments}</b><br><span style='font-size:13px'>kept <b>{sel.k:,}</b> of {c.tokens.n:,} "
        f"audio tokens ({100 * sel.k / c.tokens.n:.1f} %)</span><br><span style='font-size:12px;color:#5f6368'>"
        + "<br>".join(lines)
        + "</span>"
    )
    top = 64 + 17 * len(lines)  # title (15 px), the counts (13 px), key lines (12 px), 20 px above
    fig.update_layout(
        title=dict(
            text=title, x=0.01, xanchor="left", y=1, yanchor="top", yref="container", pad=dict(t=20), font=dict(size=15)
        ),
        height=(420 if with_wave else 300) + top,
        margin=dict(l=60, r=20, t=top, b=45),
        showlegend=False,  # the title says what the colours mean
        hovermode="closest",
        plot_bgcolor="white",
        paper_bgcolor="white",
    )
    fig.update_xaxes(range=[0, span], showgrid=True, gridcolor="#eeeeee", zeroline=False)
    fig.update_xaxes(title_text="time (s)", row=rows, col=1)
    fig.update_yaxes(title_text="attention score", row=rows, col=1, gridcolor="#eeeeee", zeroline=False)
    if with_wave:
        fig.update_yaxes(title_text="audio", row=1, col=1, showticklabels=False, showgrid=False, zeroline=False)
    return fig


def _pack(items: list[str], width: int) -> list[str]:
    """Join key items with " · " into lines of at most `width` visible characters (markup aside)."""
    lines: list[str] = []
    size = 0
    for item in items:
        n = len(re.sub(r"<[^>]+>", "", item))
        if lines and size + 3 + n <= width:
            lines[-1] += " · " + item
            size += 3 + n
        else:
            lines.append(item)
            size = n
    return lines


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
                x=x.ravel().astype(np.float32),  # half the JSON; far finer than a pixel
                y=y.ravel().astype(np.float32),
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


def _add_scores(fig, c: Comparison, sel: Selection, kept: np.ndarray, span: float, row: int) -> list[str]:
    """The score line and the kept and dropped markers (decimated above `DRAW_ALL` tokens);
    returns the key's lines on what was decimated (none when every token is drawn)."""
    t = c.tokens
    n = t.n
    x = token_centres(c)
    scores = np.asarray(t.scores, dtype=np.float64)
    merged = np.zeros(n, dtype=bool)
    if sel.merged is not None:
        merged[sel.indices[sel.merged]] = True
    silent = t.silent if t.silent is not None else np.zeros(n, dtype=bool)
    padding = np.arange(n) >= t.audio_end
    start = t.token_seconds
    custom = np.stack([np.arange(n), start, start + t.token_duration, kept, silent, merged, padding], axis=1)

    everything = np.arange(n)
    kept_idx, dropped_idx = np.flatnonzero(kept), np.flatnonzero(~kept)
    notes = []
    if n > DRAW_ALL:
        column = np.minimum((x / span * COLUMNS).astype(np.int64), COLUMNS - 1)
        everything = envelope(column, scores, everything)
        notes.append("drawn: each column's lowest and highest")
        if kept_idx.size > KEPT_ALL:
            total = kept_idx.size
            kept_idx = envelope(column, scores, kept_idx)
            notes.append(f"{kept_idx.size:,} of {total:,} kept")
        else:
            notes.append(f"all {kept_idx.size:,} kept")
        total = dropped_idx.size
        dropped_idx = envelope(column, scores, dropped_idx)
        notes.append(f"{dropped_idx.size:,} of {total:,} dropped")
    fig.add_trace(
        go.Scatter(
            x=x[everything],
            y=scores[everything],
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
    flags = np.full(n, "", dtype=object)
    flags[silent & ~padding] = "<br>silent"
    flags[padding] = "<br>padding (no audio)"
    flags[merged] = "<br>merged: stands for several tokens (drawn at its anchor)"
    for name, idx, marker in [
        (DROPPED, dropped_idx, dict(color=DROPPED_COLOR, size=5, opacity=0.45)),
        (KEPT, kept_idx, _kept_marker(merged[kept_idx])),
    ]:
        text = flags[idx]
        fig.add_trace(
            go.Scatter(
                x=x[idx],
                y=scores[idx],
                customdata=custom[idx].astype(np.float64),
                mode="markers",
                marker=marker,
                name=f"{name} ({int(kept.sum()) if name == KEPT else n - int(kept.sum())})",
                legendgroup=name,
                text=text.tolist() if any(text) else None,
                hovertemplate=hover + name + ("</b>%{text}" if any(text) else "</b>") + "<extra></extra>",
            ),
            row=row,
            col=1,
        )
    return notes


def _kept_marker(merged: np.ndarray) -> dict:
    """Kept tokens: orange dots; merged ones: orange diamonds with a dark outline (per point)."""
    if not merged.any():
        return dict(color=KEPT_COLOR, size=8, line=dict(color="white", width=0.5))
    return dict(
        color=KEPT_COLOR,
        opacity=1.0,  # plotly.js fades markers of per-point size ("bubbles") by default
        size=np.where(merged, 11, 8).tolist(),
        symbol=np.where(merged, "diamond", "circle").tolist(),
        line=dict(color=np.where(merged, MERGED_OUTLINE, "white").tolist(), width=np.where(merged, 1.5, 0.5).tolist()),
    )


def _band(x0: float, x1: float, fill: str, name: str) -> dict:
    """A shaded band across both rows (behind the traces)."""
    return dict(
        type="rect",
        x0=x0,
        x1=x1,
        xref="x",
        y0=0,
        y1=1,
        yref="paper",
        fillcolor=fill,
        line=dict(width=0),
        layer="below",
        name=name,
    )


def _vline(t: float, name: str, color: str, width: float, dash: str = "solid", opacity: float = 0.7) -> dict:
    """A vertical line across both rows."""
    line = dict(color=color, width=width, dash=dash)
    return dict(type="line", x0=t, x1=t, xref="x", y0=0, y1=1, yref="paper", line=line, opacity=opacity, name=name)


def _label(t: float, text: str, **style) -> dict:
    """A label near the top of the figure, to the right of time `t`."""
    style = dict(y=1, yanchor="top") | style
    return dict(x=t, xref="x", yref="paper", text=text, showarrow=False, xanchor="left", **style)


def _silence(c: Comparison, span: float) -> list[dict]:
    """A band over each run of silent tokens within the audio (not the padding); above `DRAW_ALL`
    tokens, runs less than a column apart make one band."""
    t = c.tokens
    if t.silent is None or not t.silent[: t.audio_end].any():
        return []
    flags = np.concatenate([[False], t.silent[: t.audio_end], [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(flags)).reshape(-1, 2)  # [runs, (start, end)]
    starts = t.token_seconds
    bands = [(float(starts[a]), min(float(starts[b - 1] + t.token_duration), c.audio_seconds)) for a, b in edges]
    if t.n > DRAW_ALL:
        joined = bands[:1]
        for x0, x1 in bands[1:]:
            if x0 - joined[-1][1] < span / COLUMNS:
                joined[-1] = (joined[-1][0], x1)
            else:
                joined.append((x0, x1))
        bands = joined
    return [_band(x0, x1, SILENT_FILL, SILENT_STRETCH) for x0, x1 in bands if x1 > x0]


def _padding(c: Comparison, span: float) -> tuple[list[dict], list[dict]]:
    """Where tokens run past the clip (`audio_end` < N): a grey band over the padding, a line where
    the audio ends and the label "padding (no audio)". Returns (shapes, annotations)."""
    if c.tokens.audio_end >= c.tokens.n or span <= c.audio_seconds:
        return [], []
    end = float(c.audio_seconds)
    shapes = [_band(end, span, PADDING_FILL, PADDING), _vline(end, AUDIO_END, WINDOW_COLOR, 1.5, opacity=0.9)]
    text = f"audio ends at {end:.1f} s · padding (no audio) →"
    style = dict(font=dict(size=11, color="#3c4043"), bgcolor="rgba(255, 255, 255, 0.75)", name=PADDING, y=0.92)
    return shapes, [_label(end, text, **style)]


def _boundaries(c: Comparison, segment_bounds: np.ndarray | None) -> tuple[list[dict], list[dict]]:
    """Dashed lines between segments (segmentwise only), solid lines between 30 s windows, and the
    windows' labels (only below `MAX_WINDOW_LABELS` windows). Returns (shapes, annotations)."""
    starts = c.tokens.token_seconds
    shapes = []
    if segment_bounds is not None:
        shapes += [
            _vline(float(starts[b]), SEGMENT_BOUNDARY, BOUNDARY_COLOR, 1.2, "dash") for b in segment_bounds[1:-1]
        ]
    window_edges = np.arange(1, len(c.tokens.window_starts)) * c.tokens.window_seconds
    shapes += [_vline(float(t), WINDOW_BOUNDARY, WINDOW_COLOR, 2) for t in window_edges]
    if len(window_edges) + 1 > MAX_WINDOW_LABELS:  # the key names the lines; labels would overlap on a phone
        return shapes, []
    return shapes, [_label(float(t), f"window {i + 2}") for i, t in enumerate(window_edges)]


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
    "AUDIO_END",
    "DRAW_ALL",
    "DROPPED",
    "KEPT",
    "PADDING",
    "SEGMENT_BOUNDARY",
    "SILENT_STRETCH",
    "WINDOW_BOUNDARY",
    "envelope",
    "kept_mask",
    "methods_figure",
    "time_span",
    "token_centres",
    "token_figure",
]
