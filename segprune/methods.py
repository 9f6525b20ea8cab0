"""Audio token selection methods: scores [N] (+ embeddings [N, H]) and a budget K -> kept tokens.

Every method keeps the same number of tokens for a clip of N audio tokens and a keep ratio r in
(0, 1] (the fraction KEPT):

    K = max(1, floor(r * N + 0.5))          (round half up: 25 % of 250 tokens keeps 63)

and returns a :class:`Selection` whose ``indices`` are exactly K distinct token positions in
temporal (ascending) order. Ties between equal scores always go to the lower index, so every
method is deterministic (``random`` is deterministic for a given seed). At r = 1.0 every method
returns ``arange(N)``: pruning at keep 1.0 is the identity.

A method is a small frozen dataclass whose fields are ITS options (the kvpress style), with one
``choose(scores, k, embeddings=..., silent=...)`` method; the registry :data:`METHODS` maps names
to the classes, in display order:

- ``segmentwise(segments=10)``  Segmentwise Top-K (Gibier et al., arXiv 2511.14293): split the
  clip into S_eff = min(S, K) contiguous near-equal segments; each keeps its floor(K / S_eff) best
  tokens and the K - S_eff * floor(K / S_eff) leftover slots go to the best tokens not yet kept.
- ``topk``         the K highest scores over the whole clip.
- ``visionzip(context_ratio=0.18, context_window=16)``  VisionZip (Yang et al., CVPR 2025, arXiv 2412.04467)
  adapted to audio: the top K_d tokens by score (dominant) plus K_c = round(K * r / (1 + r)) contextual
  tokens, each the mean of an evenly spaced "target" token and the remaining tokens most similar to it
  among their 2W nearest targets in time (W = context_window; 0: among all, the original's N^2 search).
- ``adaptive-segmentwise(segments=10)``  segment budgets proportional to attention mass.
- ``speech-segmentwise(segments=10, pad_share=0.25, pad_after=50, pad_tail=50)``  for a window
  padded past the audio (Whisper's 1500 frames): Segmentwise Top-K over the audio region
  [0, audio_end) plus a padding budget that always holds the window's last frames and the frames
  right after the audio ends (see `speech_segmentwise`); Segmentwise Top-K itself where audio_end = N.
- ``divprune``     greedy max-min diversity of the embeddings (Alvar et al., CVPR 2025).
- ``local-merge(window=1)``  token merging in rounds of bipartite matching, each token into its most
  similar neighbour within `window` tokens on each side, until K remain (LTBM, arXiv 2605.25179).
- ``global-merge``  the same rounds with the whole clip in reach (after ToMe, arXiv 2210.09461): each
  token's candidates are its two neighbours and the two nearest that hash like it anywhere in the
  clip, compared in the clip's principal directions (`merging.sketched_global_merge`). Both in
  `segprune.merging`, reporting anchors as indices and the merged rows (means) as embeddings.
- ``random(seed=0)``  K distinct tokens drawn with ``np.random.default_rng(seed)``.
- ``bottomk``      the K lowest scores (a sanity check: it should do worst).
- ``uniform``      K evenly spaced tokens, index_i = floor((i + 0.5) * N / K).

    select("segmentwise", scores, 0.25, segments=10)            # by name, with its options
    make_method("visionzip", context_ratio=0.3).choose(scores, k, embeddings=emb)

An option a method does not have is an error that names the options it has. Everything here is
pure: numpy for scores, torch only for embeddings, imported by the functions that read them (so
the registry, and every ``--help`` built from it, loads without torch). :func:`select` validates
its inputs and dispatches; a method's own functions assume valid input. Costs: the score methods,
the merges and visionzip (its window) are a few passes over N; divprune grows with N * K
(:func:`selection_seconds` estimates how long, for the app's warning). Silent tokens
(``silent=``) are dropped first for any method (see `segprune.silence`).
"""

from __future__ import annotations

import math
import numbers
import sys
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from . import silence

if TYPE_CHECKING:
    import torch

    from .merging import Merged

__all__ = [
    "DEFAULT_METHOD",
    "DEFAULT_SEGMENTS",
    "METHODS",
    "SPEECH_METHOD",
    "Method",
    "Selection",
    "get_method",
    "keep_count",
    "make_method",
    "segment_bounds",
    "select",
    "selection_multiply_adds",
    "selection_seconds",
]

DEFAULT_METHOD = "segmentwise"
DEFAULT_SEGMENTS = 10
SPEECH_METHOD = "speech-segmentwise"  # the default of families whose window is padded past the audio (Whisper)
VISIONZIP_CONTEXT_RATIO = 0.18  # contextual / dominant tokens, as in the VisionZip paper
VISIONZIP_WINDOW = 16  # targets on each side a remaining token may merge into (0: every target)
SIM_BLOCK = 1 << 22  # similarity entries per matrix product of VisionZip's search (16 MiB of float32)
CONTEXT_ROWS = 1024  # at most this many tokens per matrix product of VisionZip's windowed search
CONTEXT_STRETCH = 48  # targets per product (at least 2W + 1): MKL's float32 products of 512-1024 rows
# by 896 run a third slower per entry with 49 or more columns than with 33 to 48, on this project's CPU
DIVPRUNE_CANDIDATES = 512  # DivPrune's first candidate set (it grows with the picks a round makes)
DIVPRUNE_GROWTH = 8  # the candidates' Gram matrix stays about 1/8 of a round's refresh


# --- budgets


def _is_int(x) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, (bool, np.bool_))


def keep_count(n: int, keep_ratio: float) -> int:
    """Number of tokens K kept out of ``n`` at ``keep_ratio``: max(1, floor(keep_ratio * n + 0.5)).

    Computed in plain float arithmetic, exactly as written (so anyone can recompute K the same
    way; 0.145 of 100 keeps 14 because the float 0.145 is a hair below it). Raises ValueError if
    ``n`` is not an integer >= 1 or ``keep_ratio`` is not a real number in (0, 1].
    """
    if not _is_int(n) or n < 1:
        raise ValueError(f"The number of tokens must be an integer of at least 1, got {n!r}.")
    if not isinstance(keep_ratio, numbers.Real) or isinstance(keep_ratio, (bool, np.bool_)):
        raise ValueError(f"The keep ratio must be a number in (0, 1], got {_shown(keep_ratio)}.")
    try:
        r = float(keep_ratio)
    except OverflowError:  # an integer too large for a float
        raise ValueError(f"The keep ratio must be in (0, 1] (the fraction kept), got {_shown(keep_ratio)}.") from None
    if not (0.0 < r <= 1.0):  # also rejects NaN
        raise ValueError(f"The keep ratio must be in (0, 1] (the fraction kept), got {_shown(keep_ratio)}.")
    return max(1, math.floor(r * int(n) + 0.5))


def _is_tensor(x) -> bool:
    """Whether x is a torch tensor, without importing torch (where it is not loaded, nothing is one)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _shown(value) -> str:
    """A value as an error message quotes it: its repr, cut short (a visitor's 10**400 stays readable)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def segment_bounds(n: int, segments: int) -> np.ndarray:
    """Boundaries [S + 1] int64 of S contiguous near-equal segments of ``n`` tokens: [0, ..., n].

    Segment s is tokens bounds[s]:bounds[s + 1]. Sizes differ by at most one, the first n % S
    segments being the larger ones (as ``np.array_split``). Requires 1 <= segments <= n.
    """
    if not _is_int(n) or n < 1:
        raise ValueError(f"The number of tokens must be an integer of at least 1, got {n!r}.")
    if not _is_int(segments) or not 1 <= segments <= n:
        raise ValueError(f"The number of segments must be an integer from 1 to {n}, got {_shown(segments)}.")
    q, rem = divmod(int(n), int(segments))
    i = np.arange(int(segments) + 1, dtype=np.int64)
    return i * q + np.minimum(i, rem)


# --- results


@dataclass(frozen=True, eq=False)
class Selection:
    """What a method kept.

    indices:        [K] int64, strictly increasing (temporal order), each in [0, n).
    n:              N, the number of tokens selected from.
    embeddings:     [K, H] for merge methods (row i belongs to indices[i]); None means "use the
                    original embeddings at ``indices``".
    segment_bounds: [S_eff + 1] int64 boundaries a segmentwise method used, else None.
    merged:         [K] bool for merge methods: True where row i is a merge of several tokens
                    (its index is the merge's anchor), False where it is one token as it was; None
                    for methods that only drop.
    """

    indices: np.ndarray
    n: int
    embeddings: torch.Tensor | None = None
    segment_bounds: np.ndarray | None = None
    merged: np.ndarray | None = None

    def __post_init__(self):
        idx = np.array(self.indices, dtype=np.int64)  # a private copy
        if idx.ndim != 1:
            raise ValueError(f"Selection indices must be 1-D, got shape {idx.shape}.")
        if idx.size and (idx[0] < 0 or idx[-1] >= self.n or np.any(idx[1:] <= idx[:-1])):
            raise ValueError("Selection indices must be strictly increasing and within [0, n).")
        object.__setattr__(self, "indices", idx)
        if self.embeddings is not None and (self.embeddings.ndim != 2 or self.embeddings.shape[0] != idx.size):
            raise ValueError(
                f"Selection embeddings must have shape [{idx.size}, H], got {tuple(self.embeddings.shape)}."
            )
        if self.segment_bounds is not None:
            object.__setattr__(self, "segment_bounds", np.array(self.segment_bounds, dtype=np.int64))
        if self.merged is not None:
            merged = np.array(self.merged, dtype=bool)
            if merged.shape != idx.shape:
                raise ValueError(f"Selection merged flags must have shape [{idx.size}], got {merged.shape}.")
            object.__setattr__(self, "merged", merged)

    @property
    def k(self) -> int:
        """K, the number of kept tokens."""
        return int(self.indices.size)

    @property
    def segments(self) -> int | None:
        """S_eff, the number of segments a segmentwise method used (None for other methods)."""
        return None if self.segment_bounds is None else len(self.segment_bounds) - 1


# --- helpers


def _top_mask(x: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask [..., C] of the k largest values along the last axis of x [..., C].

    Ties go to the lower index, exactly as a stable sort of -x would choose. O(C) per row.
    """
    c = x.shape[-1]
    if k <= 0:
        return np.zeros(x.shape, dtype=bool)
    if k >= c:
        return np.ones(x.shape, dtype=bool)
    thr = np.partition(x, c - k, axis=-1)[..., c - k, None]  # the k-th largest value per row
    above = x > thr
    ties = x == thr
    need = k - above.sum(axis=-1, keepdims=True)  # how many tied values to take, lowest index first
    return above | (ties & (np.cumsum(ties, axis=-1) <= need))


def _top_indices(x: np.ndarray, k: int) -> np.ndarray:
    """Ascending indices [k] of the k largest values of x [C] (ties: lower index first)."""
    return np.flatnonzero(_top_mask(x, k))


# --- the selection functions (pure; every option explicit)


def topk(scores: np.ndarray, k: int) -> Selection:
    """The k highest scores of scores [N]; ties to the lower index. Returns k indices."""
    return Selection(_top_indices(scores, k), scores.shape[0])


def bottomk(scores: np.ndarray, k: int) -> Selection:
    """The k lowest scores of scores [N]; ties to the lower index. Returns k indices."""
    return Selection(_top_indices(-scores, k), scores.shape[0])


def random(scores: np.ndarray, k: int, seed: int = 0) -> Selection:
    """k distinct indices of [N] drawn with np.random.default_rng(seed); scores are ignored."""
    n = scores.shape[0]
    rng = np.random.default_rng(seed)
    return Selection(np.sort(rng.choice(n, size=k, replace=False)), n)


def uniform(scores: np.ndarray, k: int) -> Selection:
    """k evenly spaced indices of [N]: floor((i + 0.5) * N / k), i = 0..k-1 (exact integers)."""
    n = scores.shape[0]
    i = np.arange(k, dtype=np.int64)
    return Selection((2 * i + 1) * n // (2 * k), n)


def segmentwise(scores: np.ndarray, k: int, segments: int = DEFAULT_SEGMENTS) -> Selection:
    """Segmentwise Top-K of scores [N]: k indices, at least floor(k / S_eff) in each segment.

    S_eff = min(segments, k) contiguous near-equal segments; each keeps its floor(k / S_eff)
    highest scores, and the leftover k - S_eff * floor(k / S_eff) slots go to the highest scores
    not yet kept, anywhere. Ties to the lower index. Records the S_eff + 1 boundaries used.
    """
    n = scores.shape[0]
    s = min(segments, k)
    bounds = segment_bounds(n, s)
    per = k // s
    # Lay the segments out as rows of a [S_eff, max size] matrix padded with -inf (rows that are
    # one shorter get one pad at the end), then take the top `per` of every row at once.
    width = int(bounds[1] - bounds[0])
    sizes = np.diff(bounds)
    valid = np.arange(width) < sizes[:, None]  # [S_eff, width]
    rows = np.full(valid.shape, -np.inf)
    rows[valid] = scores  # row-major fill = temporal order
    kept = _top_mask(rows, per)[valid]  # [N]; per <= every row's size, so pads are never kept
    leftover = k - s * per
    if leftover:
        rest = np.flatnonzero(~kept)
        kept[rest[_top_indices(scores[rest], leftover)]] = True
    return Selection(np.flatnonzero(kept), n, segment_bounds=bounds)


def visionzip(
    scores: np.ndarray,
    k: int,
    embeddings: torch.Tensor,
    context_ratio: float = VISIONZIP_CONTEXT_RATIO,
    context_window: int = VISIONZIP_WINDOW,
) -> Selection:
    """VisionZip adapted to audio: scores [N], embeddings [N, H] -> k indices and [k, H] embeddings.

    K_c = round(k * r / (1 + r)) contextual tokens (r = context_ratio, 0.18), K_d = k - K_c
    dominant tokens = the top K_d scores. Among the N - K_d remaining tokens (temporal order), K_c
    evenly spaced targets are kept; every other remaining token is merged into the target of
    highest cosine similarity among its candidates (ties: the earlier target): the 2W targets
    nearest it in time (W = context_window: the W before it and the W after it, shifted to 2W at the ends
    of the clip), or every target where W = 0 or K_c <= 2W (the original VisionZip, whose search
    over K_c * (N - K) pairs grows with the square of the clip). A target's row is the mean of
    itself and what merged into it (computed in at least float32); a target that received nothing
    and every dominant row keep their original embedding bit for bit. Output is in the input
    dtype/device; ``merged`` flags the targets that received merges. With K_c = 0 this is Top-K.
    """
    import torch
    import torch.nn.functional as F

    n = scores.shape[0]
    k_c = round(k * context_ratio / (1 + context_ratio))
    k_d = k - k_c
    dominant = _top_mask(scores, k_d)
    rest = np.flatnonzero(~dominant)  # [R] temporal order
    if k_c == 0 or rest.size == 0:
        idx = np.flatnonzero(dominant)
        rows = embeddings[torch.as_tensor(idx, device=embeddings.device)]
        return Selection(idx, n, embeddings=rows, merged=np.zeros(idx.size, dtype=bool))

    r = rest.size
    is_target = np.zeros(r, dtype=bool)
    is_target[(2 * np.arange(k_c) + 1) * r // (2 * k_c)] = True
    targets, others = rest[is_target], rest[~is_target]
    keep = dominant.copy()
    keep[targets] = True
    idx = np.flatnonzero(keep)  # [k]

    device = embeddings.device
    work = torch.promote_types(embeddings.dtype, torch.float32)
    t_unit = F.normalize(embeddings[torch.as_tensor(targets, device=device)].to(work), dim=-1)  # [K_c, H]
    into = np.full(n, k, dtype=np.int64)  # each token's output row; k: none (a spare row)
    into[idx] = np.arange(k)
    if context_window == 0 or k_c <= 2 * context_window:
        assign = _nearest_target(embeddings, others, t_unit)
    else:
        assign = _nearest_target_in_window(embeddings, targets, others, t_unit, context_window)
    target_rows = np.searchsorted(idx, targets)  # [K_c] the targets' output rows
    into[others] = target_rows[assign]
    # one pass: each output row is the sum of its tokens, in temporal order; a row of one token is
    # that token bit for bit (-0.0 + x == x for every x, a zero's sign included)
    out = torch.full((k + 1, embeddings.shape[1]), -0.0, dtype=work, device=device)
    out.index_add_(0, torch.as_tensor(into, device=device), embeddings.to(work))
    counts = np.bincount(assign, minlength=k_c)  # merges received per target
    hit = target_rows[counts > 0]
    at = torch.as_tensor(hit, device=device)
    sizes = torch.as_tensor(counts[counts > 0] + 1, dtype=work, device=device).unsqueeze(-1)
    out.index_copy_(0, at, out.index_select(0, at).div_(sizes))  # the means of the rows that received merges
    out = out[:k].to(embeddings.dtype)
    merged = np.zeros(k, dtype=bool)
    merged[hit] = True
    return Selection(idx, n, embeddings=out, merged=merged)


def _nearest_target(embeddings: torch.Tensor, others: np.ndarray, t_unit: torch.Tensor) -> np.ndarray:
    """[len(others)] the index of each other token's most similar target among all K_c (t_unit
    [K_c, H], unit rows), in blocks of at most SIM_BLOCK similarities; ties: the earlier target."""
    import torch
    import torch.nn.functional as F

    step = max(1, SIM_BLOCK // t_unit.shape[0])
    assign = np.empty(others.size, dtype=np.int64)
    for lo in range(0, others.size, step):
        rows = embeddings[torch.as_tensor(others[lo : lo + step], device=embeddings.device)].to(t_unit.dtype)
        assign[lo : lo + step] = (F.normalize(rows, dim=-1) @ t_unit.T).argmax(dim=-1).cpu().numpy()
    return assign


def _nearest_target_in_window(
    embeddings: torch.Tensor, targets: np.ndarray, others: np.ndarray, t_unit: torch.Tensor, window: int
) -> np.ndarray:
    """[len(others)] the index of each other token's most similar target among its 2W candidates
    (see `visionzip`; 2W < K_c), ties: the earlier target.

    The tokens are cut into blocks of consecutive tokens whose candidates all lie in one stretch of
    C = max(CONTEXT_STRETCH, 2W + 1) targets (at most CONTEXT_ROWS tokens); each block is one matrix
    product with its stretch (a view of t_unit), added onto each token's window mask (0 on its 2W
    candidates, -inf elsewhere), and one max over all tokens picks the first best. The embeddings are
    read once and the work is N * C * H.
    """
    import torch

    n, k_c = embeddings.shape[0], t_unit.shape[0]
    first = np.clip(np.searchsorted(targets, np.arange(n)) - window, 0, k_c - 2 * window)  # [N] nondecreasing
    width = min(k_c, max(CONTEXT_STRETCH, 2 * window + 1))
    span = width - 2 * window + 1  # the first candidates a block may hold
    blocks, lo = [], 0
    while lo < n:
        hi = min(n, lo + CONTEXT_ROWS, int(np.searchsorted(first, first[lo] + span)))
        blocks.append((lo, hi, min(int(first[lo]), k_c - width)))  # its stretch starts there
        lo = hi
    start = np.repeat([s for _, _, s in blocks], [hi - lo for lo, hi, _ in blocks])  # [N]
    offset, column = np.arange(span)[:, None], np.arange(width)
    masks = np.where((column >= offset) & (column < offset + 2 * window), 0.0, -math.inf)  # [span, C]
    device = t_unit.device
    dots = torch.as_tensor(masks, dtype=t_unit.dtype, device=device).index_select(
        0, torch.as_tensor(first - start, device=device)
    )  # [N, C] each token's window mask (index_select: a fifth of advanced indexing's time here)
    for lo, hi, s in blocks:  # dots[lo:hi] = mask + rows @ stretch^T
        dots[lo:hi].addmm_(embeddings[lo:hi].to(t_unit.dtype), t_unit[s : s + width].T)
    best = dots.max(dim=1).indices.cpu().numpy() + start  # the first maximum: the earliest target
    return best[others]


def adaptive_segmentwise(
    scores: np.ndarray, k: int, segments: int = DEFAULT_SEGMENTS, silent: np.ndarray | None = None
) -> Selection:
    """Segmentwise Top-K whose per-segment budget follows each segment's attention mass.

    scores [N] -> k indices. S_eff = min(segments, k) segments as in `segmentwise`. Segment s
    holds mass m_s = sum of its non-negative scores (silent tokens count 0). Every segment with
    at least one non-silent token gets a floor of one token; the k - floors spare slots are shared
    in proportion to mass: quota_s = floor_s + spare * m_s / sum(m). Each segment keeps its
    min(floor(quota_s), size_s) best tokens (silent ones last), and the slots left over go to the
    best tokens not yet kept, anywhere (as in `segmentwise`). Exactly k in total.

    With equal masses and no silence, quota_s = k / S_eff for every segment: exactly Segmentwise
    Top-K. (The paper's closing suggestion, adaptive token budgeting, arXiv 2511.14293 §6.)
    """
    n = scores.shape[0]
    s = min(segments, k)
    bounds = segment_bounds(n, s)
    live = np.ones(n, dtype=bool) if silent is None else ~silent
    rank = np.where(live, scores, -np.inf)  # silent tokens are taken last
    mass = np.add.reduceat(np.where(live, np.clip(scores, 0.0, None), 0.0), bounds[:-1])
    floors = np.logical_or.reduceat(live, bounds[:-1]).astype(np.int64)
    spare = k - int(floors.sum())
    share = mass / mass.sum() if mass.sum() > 0 else np.full(s, 1.0 / s)
    per = np.minimum(np.floor(floors + spare * share + 1e-9).astype(np.int64), np.diff(bounds))
    kept = np.zeros(n, dtype=bool)
    for start, stop, count in zip(bounds[:-1], bounds[1:], per):
        kept[start + _top_indices(rank[start:stop], int(count))] = True
    leftover = k - int(kept.sum())
    if leftover:
        rest = np.flatnonzero(~kept)
        kept[rest[_top_indices(rank[rest], leftover)]] = True
    return Selection(np.flatnonzero(kept), n, segment_bounds=bounds)


def speech_segmentwise(
    scores: np.ndarray,
    k: int,
    audio_end: int,
    segments: int = DEFAULT_SEGMENTS,
    pad_share: float = 0.25,
    pad_after: int = 50,
    pad_tail: int = 50,
    silent: np.ndarray | None = None,
) -> Selection:
    """Speech Segmentwise: Segmentwise Top-K over the audio region of a padded window plus a
    padding budget that starts with the window's last frames and the frames right after the audio.

    scores [N] -> k indices. Whisper's encoder always sees a 30 s window: a 4 s clip is 200 of its
    N = 1500 frames, the other 1300 encode the zero padding after it. Its decoder needs some of that
    padding (it reads there where the speech ends, and stops), but not most of it: Segmentwise
    Top-K over the whole window spends ~85 % of K on padding for a short clip and starves the
    speech; Top-K and dropping silent frames swing the other way and may keep no padding at all.
    So K is split between [0, audio_end) and [audio_end, N):

    1. a padding budget P = min(ceil(pad_share * k), N - audio_end), filled in this order: the
       window's last `pad_tail` frames, from the very last backwards; then the `pad_after` frames
       right after the audio ends; then the best-scoring other padding frames;
    2. the k - P others go to the audio region by Segmentwise Top-K: S_eff = min(segments, k - P)
       near-equal segments of [0, audio_end), floor((k - P) / S_eff) best-scoring frames each, the
       leftover to its best-scoring frames not yet kept; given `silent` [N] bool, the region's
       silent frames are dropped first (`silence.drop_silent_first`), the padding budget stays;
    3. if the audio region has fewer frames than its share it is kept whole and the remaining
       slots go to padding (in the order of 1).

    Exactly k strictly increasing indices; ties go to the lower index; k = N keeps every frame;
    with no padding (audio_end = N) it is Segmentwise Top-K itself (with silent frames dropped
    first, given `silent`). Records the audio region's segment boundaries (their last entry is
    audio_end; None where no segment was drawn: no slot for the audio, or fewer non-silent
    frames than its slots). Requires 1 <= k <= N, 1 <= audio_end <= N, 0 <= pad_share <= 1,
    pad_after, pad_tail >= 0.
    """
    n = scores.shape[0]
    kept = np.zeros(n, dtype=bool)
    padding = np.arange(audio_end, n)
    pad_budget = min(math.ceil(pad_share * k), padding.size)
    speech_budget = min(k - pad_budget, audio_end)
    pad_budget = k - speech_budget  # the audio region may be too short for its share

    # padding: the window's last frames (from the very last backwards), then the frames right
    # after the audio, then the best-scoring others
    first = np.concatenate([padding[::-1][:pad_tail], padding[:pad_after]])
    first = first[np.sort(np.unique(first, return_index=True)[1])]  # in order of priority, once each
    kept[first[:pad_budget]] = True
    rest = pad_budget - min(pad_budget, first.size)
    if rest:
        others = padding[~kept[padding]]
        kept[others[_top_indices(scores[others], rest)]] = True

    # the audio region: Segmentwise Top-K over [0, audio_end), its silent frames dropped first
    bounds = None
    if speech_budget:
        head = scores[:audio_end]
        if silent is None:
            chosen = segmentwise(head, speech_budget, segments)
            idx, bounds = chosen.indices, chosen.segment_bounds
        else:
            idx, _, bounds, _ = silence.drop_silent_first(
                lambda x, kk, _: segmentwise(x, kk, segments), head, speech_budget, silent[:audio_end]
            )
        kept[idx] = True
    return Selection(np.flatnonzero(kept), n, segment_bounds=bounds)


def divprune(scores: np.ndarray, k: int, embeddings: torch.Tensor) -> Selection:
    """DivPrune: greedy max-min cosine-distance selection over embeddings [N, H] -> k indices.

    Starts from the top-scoring token, then repeatedly adds the token whose smallest cosine
    distance (1 - cos, in at least float32) to the tokens already kept is largest (ties: lower
    index). A diverse set that ignores scores after the first pick. K * N * H multiply-adds at
    most, as matrix products on the embeddings' device (`greedy_max_min`); k = N keeps every token.
    (Alvar et al., DivPrune: Diversity-based Visual Token Pruning, CVPR 2025, arXiv 2503.02175.)
    """
    import torch
    import torch.nn.functional as F

    n = scores.shape[0]
    if k >= n:
        return Selection(np.arange(n), n)
    x = F.normalize(embeddings.to(torch.promote_types(embeddings.dtype, torch.float32)), dim=-1)
    return Selection(np.sort(greedy_max_min(x, int(_top_indices(scores, 1)[0]), k)), n)


def greedy_max_min(x: torch.Tensor, first: int, k: int, candidates: int = DIVPRUNE_CANDIDATES) -> np.ndarray:
    """The greedy max-min order [k] int64 over unit rows x [N, H], starting at row `first`.

    Pick t + 1 is the row whose distance to its nearest pick, d_i = min over picks c of (1 - x_i . x_c),
    is largest (ties: the lower row). The same picks as updating all N distances after every pick (up
    to the rounding of the products), in rounds that do the arithmetic as matrix products:

    1. Refresh: bring every d_i up to date with the R picks of the last round, one [N, H] x [H, R]
       product (in row blocks); d is then exact.
    2. Candidates: the M largest d_i; tau = the (M + 1)-th largest. The others' distances can only
       fall, so while the largest exact distance among the candidates is above tau, it is the next
       pick. One [M, H] x [H, M] product gives the candidates' distances to each other; each pick
       then costs two passes over M numbers. A round ends when no candidate is above tau (a round
       in which every candidate ties with tau picks the exact maximum instead).
    3. M for the next round: sqrt(N * R / DIVPRUNE_GROWTH), at least `candidates`, so the Gram
       product stays a fraction of the next refresh.

    The refreshes sum to K * N * H multiply-adds, as large products: measured 1.17x and 1.06x the CPU
    time of those multiply-adds as one float32 product at N = 15,000 and 45,000 (H = 896, keep 0.25,
    one thread), against about 25x for a pass over all N rows per pick.
    """
    import torch

    n = x.shape[0]
    d = 1.0 - _host(x @ x[first])  # [N] the distances so far (host), -inf once picked
    d[first] = -np.inf
    order = [first]
    applied = 1  # the picks d includes
    m = min(candidates, n)
    while len(order) < k:
        if applied < len(order):
            _refresh(d, x, order[applied:])
            d[order[applied:]] = -np.inf
            applied = len(order)
        size = min(m, n - len(order) - 1)
        if size < 1:  # one row left
            order.append(int(np.argmax(d)))
            continue
        part = np.argpartition(-d, size)  # the `size` largest first, then the (size + 1)-th
        tau = d[part[size]]
        cand = np.sort(part[:size])  # in row order: the first maximum is the lower row
        xc = x[torch.as_tensor(cand, device=x.device)]
        far = _host(torch.mm(xc, xc.T))  # [M, M] dots, then distances, of the candidates to each other
        np.subtract(1.0, far, out=far)
        dc = d[cand]  # a copy
        made = 0
        while len(order) < k:
            p = int(np.argmax(dc))
            if not dc[p] > tau:
                break
            order.append(int(cand[p]))
            made += 1
            dc[p] = -np.inf
            np.minimum(dc, far[p], out=dc)
        if made == 0:  # every candidate ties with tau: the exact maximum (d is up to date)
            j = int(np.argmax(d))
            order.append(j)
            made = 1
        m = min(n, max(candidates, int(math.sqrt(n * made / DIVPRUNE_GROWTH))))
    return np.array(order[:k], dtype=np.int64)


def _host(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _refresh(d: np.ndarray, x: torch.Tensor, picks: list[int]) -> None:
    """d [N] = min(d, 1 - max over `picks` of x . x_p) for rows x [N, H]: one [rows, H] x [H, R] product
    per block of rows (at most SIM_BLOCK entries); 1 - max(dot) = min(1 - dot) exactly."""
    import torch

    p = x[torch.as_tensor(picks, device=x.device)]  # [R, H]
    step = max(1, SIM_BLOCK // len(picks))
    for lo in range(0, x.shape[0], step):
        near = _host(torch.mm(x[lo : lo + step], p.T).amax(dim=1))
        np.minimum(d[lo : lo + step], 1.0 - near, out=d[lo : lo + step])


def _merged_selection(m: Merged, n: int) -> Selection:
    """A merge as a Selection: anchors as indices, merged rows, merged = rows that absorbed others."""
    return Selection(m.anchors, n, embeddings=m.rows, merged=m.sizes > 1)


# --- methods: each a small dataclass whose fields are its options

_PAPER = "Gibier et al., Segmentwise Pruning in Audio-Language Models, arXiv 2511.14293"


def _check_int(method: str, option: str, value, minimum: int) -> None:
    if not _is_int(value) or value < minimum:
        raise ValueError(
            f"{method}'s option {option} must be a whole number of at least {minimum}, got {_shown(value)}."
        )


@dataclass(frozen=True)
class Method:
    """A selection method with its options (the dataclass fields, each with a default).

    ``choose(scores [N] float64, k, embeddings=[N, H] | None, silent=bool [N] | None) -> Selection``
    assumes validated input; call :func:`select` (by name) or `choose` on a method made by
    :func:`make_method`. Class attributes describe the method for the registry, the app and the docs.
    """

    name: ClassVar[str]
    label: ClassVar[str]
    source: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    needs_embeddings: ClassVar[bool] = False
    merges: ClassVar[bool] = False  # returns merged embeddings (anchors as indices)
    drops_silent_itself: ClassVar[bool] = False  # takes `silent` itself; else silent tokens are dropped first
    reads_audio_end: ClassVar[bool] = False  # takes `audio_end` (where a window's padding starts) in `choose`

    def choose(self, scores: np.ndarray, k: int, embeddings: torch.Tensor | None = None, silent=None) -> Selection:
        raise NotImplementedError

    @classmethod
    def option_defaults(cls) -> dict:
        """The method's options and their defaults, e.g. {"segments": 10} ({} when it has none)."""
        return {f.name: f.default for f in fields(cls)}

    @classmethod
    def takes(cls, option: str) -> bool:
        """Whether the method has the option `option` (e.g. "segments")."""
        return option in cls.option_defaults()

    def options(self) -> dict:
        """This instance's option values."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def changed_options(self) -> dict:
        """The options whose value differs from the default (what names a setting apart)."""
        defaults = self.option_defaults()
        return {name: value for name, value in self.options().items() if value != defaults[name]}


@dataclass(frozen=True)
class Segmentwise(Method):
    name: ClassVar[str] = "segmentwise"
    label: ClassVar[str] = "Segmentwise Top-K"
    source: ClassVar[str] = _PAPER
    summary: ClassVar[str] = (
        "Top-K within each of S time segments: keeps salient tokens across the whole clip; the default."
    )
    segments: int = DEFAULT_SEGMENTS

    def __post_init__(self):
        _check_int(self.name, "segments", self.segments, 1)

    def choose(self, scores, k, embeddings=None, silent=None):
        return segmentwise(scores, k, self.segments)


@dataclass(frozen=True)
class TopK(Method):
    name: ClassVar[str] = "topk"
    label: ClassVar[str] = "Top-K"
    source: ClassVar[str] = f"baseline in {_PAPER}"
    summary: ClassVar[str] = "The K highest attention scores over the whole clip; may cluster in time."

    def choose(self, scores, k, embeddings=None, silent=None):
        return topk(scores, k)


@dataclass(frozen=True)
class VisionZip(Method):
    name: ClassVar[str] = "visionzip"
    label: ClassVar[str] = "VisionZip"
    source: ClassVar[str] = (
        "Yang et al., VisionZip: Longer is Better but Not Necessary in Vision Language Models, CVPR 2025, "
        "arXiv 2412.04467 (adapted to audio)"
    )
    summary: ClassVar[str] = (
        "Top scores plus ~15% contextual tokens, each merging the nearby dropped tokens most like it: keeps a summary "
        "of what is dropped."
    )
    needs_embeddings: ClassVar[bool] = True
    merges: ClassVar[bool] = True
    context_ratio: float = VISIONZIP_CONTEXT_RATIO  # contextual / dominant tokens
    context_window: int = VISIONZIP_WINDOW  # targets on each side a token may merge into (0: every target)

    def __post_init__(self):
        r = self.context_ratio
        if not isinstance(r, numbers.Real) or isinstance(r, bool) or not (0 <= float(r) < math.inf):
            raise ValueError(f"visionzip's option context_ratio must be a number of at least 0, got {_shown(r)}.")
        _check_int(self.name, "context_window", self.context_window, 0)

    def choose(self, scores, k, embeddings=None, silent=None):
        return visionzip(scores, k, embeddings, float(self.context_ratio), int(self.context_window))


@dataclass(frozen=True)
class AdaptiveSegmentwise(Method):
    name: ClassVar[str] = "adaptive-segmentwise"
    label: ClassVar[str] = "Adaptive Segmentwise"
    source: ClassVar[str] = "segprune, after the adaptive token budgeting that arXiv 2511.14293 names as next step"
    summary: ClassVar[str] = (
        "Segmentwise with each segment's budget proportional to its attention mass (at least one token per "
        "non-silent segment): for clips whose salient events are uneven in time."
    )
    drops_silent_itself: ClassVar[bool] = True
    segments: int = DEFAULT_SEGMENTS

    def __post_init__(self):
        _check_int(self.name, "segments", self.segments, 1)

    def choose(self, scores, k, embeddings=None, silent=None):
        return adaptive_segmentwise(scores, k, self.segments, silent)


@dataclass(frozen=True)
class SpeechSegmentwise(Method):
    name: ClassVar[str] = "speech-segmentwise"
    label: ClassVar[str] = "Speech Segmentwise"
    source: ClassVar[str] = f"segprune: Segmentwise Top-K ({_PAPER}) for a window padded past the audio (Whisper)"
    summary: ClassVar[str] = (
        "Segmentwise over the audio, plus a padding budget (a quarter of K) holding the window's last frames and "
        "the second after the audio: Whisper's default; Segmentwise itself where nothing is padding."
    )
    drops_silent_itself: ClassVar[bool] = True  # padding is silent: only the audio region's silences go last
    reads_audio_end: ClassVar[bool] = True
    segments: int = DEFAULT_SEGMENTS
    pad_share: float = 0.25
    pad_after: int = 50
    pad_tail: int = 50

    def __post_init__(self):
        _check_int(self.name, "segments", self.segments, 1)
        _check_int(self.name, "pad_after", self.pad_after, 0)
        _check_int(self.name, "pad_tail", self.pad_tail, 0)
        r = self.pad_share
        if not isinstance(r, numbers.Real) or isinstance(r, bool) or not (0 <= float(r) <= 1):
            raise ValueError(f"speech-segmentwise's option pad_share must be a number from 0 to 1, got {_shown(r)}.")

    def choose(self, scores, k, embeddings=None, silent=None, audio_end=None):
        end = scores.shape[0] if audio_end is None else audio_end
        return speech_segmentwise(
            scores, k, end, self.segments, float(self.pad_share), self.pad_after, self.pad_tail, silent
        )


@dataclass(frozen=True)
class DivPrune(Method):
    name: ClassVar[str] = "divprune"
    label: ClassVar[str] = "DivPrune"
    source: ClassVar[str] = (
        "Alvar et al., DivPrune: Diversity-based Visual Token Pruning for Large Multimodal Models, CVPR 2025, "
        "arXiv 2503.02175 (adapted to audio)"
    )
    summary: ClassVar[str] = (
        "Greedy max-min diversity of the embeddings, seeded with the top-scoring token: keeps distinct sounds, "
        "ignores repetition; no attention scores needed after the seed."
    )
    needs_embeddings: ClassVar[bool] = True

    def choose(self, scores, k, embeddings=None, silent=None):
        return divprune(scores, k, embeddings)


@dataclass(frozen=True)
class LocalMerge(Method):
    name: ClassVar[str] = "local-merge"
    label: ClassVar[str] = "Local merge"
    source: ClassVar[str] = (
        "after LTBM (Luo et al., Locality Matters for Training-Free Audio Token Compression in Audio-Language "
        "Models, arXiv 2605.25179) and ToMe's bipartite soft matching (Bolya et al., ICLR 2023, arXiv 2210.09461)"
    )
    summary: ClassVar[str] = (
        "Merges each token into its most similar neighbour (within a window) until K remain: every moment "
        "stays represented, steady stretches are averaged; no attention scores needed."
    )
    needs_embeddings: ClassVar[bool] = True
    merges: ClassVar[bool] = True
    window: int = 1  # neighbours on each side a token may merge into (1: the tokens just before and after it)

    def __post_init__(self):
        _check_int(self.name, "window", self.window, 1)

    def choose(self, scores, k, embeddings=None, silent=None):
        from .merging import bipartite_merge

        return _merged_selection(bipartite_merge(embeddings, k, self.window), scores.shape[0])


@dataclass(frozen=True)
class GlobalMerge(Method):
    name: ClassVar[str] = "global-merge"
    label: ClassVar[str] = "Global merge"
    source: ClassVar[str] = (
        "after ToMe's bipartite soft matching (Bolya et al., Token Merging: Your ViT But Faster, ICLR 2023, "
        "arXiv 2210.09461), the global variant of LTBM (arXiv 2605.25179); candidates by SimHash (Charikar, "
        "STOC 2002) in buckets ordered as Reformer's (Kitaev et al., ICLR 2020)"
    )
    summary: ClassVar[str] = (
        "Merges each token into the most similar of its neighbours and of the tokens that hash like it "
        "anywhere in the clip until K remain: repeats can collapse wherever they occur; no attention "
        "scores needed."
    )
    needs_embeddings: ClassVar[bool] = True
    merges: ClassVar[bool] = True

    def choose(self, scores, k, embeddings=None, silent=None):
        from .merging import sketched_global_merge

        return _merged_selection(sketched_global_merge(embeddings, k), scores.shape[0])


@dataclass(frozen=True)
class Random(Method):
    name: ClassVar[str] = "random"
    label: ClassVar[str] = "Random"
    source: ClassVar[str] = f"baseline in {_PAPER}"
    summary: ClassVar[str] = "K tokens drawn at random (seeded): the floor any scoring method must beat."
    seed: int = 0

    def __post_init__(self):
        _check_int(self.name, "seed", self.seed, 0)

    def choose(self, scores, k, embeddings=None, silent=None):
        return random(scores, k, self.seed)


@dataclass(frozen=True)
class BottomK(Method):
    name: ClassVar[str] = "bottomk"
    label: ClassVar[str] = "Bottom-K"
    source: ClassVar[str] = f"sanity-check baseline in {_PAPER}"
    summary: ClassVar[str] = "The K lowest scores: should do worst, which shows that the scores matter."

    def choose(self, scores, k, embeddings=None, silent=None):
        return bottomk(scores, k)


@dataclass(frozen=True)
class Uniform(Method):
    name: ClassVar[str] = "uniform"
    label: ClassVar[str] = "Uniform"
    source: ClassVar[str] = "simple coverage baseline (no scores)"
    summary: ClassVar[str] = "K evenly spaced tokens: even coverage of time without looking at scores."

    def choose(self, scores, k, embeddings=None, silent=None):
        return uniform(scores, k)


METHODS: dict[str, type[Method]] = {
    m.name: m
    for m in [
        Segmentwise,
        TopK,
        VisionZip,
        AdaptiveSegmentwise,
        SpeechSegmentwise,
        DivPrune,
        LocalMerge,
        GlobalMerge,
        Random,
        BottomK,
        Uniform,
    ]
}


def get_method(name: str) -> type[Method]:
    """The registered method class called ``name``; ValueError listing the names otherwise."""
    if isinstance(name, str) and name in METHODS:
        return METHODS[name]
    raise ValueError(f"Unknown method {_shown(name)}. Available methods: {', '.join(METHODS)}.")


def make_method(name: str, **options) -> Method:
    """The method ``name`` with ``options`` (e.g. ``make_method("segmentwise", segments=5)``).

    Raises ValueError for an unknown name, an option the method does not have (the message names
    the options it has) or a bad option value.
    """
    cls = get_method(name)
    defaults = cls.option_defaults()
    unknown = [o for o in options if o not in defaults]
    if unknown:
        have = ", ".join(f"{o} (default {d!r})" for o, d in defaults.items()) or "none"
        raise ValueError(f"Method {name!r} has no option {unknown[0]!r}; its options: {have}.")
    return cls(**options)


# --- cost: which selections take noticeably long

# The cost model, measured with `segprune bench --selection-n 15000 45000 --selection-hidden 896` on
# this project's 2-core CPU (benchmarks/RESULTS.md, "Selection at scale"): a selection whose work is
# a product's takes its multiply-adds over the CPU's rate in one large float32 matrix product, times
# how far the method stays from that product; the others are a few passes over N (milliseconds).
CPU_MULTIPLY_ADDS_PER_S = 40e9  # float32 matrix product, one thread: measured 43-55e9 in CPU time
# measured CPU time over the floor's at N = 15,000 / 45,000: divprune 1.17 / 1.06, visionzip 1.98 / 1.23
# (wall-time ratios at load 10: 0.90 / 1.47, 1.97 / 0.99)
SLOWDOWN_OVER_PRODUCT = {"divprune": 1.5, "visionzip": 2.0}


def selection_multiply_adds(method: str, n: int, k: int, hidden: int, options: dict | None = None) -> int:
    """The multiply-adds a method's selection needs for N tokens, K kept, width H (0: linear in N).

    options: method options by name (a method reads its own; the defaults where absent). divprune
    K * N * H (greedy max-min: every token against every pick); visionzip K_c * (N - K) * H where its
    window holds every contextual target (context_window 0 or K_c <= 2W: every token left over against
    every target), else 0 (each against its 2W nearest targets: a few passes over the rows); every
    other method is a few passes over the N scores or rows.
    """
    get_method(method)
    options = options or {}
    if method == "divprune":
        return k * n * hidden
    if method == "visionzip":
        ratio = options.get("context_ratio", VISIONZIP_CONTEXT_RATIO)
        window = options.get("context_window", VISIONZIP_WINDOW)
        k_c = round(k * ratio / (1 + ratio))
        return k_c * (n - k) * hidden if window == 0 or k_c <= 2 * window else 0
    return 0


def selection_seconds(method: str, n: int, keep: float = 0.25, hidden: int = 896) -> float:
    """The estimated seconds of one selection by `method` of keep ratio `keep` among N = n tokens of
    width `hidden`, on a CPU like this project's (the cost model above; 0.0 for the methods that are
    a few passes over N)."""
    work = selection_multiply_adds(method, n, keep_count(n, keep), hidden)
    return work / CPU_MULTIPLY_ADDS_PER_S * SLOWDOWN_OVER_PRODUCT.get(method, 1.0)


def select(
    method: str | Method,
    scores,
    keep_ratio: float,
    *,
    embeddings: torch.Tensor | None = None,
    silent: np.ndarray | None = None,
    audio_end: int | None = None,
    **options,
) -> Selection:
    """Run a method: scores [N] (+ embeddings [N, H]) -> Selection of K tokens.

    method: a registry name (its options as keyword arguments, e.g. ``segments=10``) or a Method
        made by `make_method` (then no options here).
    scores: 1-D, N >= 1, all finite (a numpy array, a sequence or a torch tensor).
    keep_ratio: the fraction kept, in (0, 1]; K = keep_count(N, keep_ratio).
    embeddings: [N, H] torch tensor; required by methods with ``needs_embeddings``.
    silent: optional bool [N], tokens in silent stretches: they are dropped first (any method
        keeps non-silent tokens before silent ones; still exactly K). See `segprune.silence`.
    audio_end: tokens [audio_end, N) cover no audio (`AudioTokens.audio_end`: a window's padding),
        1 <= audio_end <= N; None means N. Read by methods with ``reads_audio_end``
        (speech-segmentwise), ignored by the others.
    Raises ValueError with a plain sentence on any invalid input.
    """
    if isinstance(method, Method):
        if options:
            raise ValueError("Give the options to make_method, not to select, when passing a Method.")
        m = method
    else:
        m = make_method(method, **options)
    if _is_tensor(scores):
        scores = scores.detach().to("cpu", sys.modules["torch"].float64).numpy()
    try:
        scores = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise ValueError("Scores must be a 1-D sequence of real numbers.") from None
    if scores.ndim != 1 or scores.shape[0] < 1:
        raise ValueError(f"Scores must be a non-empty 1-D array, got shape {scores.shape}.")
    if not np.all(np.isfinite(scores)):
        raise ValueError("Scores must all be finite (no NaN or infinity).")
    n = scores.shape[0]
    k = keep_count(n, keep_ratio)
    if embeddings is not None:
        if not _is_tensor(embeddings) or embeddings.ndim != 2 or embeddings.shape[0] != n:
            shape = tuple(getattr(embeddings, "shape", ()))
            raise ValueError(f"Embeddings must be a torch tensor of shape [{n}, H], got {shape}.")
    elif m.needs_embeddings:
        raise ValueError(f"Method {m.name!r} needs the token embeddings [N, H]; none were given.")
    extra = {}
    if audio_end is not None:
        if not _is_int(audio_end) or not 1 <= audio_end <= n:
            raise ValueError(
                f"audio_end must be a token index from 1 to {n} (where the padding starts), got {_shown(audio_end)}."
            )
        if m.reads_audio_end:
            extra["audio_end"] = int(audio_end)
    if silent is None:
        return m.choose(scores, k, embeddings, **extra)
    silent = np.asarray(silent)
    if silent.shape != (n,) or silent.dtype != np.bool_:
        raise ValueError(f"The silence mask must be a boolean array of shape [{n}], got {silent.dtype} {silent.shape}.")
    if m.drops_silent_itself:
        return m.choose(scores, k, embeddings, silent, **extra)
    indices, rows, bounds, merged = silence.drop_silent_first(
        lambda s, kk, e: m.choose(s, kk, e), scores, k, silent, embeddings
    )
    if (
        m.merges and merged is None
    ):  # a merge method's flags travel with its rows; rows kept as they were are not merges
        merged = np.zeros(indices.size, dtype=bool)
    return Selection(indices, n, embeddings=rows, segment_bounds=bounds, merged=merged)
