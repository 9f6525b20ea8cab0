"""Silence: which audio tokens are silent, and how a selection drops them first.

One concept, one name: **drop_silent** (`Setting(..., drop_silent=True)`, `--drop-silent`, the app's
"Drop silent tokens first"): tokens whose audio is silent are kept only once every other token is
kept. Every method works with it; a method that budgets silence itself (``silence_aware``, e.g.
Adaptive Segmentwise) receives the mask instead.

A token is silent when the RMS of its span is below -60 dBFS, or more than 40 dB below the clip's
loudest token (so a quiet but clearly audible recording is not silent, and the pauses of a loud one
are). Spans past the end of the audio (a window's padding) have RMS 0 and are silent.

Pure numpy (torch only to gather embeddings of merge methods); knows nothing of models.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

NAME = "drop_silent"
LABEL = "Drop silent tokens first"
DESCRIPTION = "keep tokens of silent stretches only once all others are kept"
KEY_SUFFIX = "+drop_silent"  # in a setting's key: 'segmentwise+drop_silent@0.25'

SILENCE_PEAK = 1e-4  # a clip whose largest sample is below this is silent as a whole
SILENCE_DBFS = -60.0  # a token quieter than this (RMS, dB full scale) is silent ...
SILENCE_BELOW_LOUDEST_DB = 40.0  # ... and so is one this far below the clip's loudest token


def clip_is_silent(samples: np.ndarray) -> bool:
    """The whole clip [n] is silent: its largest sample is below 1e-4 (-80 dBFS)."""
    return float(np.max(np.abs(samples), initial=0.0)) < SILENCE_PEAK


def token_rms(samples: np.ndarray, sample_rate: int, starts: np.ndarray, duration: float) -> np.ndarray:
    """RMS of samples [n] over each token's span [start, start + duration) -> [N] float64.

    A span past the end of the audio (padding) has RMS 0.
    """
    edges = np.round(np.asarray(starts) * sample_rate).astype(np.int64)
    width = max(1, round(duration * sample_rate))
    lo = np.clip(edges, 0, len(samples))
    hi = np.clip(edges + width, 0, len(samples))
    power = energy_before(samples, np.concatenate([lo, hi]))
    return np.sqrt((power[len(lo) :] - power[: len(lo)]) / width)


def energy_before(samples: np.ndarray, points: np.ndarray, block: int = 1 << 20) -> np.ndarray:
    """sum(samples[:p] ** 2) in float64 for each p in points [M] (0 <= p <= n) -> [M] float64.

    A running sum over blocks of `block` samples: the temporaries stay a few MB whatever the clip's
    length (a float64 running sum over a whole 30-minute clip would take 230 MB, twice)."""
    order = np.argsort(points, kind="stable")
    at = points[order]
    out = np.zeros(len(points))
    total = 0.0
    for start in range(0, len(samples), block):
        running = np.cumsum(np.square(samples[start : start + block], dtype=np.float64))
        running += total
        first, last = np.searchsorted(at, [start, start + len(running)], side="right")
        out[order[first:last]] = running[at[first:last] - start - 1]
        total = running[-1]
    return out


def silent_tokens(samples: np.ndarray, sample_rate: int, starts: np.ndarray, duration: float) -> np.ndarray:
    """bool [N]: tokens in silent stretches, by signal energy over each token's span (see the module)."""
    rms = token_rms(samples, sample_rate, starts, duration)
    threshold = max(10 ** (SILENCE_DBFS / 20), rms.max(initial=0.0) * 10 ** (-SILENCE_BELOW_LOUDEST_DB / 20))
    return rms < threshold


def drop_silent_first(choose: Callable, scores: np.ndarray, k: int, silent: np.ndarray, embeddings=None):
    """Run a method on the non-silent tokens only; if fewer than k are non-silent, keep them all
    and let the method choose the rest among the silent tokens.

    choose(scores [M], k, embeddings [M, H] | None) -> a Selection over M tokens (the method on a
    subset; k >= 1). scores [N], silent bool [N], embeddings [N, H] or None. Returns (indices [k]
    int64 in temporal order, rows [k, H] or None (a merge method's rows, following the indices),
    segment bounds in clip positions or None, merged [k] bool or None (a merge method's flags,
    following the indices; False for the tokens kept as they are)), for `methods.select` to wrap
    in a Selection.
    """
    n = scores.shape[0]
    live, quiet = np.flatnonzero(~silent), np.flatnonzero(silent)
    if live.size >= k:
        parts = [(live, choose(scores[live], k, _subset(embeddings, live)))]
    else:  # all non-silent tokens, and the method's choice among the silent ones
        parts = [(live, None), (quiet, choose(scores[quiet], k - live.size, _subset(embeddings, quiet)))]
        if live.size == 0:
            parts = parts[1:]
    idx = np.concatenate([where if sel is None else where[sel.indices] for where, sel in parts])
    order = np.argsort(idx, kind="stable")
    rows = None
    if any(sel is not None and sel.embeddings is not None for _, sel in parts):
        import torch

        stacked = [_subset(embeddings, where) if sel is None else sel.embeddings for where, sel in parts]
        rows = torch.cat(stacked)[torch.as_tensor(order, device=embeddings.device)]
    merged = None
    if any(sel is not None and sel.merged is not None for _, sel in parts):
        flags = [
            np.zeros(where.size, bool) if sel is None or sel.merged is None else sel.merged for where, sel in parts
        ]
        merged = np.concatenate(flags)[order]
    bounds = None
    if len(parts) == 1 and parts[0][1].segment_bounds is not None:  # subset positions -> clip positions
        where, sel = parts[0]
        bounds = np.append(where[sel.segment_bounds[:-1]], n)
    return idx[order], rows, bounds, merged


def _subset(embeddings, where: np.ndarray):
    """embeddings[where] ([len(where), H]) or None."""
    if embeddings is None:
        return None
    import torch

    return embeddings[torch.as_tensor(where, device=embeddings.device)]


__all__ = [
    "DESCRIPTION",
    "KEY_SUFFIX",
    "LABEL",
    "NAME",
    "clip_is_silent",
    "drop_silent_first",
    "energy_before",
    "silent_tokens",
    "token_rms",
]
