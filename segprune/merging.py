"""Token merging: ToMe's bipartite soft matching, repeated until K tokens remain, with an optional
temporal window (LTBM). Pure tensor functions; `segprune.methods` wraps them as registry methods.

One round on the current sequence of m tokens (temporal order), r = min(m - K, ceil(m / 2)):

1. Split it alternately: A = the tokens at even positions 0, 2, 4, ..., B = those at odd positions.
2. Each A token's edge is its most similar B token (cosine of the two rows; ties: the earlier B)
   among the candidates: every B (the exact global search, ToMe's bipartite soft matching, Bolya et
   al., ICLR 2023, arXiv 2210.09461; `bipartite_merge(x, k)`), those of the sketched global search
   below (the registry's ``global-merge``) or, with a window W, the W nearest B tokens on each side
   of it in the current sequence (local, in the spirit of LTBM, Luo et al., arXiv 2605.25179; W = 1:
   its two neighbours, and every merged token stays one contiguous stretch of time). The local search counts a cosine
   within COLLINEAR of +-1 as +-1: tokens of one direction tie exactly, whatever the rounding.
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

Costs for N tokens, K kept, width H: the local merge decides its rounds from one banded Gram of
the rows (their dots with the 4 * (2W - 1) rows after them: O(N * W * H) multiply-adds) and writes
the merged rows once at the end, so at keep 0.25 the rows are read twice in all (see `_local_merge`);
the exact global merge needs (m / 2)^2 * H per round (the sum over rounds is about 1.3 * (N / 2)^2 * H
at keep 0.25: 5.3 s at N = 45,000, H = 896 here), like any exact nearest-neighbour search over the
whole clip.

`sketched_global_merge` (the registry's ``global-merge``) runs the same rounds with the whole clip in
reach at the cost of two passes over the rows (segprune's own construction):

- **Sketch.** Tokens are compared by their cosine in the clip's SKETCH_DIMS principal directions:
  the orthonormal basis P [H, d] of one power iteration over SKETCH_SAMPLE rows evenly spaced in
  time (Halko et al., SIAM Review 2011, from a seeded Gaussian start). A group's sketch is the sum
  of its rows' sketches, x P (linear), so only the sums of [N, d] sketches move from round to round.
  Where H <= SKETCH_DIMS the rows themselves are compared (exact cosines).
- **Candidates.** Each round hashes every group's sketch into one of 2^HASH_BITS buckets by the
  signs of its products with HASH_BITS seeded Gaussian directions (SimHash, Charikar, STOC 2002:
  two tokens at angle t share a sign with probability 1 - t / pi), the bucket the number those
  signs spell, and orders the groups by bucket, then by time (as Reformer orders its hash buckets,
  Kitaev et al., ICLR 2020). A_i's candidates are its two temporal neighbours B_{i-1} and B_i (as
  the local merge with W = 1) and the nearest B before and after it in that order: the B closest in
  time among those that hash like it, however far away; at a bucket's edge, a B of the next bucket
  (next buckets differ in the last sign first).
- **Edges and merges** as above (the most similar candidate, ties: the earlier B; the r most similar
  edges merge); the rows are then added once, in their order, and divided by the sizes.

The share of a clip's variance that merging loses (sum of |x - its row|^2 over sum of |x - mean|^2),
on Whisper-base encoder frames of this project's clips (speech, scenes and music in random order, 5
and 10 minutes; the 24 speech clips once each), keep 0.25 / 0.1: this merge 0.135 / 0.282, 0.134 /
0.274 and 0.141 / 0.289 (SKETCH_SEED 0; 0.130-0.135 / 0.268-0.282, 0.132-0.134 / 0.269-0.274 and
0.140-0.144 / 0.289-0.297 over seeds 0-4); the local merge (W = 1) 0.142 / 0.285, 0.143 / 0.286 and
0.145 / 0.300; the exact global search (`bipartite_merge(x, k)`, which it approximates) 0.115 /
0.239, 0.109 / 0.220 and 0.127 / 0.271. Its constants were chosen on the first clip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "Merged",
    "bipartite_merge",
    "forward_dots",
    "hash_directions",
    "sketch_basis",
    "sketch_rows",
    "sketched_global_merge",
]

EPS = 1e-12  # as F.normalize: a row's norm counts as at least this, so a zero row has cosine 0 with all
BLOCK_ROWS = 8  # rows per block of the local search's batched Gram products
CANCELLING = 1 / 16  # a group with |sum|^2 under this share of its rows' sum of |x|^2 is summed before its dots
COLLINEAR = 2.0**-20  # the local search counts a cosine this close to +-1 as +-1 (float32 rounding is 2^-24)
SIM_BLOCK = 1 << 22  # similarity entries computed per matrix product (16 MiB of float32)
SKETCH_DIMS = 16  # the sketched global merge compares tokens in the clip's 16 principal directions
SKETCH_SAMPLE = 1024  # rows, evenly spaced in time, that estimate those directions
HASH_BITS = 5  # signs of its SimHash: 2^5 = 32 buckets (at most 8 bits)
SKETCH_SEED = 0  # the seed of the power iteration's start and of the hash directions


_ONEDNN_LINEAR = (
    getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None)
    if torch.backends.mkldnn.is_available()
    else None
)


@dataclass(frozen=True, eq=False)
class Merged:
    """The result of merging N rows down to K.

    anchors: [K] int64 original positions, strictly increasing (temporal order).
    rows:    [K, H] the mean of the original rows each holds, in the input dtype and device.
    sizes:   [K] int64 how many original tokens each row holds (sum N; > 1 means it merged).
    members: [N] int64 the row each original token is in (members[anchors[j]] == j; its bincount: sizes).
    """

    anchors: np.ndarray
    rows: torch.Tensor
    sizes: np.ndarray
    members: np.ndarray


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


def _pair_table(f: np.ndarray, gid: np.ndarray, m: int, e_max: int) -> np.ndarray:
    """T [m, e_max + 1] with T[u, e] = g_u . g_{u+e} (0 past the end) for the group sums g_u of base rows.

    f [nb, D + 1] the base rows' banded Gram (`forward_dots`), gid [nb] each base row's group (0 .. m - 1).
    Every pair of base rows (p, q = p + d, d <= D) adds its dot to the pair of their groups; a pair
    of two rows of one group counts twice (|g|^2 = sum_p |x_p|^2 + 2 sum_{p<q} x_p . x_q). Exact when
    no two groups at most e_max apart hold base rows more than D apart (`_reach`). Summed in float64.
    """
    nb, width = f.shape
    if width > e_max and np.array_equal(gid, np.arange(nb)):  # one base row per group: the Gram itself
        return f[:, : e_max + 1]
    stride = e_max + 1
    table = np.zeros(m * stride)
    for d in range(width):  # the pairs of base rows (p, p + d)
        gu, gv = gid[: nb - d], gid[d:]
        u, e = np.minimum(gu, gv), np.abs(gv - gu)
        dots = f[: nb - d, d].astype(np.float64)
        if d:
            dots[e == 0] *= 2
        use = e <= e_max
        table += np.bincount((u * stride + e)[use], weights=dots[use], minlength=m * stride)
    return table.reshape(m, stride)


def _reach(lo: np.ndarray, hi: np.ndarray, e_max: int) -> int:
    """The largest distance between two base rows of groups at most e_max apart (lo, hi [m]: each
    group's first and last base row): the Gram band that `_pair_table` needs."""
    reach = int((hi - lo).max())
    for e in range(1, min(e_max, lo.shape[0] - 1) + 1):
        reach = max(reach, int((hi[e:] - lo[:-e]).max()), int((hi[:-e] - lo[e:]).max()))
    return reach


def _local_edges(table: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Each A group's most similar B group among its `window` nearest B groups on each side.

    table [m, span + 1] the dots of the current groups (`_pair_table`, span = min(2 * window - 1,
    m - 1); A_i at position 2i, B_i at 2i + 1). A_i sits between B_{i-1} and B_i, so its candidates
    are B_{i+o} for o = -window .. window - 1 (in temporal order), at distance 2o + 1. Returns
    (dst [|A|] int64, cosine [|A|]); ties go to the earlier B.
    """
    m, width = table.shape
    span = width - 1
    count_a = (m + 1) // 2
    norm = np.maximum(np.sqrt(np.maximum(table[:, 0], 0.0)), EPS)  # a sum of dots may round below 0
    offsets = np.arange(-window, window)
    p = 2 * np.arange(count_a)[:, None]  # [|A|, 1] positions of the A groups
    q = p + 2 * offsets + 1  # [|A|, 2W] positions of their candidates
    valid = (q >= 0) & (q < m)
    dist = np.abs(q - p)
    first = np.clip(np.minimum(p, q), 0, m - 1)  # the dot of p and q sits at T[min(p, q), |q - p|]
    dots = np.where(valid & (dist <= span), table[first, np.minimum(dist, span)], 0.0)
    cos = np.where(valid, dots / (norm[np.clip(q, 0, m - 1)] * norm[np.clip(p, 0, m - 1)]), -np.inf)
    collinear = np.abs(np.abs(cos) - 1.0) <= COLLINEAR
    cos[collinear] = np.sign(cos[collinear])  # equal (or opposite) directions tie exactly, whatever the rounding
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


def _choose(dst: np.ndarray, cos: np.ndarray, m: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Which of m groups merge where (m > k >= 1), from each A group's edge (dst: its B, cos: the
    similarity): the r = min(m - k, |A|) most similar edges. Returns (dest [m] int64, kept [m] bool):
    every group is either kept (dest: its index in the next sequence) or an A group merged into a B
    group (dest: that B group's index in the next sequence)."""
    count_a = (m + 1) // 2
    r = min(m - k, count_a)
    merging = np.arange(count_a) if r == count_a else np.argsort(-cos, kind="stable")[:r]  # ties: earlier A
    kept = np.ones(m, dtype=bool)
    kept[2 * merging] = False
    new = np.cumsum(kept) - 1
    dest = new.copy()
    dest[2 * merging] = new[2 * dst[merging] + 1]
    return dest, kept


def _group_sums(base: torch.Tensor, gid: np.ndarray, m: int) -> torch.Tensor:
    """[m, H] the sum of the base rows [nb, H] of each group (gid [nb]), added in base order; a group
    of one row is that row bit for bit (-0.0 + x == x for every x, a zero's sign included)."""
    out = base.new_full((m, base.shape[1]), -0.0)
    return out.index_add_(0, torch.as_tensor(gid, device=base.device), base)


def _local_merge(x: torch.Tensor, k: int, window: int) -> tuple[np.ndarray, torch.Tensor, np.ndarray, np.ndarray]:
    """The local rounds on x [n, H] (work dtype) down to k groups: (anchors [k], sums [k, H], sizes [k],
    members [n]).

    A round needs only the dots of groups at most 2 * window - 1 apart, which are sums of the dots
    of their base rows: one banded Gram of the base rows (`forward_dots`) serves the rounds until the
    groups outgrow it, or until a group's rows nearly cancel (|g|^2 under CANCELLING times the sum of
    their |x|^2: a sum of dots would then lose the digits its cosines need); then the group sums
    become the base rows. The band, 4 * (2 * window - 1), is two full rounds' reach: after one, a
    group spans 2 * window - 1 rows on each side of its B row, and B rows are 2 apart. So at keep
    0.25 (two rounds) x is read twice and the sums written once, instead of twice.
    """
    n = x.shape[0]
    base, gid = x, np.arange(n)
    lo, hi = gid.copy(), gid.copy()  # each group's first and last base row
    anchors, sizes, members = np.arange(n, dtype=np.int64), np.ones(n, dtype=np.int64), np.arange(n)
    band = None
    while anchors.size > k:
        m = anchors.size
        e_max = min(2 * window - 1, m - 1)
        table = None
        if band is not None and _reach(lo, hi, e_max) < band.shape[1]:
            table = _pair_table(band, gid, m, e_max)
            own = np.bincount(gid, weights=band[:, 0], minlength=m)  # sum of |x_p|^2 over each group
            if np.any(table[:, 0] < CANCELLING * own):  # a group whose rows nearly cancel: its dots need its sum
                table = None
        if table is None:
            if band is not None:  # the groups outgrew the band (or cancel): their sums become the base rows
                base, gid = _group_sums(base, gid, m), np.arange(m)
                lo, hi = gid.copy(), gid.copy()
            band = forward_dots(base, min(base.shape[0] - 1, 4 * (2 * window - 1)))  # two full rounds' reach
            table = _pair_table(band, gid, m, e_max)
        dest, kept = _choose(*_local_edges(table, window), m, k)
        count = int(kept.sum())
        gid, anchors, members = dest[gid], anchors[kept], dest[members]
        sizes = np.bincount(dest, weights=sizes, minlength=count).astype(np.int64)
        lo, hi = _fold(np.minimum, lo, dest, count, n), _fold(np.maximum, hi, dest, count, -1)
    return anchors, _group_sums(base, gid, anchors.size), sizes, members


def _fold(op: np.ufunc, values: np.ndarray, dest: np.ndarray, count: int, start: int) -> np.ndarray:
    """[count] op over the values [m] of the groups that go into each new group (dest [m])."""
    out = np.full(count, start, dtype=values.dtype)
    op.at(out, dest, values)
    return out


def _global_merge(s: torch.Tensor, k: int) -> tuple[np.ndarray, torch.Tensor, np.ndarray, np.ndarray]:
    """The global rounds on s [n, H] (work dtype) down to k groups: (anchors [k], sums [k, H], sizes [k],
    members [n]).
    Each round searches all pairs of the current sums, then adds each merged A row into its B row
    (in the order of the A rows, as index_add_ adds on CPU)."""
    anchors, members = np.arange(s.shape[0], dtype=np.int64), np.arange(s.shape[0])
    sizes = np.ones(s.shape[0], dtype=np.int64)
    while s.shape[0] > k:
        m = s.shape[0]
        dest, kept = _choose(*_global_edges(s[0::2], s[1::2]), m, k)
        sizes = np.bincount(dest, weights=sizes, minlength=int(kept.sum())).astype(np.int64)
        device = s.device
        if kept[0::2].any():  # a partial round: the rows that stay, plus the merged A rows
            out = s[torch.as_tensor(np.flatnonzero(kept), device=device)]
            where = 2 * np.flatnonzero(~kept[0::2])
            s = out.index_add_(0, torch.as_tensor(dest[where], device=device), s[torch.as_tensor(where, device=device)])
        else:  # a full round: every A row into its B row
            s = s[1::2].clone().index_add_(0, torch.as_tensor(dest[0::2], device=device), s[0::2])
        anchors, members = anchors[kept], dest[members]
    return anchors, s, sizes, members


def sketch_basis(x: torch.Tensor) -> torch.Tensor | None:
    """P [H, SKETCH_DIMS] orthonormal columns spanning about the top principal directions of x [N, H]
    (uncentred: the directions that carry the most of the rows' energy), in x's dtype and device; None
    where H <= SKETCH_DIMS (the rows themselves are the sketch).

    One power iteration on SKETCH_SAMPLE rows evenly spaced in time (all of them when N is smaller),
    from a Gaussian start seeded with SKETCH_SEED: P = qr(S^T S G) for the sampled rows S. Rows that
    lie in a subspace of at most SKETCH_DIMS dimensions keep their cosines exactly (P spans it).
    """
    n, h = x.shape
    if h <= SKETCH_DIMS:
        return None
    generator = torch.Generator().manual_seed(SKETCH_SEED)
    start = torch.randn(h, SKETCH_DIMS, generator=generator, dtype=torch.float64).to(x.device, x.dtype)
    rows = x.index_select(0, torch.linspace(0, n - 1, min(n, SKETCH_SAMPLE), device=x.device).round().long())
    return torch.linalg.qr(rows.T @ (rows @ start)).Q.contiguous()


def sketch_rows(x: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """x [N, H] @ basis [H, d] -> [N, d]. A float32 or bfloat16 x on the CPU goes through oneDNN's
    linear kernel where torch has it (``torch.ops.mkldnn._linear_pointwise``, what torch.compile
    emits for a CPU linear layer): MKL's general product packs every row of x first, about 12 ms
    against 8 ms for [45,000, 896] x [896, 16] here; the two agree to float32 rounding."""
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.bfloat16) and _ONEDNN_LINEAR is not None:
        return _ONEDNN_LINEAR(x.contiguous(), basis.T.contiguous(), None, "none", [], "")
    return x @ basis


def hash_directions(width: int, dtype: torch.dtype) -> torch.Tensor:
    """[width, HASH_BITS] the SimHash's seeded Gaussian directions, on the CPU: a sketch z's bucket is
    sum_j [z . r_j > 0] 2^(HASH_BITS - 1 - j), the first direction's sign the most significant."""
    generator = torch.Generator().manual_seed(SKETCH_SEED + 1)
    return torch.randn(width, HASH_BITS, generator=generator, dtype=torch.float64).to(dtype)


def _sketch_edges(z: torch.Tensor, directions: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Each A group's most similar candidate B (module docstring): (dst [|A|] int64, cosine [|A|]).

    z [m, d] the groups' sketches on the CPU, in temporal order (A_i at 2i, B_i at 2i + 1); directions
    [d, HASH_BITS] (`hash_directions`). Candidates: B_{i-1}, B_i and the nearest B before and after
    A_i in the (bucket, time) order. Ties go to the earlier B; a NaN cosine loses to every number.
    """
    m = z.shape[0]
    count_a, count_b = (m + 1) // 2, m // 2
    unit = z / torch.linalg.vector_norm(z, dim=1, keepdim=True).clamp_min_(EPS)
    signs = (unit @ directions > 0).to(unit.dtype)  # [m, HASH_BITS]
    bucket = signs @ (2.0 ** torch.arange(HASH_BITS - 1, -1, -1, dtype=unit.dtype))  # [m] whole numbers
    order = np.argsort(bucket.to(torch.uint8).numpy(), kind="stable")  # by bucket, then by time (a radix sort)
    place = np.arange(m)
    rank = np.empty(m, dtype=np.int64)
    rank[order] = place  # each group's place in that order
    is_b = (order & 1) == 1
    b_before = np.maximum.accumulate(np.where(is_b, place, -1))  # the last B at or before each place
    b_after = np.minimum.accumulate(np.where(is_b, place, m)[::-1])[::-1]  # the first B at or after it
    b_of = np.append(order // 2, count_b)  # a place's B index; places -1 and m (none) give count_b
    a_rank = rank[0::2]
    ua, ub = unit[0::2], unit[1::2]
    none = torch.tensor(-math.inf, dtype=unit.dtype)
    # the temporal candidates B_{i-1} and B_i: dots of neighbouring rows, no gather
    cos = torch.full((count_a,), -math.inf, dtype=unit.dtype)
    cos[1:] = torch.linalg.vecdot(ua[1:], ub[: count_a - 1])
    dst = torch.arange(-1, count_a - 1)
    dst[0] = count_b  # A_0 has no B before it
    after = torch.full((count_a,), -math.inf, dtype=unit.dtype)
    after[:count_b] = torch.linalg.vecdot(ua[:count_b], ub)
    candidates = [(after, torch.arange(count_a).clamp_(max=count_b))]  # the last A of an odd m has no B after it
    before_place = np.where(a_rank > 0, b_before[np.maximum(a_rank - 1, 0)], -1)
    after_place = np.where(a_rank < m - 1, b_after[np.minimum(a_rank + 1, m - 1)], m)
    for far_place in (before_place, after_place):  # the nearest B before and after A_i in the hash order
        far = torch.from_numpy(b_of[far_place])
        dots = torch.linalg.vecdot(ua, ub.index_select(0, far.clamp(max=count_b - 1)))
        candidates.append((torch.where(far < count_b, dots, none), far))
    cos = torch.where(cos.isnan(), none, cos)
    for c, b in candidates:  # the best so far, or a better one, or an equal one that is earlier
        c = torch.where(c.isnan(), none, c)
        take = (c > cos) | ((c == cos) & (b < dst))
        cos, dst = torch.where(take, c, cos), torch.where(take, b, dst)
    return dst.numpy(), cos.numpy()


def sketched_global_merge(x: torch.Tensor, k: int) -> Merged:
    """Merge the rows of x [N, H] in rounds of bipartite matching until k remain, each token's
    candidates its temporal neighbours and its neighbours in a hash order of the whole clip, compared
    in the clip's principal directions (module docstring). Two passes over the rows: the sketch
    x P [N, SKETCH_DIMS] and the final sums; the rounds work on the sketches. k >= n returns x itself.
    Deterministic on CPU (on CUDA, index_add_ may add the rows of one group in another order)."""
    n = x.shape[0]
    if k >= n:
        return Merged(np.arange(n, dtype=np.int64), x, np.ones(n, dtype=np.int64), np.arange(n, dtype=np.int64))
    work = torch.promote_types(x.dtype, torch.float32)
    xw = x.to(work)
    basis = sketch_basis(xw)
    z = (xw if basis is None else sketch_rows(xw, basis)).cpu()  # [N, d]
    directions = hash_directions(z.shape[1], work)
    gid = np.arange(n)  # each original row's group
    anchors, sizes = np.arange(n, dtype=np.int64), np.ones(n, dtype=np.int64)
    while anchors.size > k:
        m = anchors.size
        dest, kept = _choose(*_sketch_edges(z, directions), m, k)
        count = int(kept.sum())
        z = z.new_zeros(count, z.shape[1]).index_add_(0, torch.from_numpy(dest), z)
        gid, anchors = dest[gid], anchors[kept]
        sizes = np.bincount(dest, weights=sizes, minlength=count).astype(np.int64)
    sums = _group_sums(xw, gid, k)  # k < n: never x itself; a row that merged nothing is its original
    rows = sums.div_(torch.as_tensor(sizes, dtype=work, device=x.device).unsqueeze(-1)).to(x.dtype)
    return Merged(anchors, rows, sizes, gid)


def bipartite_merge(x: torch.Tensor, k: int, window: int | None = None) -> Merged:
    """Merge the rows of x [N, H] in rounds of bipartite matching until k remain (module docstring).

    window: None merges by similarity anywhere (global); an integer W >= 1 lets a token merge only
    into one of the W nearest B tokens on each side of it (local; a W that reaches every B is the
    global search). k >= n returns x itself. Deterministic on CPU (on CUDA, index_add_ may add the
    rows of one group in another order, which can change a sum's last bit).
    """
    n = x.shape[0]
    if k >= n:
        return Merged(np.arange(n, dtype=np.int64), x, np.ones(n, dtype=np.int64), np.arange(n, dtype=np.int64))
    work = torch.promote_types(x.dtype, torch.float32)
    xw = x.to(work)  # x itself when already float32 or float64
    local = window is not None and window < (n + 1) // 2  # a window that reaches every B is the global search
    anchors, s, sizes, members = _local_merge(xw, k, window) if local else _global_merge(xw, k)
    # s is this function's own buffer (k < n: never x itself): the means in place; a row that merged
    # nothing is its original bit for bit (summed once from -0.0, divided by 1)
    rows = s.div_(torch.as_tensor(sizes, dtype=work, device=x.device).unsqueeze(-1)).to(x.dtype)
    return Merged(anchors, rows, sizes, members)
