"""Speech Segmentwise: Segmentwise Top-K for encoder-decoder Whisper, which reads padding too.

Whisper's encoder always sees a 30 s window: a 4 s clip is 200 of its N = 1500 frames and the
other 1300 encode the zero padding after it. The decoder cross-attends to all of them, and it
needs some padding (it reads where the speech ends from it, and stops there), but not most of it.
Segmentwise Top-K over the whole window spends ~85 % of K on padding for a short clip and starves
the speech; Top-K and `--drop-silent` swing the other way and may keep no padding at all.

`speech_segmentwise` splits K between the two regions of the window, [0, audio_end) speech and
[audio_end, N) padding:

1. a padding budget P = min(ceil(pad_share * K), padding frames), filled in this order: the
   window's last `tail` frames, from the very last backwards; then the `after` frames right
   after the speech ends; then the best-scoring other padding frames;
2. the K - P others go to the speech region by Segmentwise Top-K: S_eff = min(segments, K - P)
   near-equal segments of the speech region, floor((K - P) / S_eff) best-scoring frames each,
   the leftover to the best-scoring speech frames not yet kept;
3. if the speech region has fewer frames than its share, it is kept whole and the remaining slots
   go to padding (same order as in 1).

Exactly K frames, in temporal order; ties go to the lower index; K = N keeps every frame; with no
padding (audio_end = N) it is Segmentwise Top-K itself. `audio_end` = min(N, ceil(seconds / 0.02))
for Whisper's 20 ms frames.

Why this order (benchmarks/results/whisper-wer.md, whisper tiny.en on espeak-ng speech): the
decoder needs the window's very last frames to end its transcript (without them it loops: a
budget of the 38 frames 1400-1437 looped on 8 of 23 clips at keep 0.1, the 38 frames 1462-1499
on none); a padding share of 0.25 beat 0.10 and 0.15 at keep 0.1 and 0.05 on the tuning clips.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from .methods import DEFAULT_SEGMENTS, Selection, _top_indices, segment_bounds

__all__ = ["speech_segmentwise"]


def speech_segmentwise(
    scores: np.ndarray,
    k: int,
    *,
    audio_end: int,
    segments: int = DEFAULT_SEGMENTS,
    pad_share: float = 0.25,
    after: int = 50,
    tail: int = 50,
    silent: np.ndarray | None = None,
    **_,
) -> Selection:
    """Keep k of the N frames of one Whisper window: Segmentwise Top-K over the speech region
    [0, audio_end) plus a padding budget that starts with the frames right after the speech and
    the window's last frames.

    scores: [N] float, attention received (higher = more salient). k: 1 <= k <= N.
    audio_end: first frame index past the clip's audio, 1 <= audio_end <= N (N: no padding).
    segments: S of Segmentwise Top-K over the speech region.
    pad_share: fraction of k (rounded up) reserved for padding frames, in [0, 1].
    after, tail: how many frames right after the speech / at the window's end the padding budget
        takes first (>= 0).
    silent: optional bool [N]; silent frames inside the speech region are taken last there.
    Returns a Selection of exactly k strictly increasing indices, with the speech region's segment
    boundaries (their last entry is audio_end).
    """
    scores = np.asarray(scores, dtype=np.float64)
    n = int(scores.shape[0])
    if not 1 <= k <= n:
        raise ValueError(f"k must be from 1 to {n}, got {k}.")
    if not 1 <= audio_end <= n:
        raise ValueError(f"audio_end must be from 1 to {n} (the first frame past the audio), got {audio_end}.")
    if not 0.0 <= pad_share <= 1.0:
        raise ValueError(f"pad_share must be in [0, 1], got {pad_share}.")
    if after < 0 or tail < 0:
        raise ValueError("after and tail must be non-negative frame counts.")
    kept = np.zeros(n, dtype=bool)
    padding = np.arange(audio_end, n)
    pad_budget = min(math.ceil(pad_share * k), padding.size)
    speech_budget = min(k - pad_budget, audio_end)
    pad_budget = k - speech_budget  # the speech region may be too short for its share

    # padding: the window's last frames (from the very last backwards), then the frames right after
    # the speech, then the best-scoring others
    first = np.concatenate([padding[::-1][:tail], padding[:after]])
    first = first[np.sort(np.unique(first, return_index=True)[1])]  # in order of priority, once each
    kept[first[:pad_budget]] = True
    rest = pad_budget - min(pad_budget, first.size)
    if rest:
        others = padding[~kept[padding]]
        kept[others[_top_indices(scores[others], rest)]] = True

    # speech: Segmentwise Top-K over [0, audio_end)
    rank = scores[:audio_end] if silent is None else np.where(silent[:audio_end], -np.inf, scores[:audio_end])
    bounds = segment_bounds(audio_end, max(1, min(segments, speech_budget, audio_end)))
    if speech_budget:
        s = len(bounds) - 1
        per = speech_budget // s
        for start, stop in itertools.pairwise(bounds):
            kept[start + _top_indices(rank[start:stop], min(per, stop - start))] = True
        left = speech_budget - int(kept[:audio_end].sum())
        if left:
            free = np.flatnonzero(~kept[:audio_end])
            kept[free[_top_indices(rank[free], left)]] = True
    return Selection(np.flatnonzero(kept), n, segment_bounds=bounds)
