"""Token merging: ToMe's bipartite soft matching, repeated until K tokens remain, with an optional
temporal window (LTBM). Pure tensor functions; `segprune.methods` wraps them as registry methods.

One round on the current sequence of m tokens (temporal order), r = min(m - K, ceil(m / 2)):

1. Split it alternately: A = the tokens at even positions 0, 2, 4, ..., B = those at odd positions.
2. Each A token's edge is its most similar B token (cosine of the two rows; ties: the earlier B)
   among the candidates: every B (global, ToMe's bipartite soft matching, Bolya et al., ICLR 2023,
   arXiv 2210.09461) or, with a window W, the W nearest B tokens on each side of it in the current
   sequence (local, in the spirit of LTBM, Luo et al., arXiv 2605.25179; W = 1: its two neighbours,
   and every merged token stays one contiguous stretch of time).
3. The r A tokens with the most similar edges (ties: the earlier A) merge into their B token; the
   other tokens stay as they are. Every B token stays, so the sequence keeps its temporal order.

Rounds repeat until exactly K tokens remain (a round removes r >= 1 tokens; keep 0.25 takes two).
A merged row is the mean of all the original tokens it holds, i.e. the size-weighted mean of the
rows merged (ToMe's ``merge_wavg``): the result does not depend on the order of the merges, and a
token that absorbed ten others weighs ten times one that absorbed none when it merges again. (ToMe
also adds log(size) to the attention logits, "proportional attention"; that needs a change inside
the language model, which segprune never makes, so each merged row enters the LLM once.) Each row
reports its anchor: the original position of the B token it was merged into, recursively (the
token that was never merged away). Computed in at least float32; returned in the input dtype on
the input device; rows that merged nothing are the original embeddings bit for bit.

Costs for N tokens, K kept, width H: the local merge reads the rows a few times per round, O(N * W * H)
multiply-adds in all; the global merge needs (m / 2)^2 * H per round (the sum over rounds is about
1.3 * (N / 2)^2 * H at keep 0.25), like any nearest-neighbour search over the whole clip.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Merged", "bipartite_merge", "forward_dots"]

EPS = 1e-12  # as F.normalize: a row's norm counts as at least this, so a zero row has cosine 0 with all
BLOCK_ROWS = 8  # rows per block of the local search's batched Gram products
MASKED_OFFSETS = 8  # a full round whose merges span at most this many offsets adds them as masked passes
SIM_BLOCK = 1 << 22  # similarity entries computed per matrix product (16 MiB of float32)


@dataclass(frozen=True, eq=False)
class Merged:
    """The result of merging N rows down to K.

    anchors: [K] int64 original positions, strictly increasing (temporal order).
    rows:    [K, H] the mean of the original rows each holds, in the input dtype and device.
    sizes:   [K] int64 how many original tokens each row holds (sum N; > 1 means it merged).
    """

    anchors: np.ndarray
    rows: torch.Tensor
    sizes: np.ndarray


def _host(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def forward_dots(s: torch.Tensor, span: int) -> np.ndarray:
    """F [m, span + 1] with F[p, d] = s_p . s_{p+d} for rows s [m, H] (0 where p + d >= m).

    One read of the rows: each block of BLOCK_ROWS rows times itself and the `span` rows after it,
    as batched matrix products over overlapping views of s (the last rows are copied, padded with
    zero rows); O(m * (BLOCK_ROWS + span) * H) multiply-adds.
    """
    m, h = s.shape
    step, width = BLOCK_ROWS, BLOCK_ROWS + span
    out = np.empty((m, span + 1), dtype=np.float64 if s.dtype == torch.float64 else np.float32)
    j = np.arange(step)[:, None]
    diagonals = torch.as_tensor((j * width + j + np.arange(span + 1)).reshape(-1), device=s.device)
    inside = max(0, (m - width) // step + 1)  # blocks t whose rows t * step .. t * step + width - 1 exist
    total = -(-m // step)  # blocks to start at every row
    tail = s[inside * step :]
    padded = torch.cat([tail, tail.new_zeros((total - inside) * step + span - tail.shape[0], h)])
    per_product = max(1, SIM_BLOCK // (step * width))
    for rows, count, base in ((s, inside, 0), (padded, total - inside, inside)):
        for t0 in range(0, count, per_product):
            t1 = min(count, t0 + per_product)
            stride = (step * rows.stride(0), rows.stride(0), rows.stride(1))
            view = rows[t0 * step :].as_strided((t1 - t0, width, h), stride)  # [blocks, width, H]
            gram = torch.bmm(view[:, :step], view.transpose(1, 2)).reshape(t1 - t0, step * width)
            lo, hi = (base + t0) * step, min(m, (base + t1) * step)
            out[lo:hi] = _host(gram[:, diagonals]).reshape(-1, span + 1)[: hi - lo]
    return out


def _local_edges(s: torch.Tensor, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Each A row's most similar B row among its `window` nearest B rows on each side.

    s [m, H] the current rows (A_i at position 2i, B_i at 2i + 1). A_i sits between B_{i-1} and
    B_i, so its candidates are B_{i+o} for o = -window .. window - 1 (in temporal order), at
    distance 2o + 1. Returns (dst [|A|] int64, cosine [|A|]); ties go to the earlier B.
    """
    m = s.shape[0]
    count_a = (m + 1) // 2
    span = min(2 * window - 1, m - 1)
    f = forward_dots(s, span)
    norm = np.maximum(np.sqrt(f[:, 0]), EPS)
    offsets = np.arange(-window, window)
    p = 2 * np.arange(count_a)[:, None]  # [|A|, 1] positions of the A rows
    q = p + 2 * offsets + 1  # [|A|, 2W] positions of their candidates
    valid = (q >= 0) & (q < m)
    dist = np.abs(q - p)
    first = np.clip(np.minimum(p, q), 0, m - 1)  # the dot of p and q sits at F[min(p, q), |q - p|]
    dots = np.where(valid & (dist <= span), f[first, np.minimum(dist, span)], 0.0)
    cos = np.where(valid, dots / (norm[np.clip(q, 0, m - 1)] * norm[np.clip(p, 0, m - 1)]), -np.inf)
    col = np.argmax(cos, axis=1)  # first maximum: the earliest candidate
    rows = np.arange(count_a)
    return (rows + offsets[col]).astype(np.int64), cos[rows, col]


def _global_edges(a: torch.Tensor, b: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Each A row's most similar B row among all of them: (dst [|A|] int64, cosine [|A|]).

    Cosines in blocks of A rows (one matrix product per block, at most SIM_BLOCK entries), each
    scaled by the two norms; ties go to the earlier B (torch's max returns the first maximum).
    """
    na = torch.linalg.vector_norm(a, dim=1).clamp_min_(EPS)
    unit_b = b / torch.linalg.vector_norm(b, dim=1, keepdim=True).clamp_min_(EPS)  # [|B|, H]
    step = max(1, SIM_BLOCK // b.shape[0])
    dst = np.empty(a.shape[0], dtype=np.int64)
    cos = np.empty(a.shape[0], dtype=np.float64 if a.dtype == torch.float64 else np.float32)
    for lo in range(0, a.shape[0], step):
        best, where = (a[lo : lo + step] @ unit_b.T).max(dim=1)
        dst[lo : lo + step] = _host(where)
        cos[lo : lo + step] = _host(best / na[lo : lo + step])
    return dst, cos


def _merge_round(s: torch.Tensor, k: int, window: int | None) -> tuple[np.ndarray, np.ndarray]:
    """One round on the current group sums s [m, H] (m > k >= 1; the cosine of two sums is that of
    the two means): which rows merge where. Returns (dest [m] int64, kept [m] bool): every row is
    either kept (dest: its index in the next sequence) or an A row merged into a B row (dest: that
    B row's index in the next sequence). A window that reaches every B is the global search.
    """
    m = s.shape[0]
    count_a = (m + 1) // 2
    if window is None or window >= count_a:  # every B is a candidate of every A: the global search
        dst, cos = _global_edges(s[0::2], s[1::2])
    else:
        dst, cos = _local_edges(s, window)
    r = min(m - k, count_a)
    merging = np.arange(count_a) if r == count_a else np.argsort(-cos, kind="stable")[:r]  # ties: earlier A
    kept = np.ones(m, dtype=bool)
    kept[2 * merging] = False
    new = np.cumsum(kept) - 1
    dest = new.copy()
    dest[2 * merging] = new[2 * dst[merging] + 1]
    return dest, kept


def _apply(s: torch.Tensor, sizes: np.ndarray, dest: np.ndarray, kept: np.ndarray):
    """The next sequence of a round: (sums [count, H], sizes [count]), each kept row copied and
    each merged A row (A rows sit at the even positions) added into its B row, in the order of
    the A rows (as index_add_ adds on CPU, so both paths give the same sums)."""
    device = s.device
    a, b = s[0::2], s[1::2]
    merged_a = ~kept[0::2]
    sizes = np.bincount(dest, weights=sizes, minlength=int(kept.sum())).astype(np.int64)
    if not merged_a.all():  # a last, partial round: the rows that stay, plus the merged A rows
        out = s[torch.as_tensor(np.flatnonzero(kept), device=device)]
        where = np.flatnonzero(merged_a)
        source = a[torch.as_tensor(where, device=device)]
        return out.index_add_(0, torch.as_tensor(dest[2 * where], device=device), source), sizes
    offset = dest[0::2] - np.arange(a.shape[0])  # a full round: A_i went into B_{i + offset_i}
    if offset.max() - offset.min() >= MASKED_OFFSETS:
        return b.clone().index_add_(0, torch.as_tensor(dest[0::2], device=device), a), sizes
    out = None  # a local round: the B rows plus one masked add per offset (faster than index_add_ on CPU)
    for o in range(int(offset.max()), int(offset.min()) - 1, -1):  # descending offsets: each B gets its A in order
        lo, hi = max(0, -o), min(a.shape[0], b.shape[0] - o)
        mask = torch.as_tensor(offset[lo:hi] == o, dtype=s.dtype, device=device).unsqueeze(-1)
        if out is None and (lo + o, hi + o) == (0, b.shape[0]):
            out = torch.addcmul(b, a[lo:hi], mask)  # the copy of the B rows and the first add in one pass
            continue
        if out is None:
            out = b.clone()
        out[lo + o : hi + o].addcmul_(a[lo:hi], mask)
    return out, sizes


def bipartite_merge(x: torch.Tensor, k: int, window: int | None = None) -> Merged:
    """Merge the rows of x [N, H] in rounds of bipartite matching until k remain (module docstring).

    window: None merges by similarity anywhere (global); an integer W >= 1 lets a token merge only
    into one of the W nearest B tokens on each side of it (local; a W that reaches every B is the
    global search). k >= n returns x itself. Deterministic on CPU (on CUDA, index_add_ may add the
    rows of one group in another order, which can change a sum's last bit).
    """
    n = x.shape[0]
    if k >= n:
        return Merged(np.arange(n, dtype=np.int64), x, np.ones(n, dtype=np.int64))
    work = torch.promote_types(x.dtype, torch.float32)
    s = x.to(work)  # the sums of the groups so far (x itself when already float32 or float64)
    anchors = np.arange(n, dtype=np.int64)
    sizes = np.ones(n, dtype=np.int64)
    while s.shape[0] > k:
        dest, kept = _merge_round(s, k, window)
        s, sizes = _apply(s, sizes, dest, kept)
        anchors = anchors[kept]
    # s is this function's own buffer now: the means in place, then the rows that merged nothing
    # as the originals bit for bit (a masked add of 0 can turn a -0.0 into 0.0)
    rows = s.div_(torch.as_tensor(sizes, dtype=work, device=x.device).unsqueeze(-1)).to(x.dtype)
    alone = np.flatnonzero(sizes == 1)
    if alone.size:
        rows[torch.as_tensor(alone, device=x.device)] = x[torch.as_tensor(anchors[alone], device=x.device)]
    return Merged(anchors, rows, sizes)
