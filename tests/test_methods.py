"""Property and reference tests for segprune.methods."""

import math
import time
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from segprune.methods import (
    DEFAULT_METHOD,
    DEFAULT_SEGMENTS,
    METHODS,
    Selection,
    get_method,
    keep_count,
    make_method,
    segment_bounds,
    select,
)

FAST = settings(max_examples=60, deadline=None)


# --- brute-force references


def ref_top(scores, k):
    """Ascending indices of the k highest scores, ties to the lower index (plain Python)."""
    return sorted(sorted(range(len(scores)), key=lambda j: (-scores[j], j))[:k])


def ref_segmentwise(scores, k, segments):
    n = len(scores)
    s = min(segments, k)
    per = k // s
    kept = set()
    for seg in np.array_split(np.arange(n), s):
        kept |= set(sorted(seg.tolist(), key=lambda j: (-scores[j], j))[:per])
    rest = sorted((j for j in range(n) if j not in kept), key=lambda j: (-scores[j], j))
    kept |= set(rest[: k - len(kept)])
    return sorted(kept)


def ref_visionzip(scores, emb, k, window=16):
    """(indices, rows [k, H] float64) by loops, following the definition word for word."""
    n = len(scores)
    k_c = round(k * 0.18 / 1.18)
    k_d = k - k_c
    dominant = ref_top(scores, k_d)
    if k_c == 0:
        return dominant, emb[dominant]
    rest = [j for j in range(n) if j not in set(dominant)]
    r = len(rest)
    targets = [rest[math.floor(Fraction(2 * i + 1, 2) * r / k_c)] for i in range(k_c)]
    unit = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    groups = {t: [t] for t in targets}
    for j in rest:
        if j not in groups:
            candidates = targets  # every target, or the 2W nearest in time (W before j, W after)
            if window and k_c > 2 * window:
                before = sum(t < j for t in targets)
                lo = min(max(before - window, 0), k_c - 2 * window)
                candidates = targets[lo : lo + 2 * window]
            sims = [float(unit[j] @ unit[t]) for t in candidates]
            groups[candidates[int(np.argmax(sims))]].append(j)
    idx = sorted(dominant + targets)
    rows = np.stack([emb[groups[j]].mean(axis=0) if j in groups else emb[j] for j in idx])
    return idx, rows


def make_scores(n, kind, seed):
    rng = np.random.default_rng(seed)
    if kind == "ties":  # a tiny set of values: many exact ties
        return rng.integers(0, 3, n).astype(np.float64)
    if kind == "constant":
        return np.full(n, 0.5)
    return rng.normal(size=n)


def make_embeddings(n, h=8, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, h, generator=g).to(dtype)


@st.composite
def cases(draw, max_n=3000):
    n = draw(st.integers(1, max_n))
    ratio = draw(st.one_of(st.floats(1e-4, 1.0), st.sampled_from([1.0, 0.5, 0.25, 0.1])))
    segments = draw(st.integers(1, n + 5))
    kind = draw(st.sampled_from(["ties", "normal", "constant"]))
    seed = draw(st.integers(0, 2**16))
    return n, ratio, segments, make_scores(n, kind, seed), seed


def options(method, segments=DEFAULT_SEGMENTS, seed=0):
    """The options of `method` among segments and seed (each method takes only its own)."""
    cls = METHODS.get(method) if isinstance(method, str) else None
    return {k: v for k, v in {"segments": segments, "seed": seed}.items() if cls is None or cls.takes(k)}


def run(method, scores, ratio, segments=DEFAULT_SEGMENTS, seed=0):
    emb = make_embeddings(len(scores), seed=seed) if METHODS[method].needs_embeddings else None
    return select(method, scores, ratio, embeddings=emb, **options(method, segments, seed))


def covered_segments(indices, bounds):
    """How many segments [bounds[s], bounds[s+1]) hold at least one index."""
    return len(np.unique(np.searchsorted(bounds, indices, side="right") - 1))


# --- budgets


@pytest.mark.parametrize(
    "n, ratio, k",
    [
        (250, 0.25, 63),  # 62.5 rounds up
        (10, 0.25, 3),  # 2.5 rounds up
        (10, 0.15, 2),  # 1.5 rounds up
        (100, 0.145, 14),  # plain float arithmetic: 0.145 * 100 is a hair below 14.5
        (10, 0.24, 2),
        (100, 0.001, 1),  # tiny ratios keep one token
        (1, 1e-9, 1),
        (1, 1.0, 1),
        (750, 1.0, 750),
        (750, 1, 750),
        (3, np.float32(0.5), 2),
    ],
)
def test_keep_count_examples(n, ratio, k):
    assert keep_count(n, ratio) == k


@given(st.integers(1, 10**6), st.floats(1e-6, 1.0))
def test_keep_count_is_the_rounded_fraction(n, ratio):
    k = keep_count(n, ratio)
    assert 1 <= k <= n
    if ratio * n >= 0.5:
        assert abs(k - ratio * n) <= 0.5 + 1e-6 * n


BAD_RATIOS = [0, 0.0, -0.1, 1.5, 1.0000001, float("nan"), float("inf"), "a", "0.5", None, True]


@pytest.mark.parametrize("ratio", BAD_RATIOS)
def test_keep_count_rejects_bad_ratios(ratio):
    with pytest.raises(ValueError, match="keep ratio"):
        keep_count(100, ratio)


@pytest.mark.parametrize("n", [0, -1, 2.5, True, "10"])
def test_keep_count_rejects_bad_n(n):
    with pytest.raises(ValueError, match="number of tokens"):
        keep_count(n, 0.5)


@given(st.integers(1, 5000), st.data())
def test_segment_bounds_match_array_split(n, data):
    s = data.draw(st.integers(1, n))
    bounds = segment_bounds(n, s)
    assert bounds.dtype == np.int64 and bounds[0] == 0 and bounds[-1] == n and len(bounds) == s + 1
    expected = np.cumsum([0] + [len(a) for a in np.array_split(np.arange(n), s)])
    np.testing.assert_array_equal(bounds, expected)


@pytest.mark.parametrize("n, s", [(10, 0), (10, 11), (10, -1), (10, 2.0), (0, 1)])
def test_segment_bounds_rejects_bad_counts(n, s):
    with pytest.raises(ValueError):
        segment_bounds(n, s)


# --- registry and validation


def test_registry_order_and_metadata():
    paper = ["segmentwise", "topk", "visionzip"]
    beyond = ["adaptive-segmentwise", "speech-segmentwise", "divprune", "local-merge", "global-merge"]
    assert list(METHODS) == [*paper, *beyond, "random", "bottomk", "uniform"]
    assert DEFAULT_METHOD == "segmentwise" and DEFAULT_SEGMENTS == 10
    for name, m in METHODS.items():
        assert m.name == name and get_method(name) is m
        assert m.label and m.source and m.summary and "\n" not in m.summary
    assert "2511.14293" in METHODS["segmentwise"].source
    assert "2412.04467" in METHODS["visionzip"].source
    assert "2503.02175" in METHODS["divprune"].source
    segmentwise_family = ["segmentwise", "adaptive-segmentwise", "speech-segmentwise"]
    assert [n for n, m in METHODS.items() if m.takes("segments")] == segmentwise_family
    assert [n for n, m in METHODS.items() if m.reads_audio_end] == ["speech-segmentwise"]
    assert "2605.25179" in METHODS["local-merge"].source and "2210.09461" in METHODS["global-merge"].source
    merging = ["local-merge", "global-merge"]
    assert [n for n, m in METHODS.items() if m.needs_embeddings] == ["visionzip", "divprune", *merging]
    assert [n for n, m in METHODS.items() if m.merges] == ["visionzip", *merging]


def test_unknown_method_lists_the_available_ones():
    with pytest.raises(ValueError) as err:
        get_method("fastv")
    for name in METHODS:
        assert name in str(err.value)
    with pytest.raises(ValueError, match="segmentwise"):
        select("fastv", np.ones(10), 0.5)


@pytest.mark.parametrize(
    "scores",
    [[1.0, float("nan"), 2.0], [1.0, float("inf")], [], np.ones((3, 2)), ["a", "b"], 3.0],
)
def test_select_rejects_bad_scores(scores):
    with pytest.raises(ValueError, match=r"[Ss]cores"):
        select("topk", scores, 0.5)


@pytest.mark.parametrize("segments", [0, -1, 2.5, True, "10", None])
def test_select_rejects_bad_segments(segments):
    with pytest.raises(ValueError, match="segments"):
        select("segmentwise", np.arange(20.0), 0.5, segments=segments)


@pytest.mark.parametrize("ratio", [0, -0.1, 1.5, float("nan"), "a"])
def test_select_rejects_bad_ratios(ratio):
    with pytest.raises(ValueError, match="keep ratio"):
        select("topk", np.arange(20.0), ratio)


def test_select_rejects_bad_seed():
    with pytest.raises(ValueError, match="seed"):
        select("random", np.arange(20.0), 0.5, seed=-1)


def test_visionzip_needs_embeddings_of_the_right_shape():
    scores = np.arange(20.0)
    with pytest.raises(ValueError, match="embeddings"):
        select("visionzip", scores, 0.5)
    with pytest.raises(ValueError, match="shape"):
        select("visionzip", scores, 0.5, embeddings=torch.zeros(19, 4))
    with pytest.raises(ValueError, match="shape"):
        select("visionzip", scores, 0.5, embeddings=torch.zeros(20))
    with pytest.raises(ValueError, match="shape"):
        select("visionzip", scores, 0.5, embeddings=np.zeros((20, 4)))


def test_select_accepts_lists_and_tensors():
    scores = [0.1, 0.9, 0.3, 0.8, 0.2]
    expected = [1, 3]
    assert select("topk", scores, 0.4).indices.tolist() == expected
    as_tensor = torch.tensor(scores, dtype=torch.bfloat16)
    assert select("topk", as_tensor, 0.4).indices.tolist() == expected


def test_selection_guards_its_invariants():
    sel = Selection(np.array([1, 4, 7]), 10)
    assert sel.k == 3 and sel.indices.dtype == np.int64
    source = np.array([1, 4, 7])
    Selection(source, 10).indices[0] = 0  # a private copy: the caller's array is untouched
    assert source.tolist() == [1, 4, 7]
    for bad in ([3, 1], [1, 1], [-1, 2], [2, 10]):
        with pytest.raises(ValueError, match="increasing"):
            Selection(np.array(bad), 10)
    with pytest.raises(ValueError, match="embeddings"):
        Selection(np.array([1, 2]), 10, embeddings=torch.zeros(3, 4))


# --- properties of every method


@pytest.mark.parametrize("method", list(METHODS))
@FAST
@given(case=cases())
def test_every_method_keeps_exactly_k_sorted_unique_in_range(method, case):
    n, ratio, segments, scores, seed = case
    k = keep_count(n, ratio)
    sel = run(method, scores, ratio, segments, seed)
    assert sel.n == n and sel.k == k
    assert sel.indices.dtype == np.int64
    assert np.all(np.diff(sel.indices) > 0)
    assert sel.indices[0] >= 0 and sel.indices[-1] < n
    if METHODS[method].merges:
        assert sel.embeddings.shape == (k, 8)
    else:
        assert sel.embeddings is None
    again = run(method, scores.copy(), ratio, segments, seed)
    np.testing.assert_array_equal(sel.indices, again.indices)
    if sel.embeddings is not None:
        assert torch.equal(sel.embeddings, again.embeddings)


@pytest.mark.parametrize("method", list(METHODS))
@FAST
@given(case=cases())
def test_keep_one_is_the_identity(method, case):
    n, _, segments, scores, seed = case
    emb = make_embeddings(n, seed=seed, dtype=torch.bfloat16)
    sel = select(method, scores, 1.0, embeddings=emb, **options(method, segments, seed))
    np.testing.assert_array_equal(sel.indices, np.arange(n))
    if sel.embeddings is not None:
        assert sel.embeddings.dtype == emb.dtype and torch.equal(sel.embeddings, emb)


# --- topk, bottomk, uniform, random


@FAST
@given(case=cases(max_n=600))
def test_topk_and_bottomk_match_brute_force(case):
    n, ratio, _, scores, _ = case
    k = keep_count(n, ratio)
    assert select("topk", scores, ratio).indices.tolist() == ref_top(scores.tolist(), k)
    assert select("bottomk", scores, ratio).indices.tolist() == ref_top((-scores).tolist(), k)


def test_topk_ties_go_to_the_lower_index():
    scores = np.array([1.0, 2.0, 2.0, 0.0, 2.0, 2.0])
    assert select("topk", scores, 0.5).indices.tolist() == [1, 2, 4]
    assert select("bottomk", scores, 0.5).indices.tolist() == [0, 1, 3]


@given(st.integers(1, 5000), st.floats(1e-4, 1.0))
def test_uniform_is_evenly_spaced(n, ratio):
    k = keep_count(n, ratio)
    idx = select("uniform", np.zeros(n), ratio).indices
    assert idx.tolist() == [math.floor(Fraction(2 * i + 1, 2 * k) * n) for i in range(k)]
    gaps = set(np.diff(idx).tolist())
    assert gaps <= {n // k, -(-n // k)}


def test_uniform_example():
    assert select("uniform", np.zeros(10), 0.3).indices.tolist() == [1, 5, 8]


def test_random_is_seeded():
    scores = np.zeros(1000)
    a = select("random", scores, 0.1, seed=7).indices
    np.testing.assert_array_equal(a, select("random", scores, 0.1, seed=7).indices)
    assert not np.array_equal(a, select("random", scores, 0.1, seed=8).indices)
    direct = np.random.default_rng(7).choice(1000, 100, replace=False)
    np.testing.assert_array_equal(a, np.sort(direct))


# --- segmentwise


@FAST
@given(case=cases(max_n=600))
def test_segmentwise_matches_brute_force(case):
    n, ratio, segments, scores, _ = case
    k = keep_count(n, ratio)
    sel = select("segmentwise", scores, ratio, segments=segments)
    assert sel.indices.tolist() == ref_segmentwise(scores.tolist(), k, segments)
    s_eff = min(segments, k)
    np.testing.assert_array_equal(sel.segment_bounds, segment_bounds(n, s_eff))
    per_segment = np.diff(np.searchsorted(sel.indices, sel.segment_bounds))
    assert per_segment.min() >= k // s_eff
    assert per_segment.sum() == k


def test_segmentwise_crafted():
    # N = 20, S = 3 -> segments [0, 7), [7, 14), [14, 20); K = 8 -> 2 per segment + 2 leftover.
    scores = np.zeros(20)
    scores[[0, 1, 2, 3, 4]] = [9, 8, 7, 6, 0.5]  # the best tokens of the clip crowd segment 0
    scores[[8, 12]] = [0.1, 0.2]  # a quiet segment
    scores[[15, 16, 19]] = [3, 5, 4]
    sel = select("segmentwise", scores, 0.4, segments=3)
    np.testing.assert_array_equal(sel.segment_bounds, [0, 7, 14, 20])
    # segment tops {0, 1}, {8, 12}, {16, 19}; the 2 leftovers: the best of the rest anywhere, {2, 3}
    assert sel.indices.tolist() == [0, 1, 2, 3, 8, 12, 16, 19]
    assert select("topk", scores, 0.4).indices.tolist() == [0, 1, 2, 3, 4, 15, 16, 19]


def test_segmentwise_uses_at_most_k_segments():
    scores = np.random.default_rng(0).normal(size=100)
    sel = select("segmentwise", scores, 0.05, segments=10)  # K = 5 < S = 10
    assert sel.k == 5
    np.testing.assert_array_equal(sel.segment_bounds, segment_bounds(100, 5))
    assert np.all(np.diff(np.searchsorted(sel.indices, sel.segment_bounds)) == 1)
    tiny = select("segmentwise", np.arange(3.0), 0.5, segments=50)  # S > N is allowed
    assert tiny.indices.tolist() == [1, 2] and len(tiny.segment_bounds) == 3


def test_segmentwise_covers_time_where_topk_clusters():
    rng = np.random.default_rng(0)
    scores = rng.uniform(0, 1, 1000)
    scores[:100] += 10  # every peak in the first of ten segments
    bounds = segment_bounds(1000, 10)
    seg = select("segmentwise", scores, 0.1, segments=10)
    top = select("topk", scores, 0.1)
    assert covered_segments(seg.indices, bounds) == 10
    assert covered_segments(top.indices, bounds) == 1
    np.testing.assert_array_equal(top.indices, np.arange(100))


# --- visionzip


def test_visionzip_split_for_64_tokens():
    n = 640
    scores = np.random.default_rng(1).normal(size=n)
    emb = make_embeddings(n, h=16, seed=1)
    sel = select("visionzip", scores, 0.1, embeddings=emb)  # K = 64 -> 54 dominant + 10 contextual
    assert sel.k == 64
    dominant = set(ref_top(scores.tolist(), 54))
    assert dominant <= set(sel.indices.tolist())
    contextual = sorted(set(sel.indices.tolist()) - dominant)
    rest = sorted(set(range(n)) - dominant)
    assert contextual == [rest[(2 * i + 1) * len(rest) // 20] for i in range(10)]
    for row, j in zip(sel.embeddings, sel.indices):
        if j in dominant:
            assert torch.equal(row, emb[j])


@settings(max_examples=40, deadline=None)
@given(case=cases(max_n=300), h=st.integers(1, 16), window=st.sampled_from([None, 0, 1, 2, 5]))
def test_visionzip_matches_brute_force(case, h, window):
    n, ratio, _, scores, seed = case
    k = keep_count(n, ratio)
    emb = make_embeddings(n, h=h, seed=seed)
    opts = {} if window is None else {"context_window": window}
    sel = select("visionzip", scores, ratio, embeddings=emb, **opts)
    idx, rows = ref_visionzip(scores.tolist(), emb.double().numpy(), k, 16 if window is None else window)
    assert sel.indices.tolist() == idx
    np.testing.assert_allclose(sel.embeddings.double().numpy(), rows, rtol=1e-5, atol=1e-6)


def test_visionzip_keeps_dtype_and_unmerged_rows_exactly():
    n = 200
    scores = np.random.default_rng(2).normal(size=n)
    emb = make_embeddings(n, h=32, seed=2, dtype=torch.float16)
    sel = select("visionzip", scores, 0.3, embeddings=emb)
    assert sel.embeddings.dtype == torch.float16 and sel.embeddings.device == emb.device
    changed = [j for row, j in zip(sel.embeddings, sel.indices) if not torch.equal(row, emb[j])]
    k_c = round(sel.k * 0.18 / 1.18)
    assert 0 < len(changed) <= k_c  # only contextual rows that absorbed tokens differ
    assert set(changed).isdisjoint(ref_top(scores.tolist(), sel.k - k_c))


def test_visionzip_without_room_for_context_is_topk():
    scores = np.array([0.3, 0.9, 0.1, 0.5, 0.7, 0.2, 0.8, 0.4, 0.6, 0.0])
    emb = make_embeddings(10)
    sel = select("visionzip", scores, 0.3, embeddings=emb)  # K = 3 -> K_c = round(0.46) = 0
    assert sel.indices.tolist() == [1, 4, 6]
    assert torch.equal(sel.embeddings, emb[[1, 4, 6]])


@settings(max_examples=200, deadline=None)
@given(
    method=st.one_of(st.sampled_from(list(METHODS)), st.text(max_size=12)),
    scores=st.one_of(
        st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=40),
        st.lists(st.lists(st.floats(-1, 1), max_size=3), max_size=4),
        st.none(),
        st.text(max_size=5),
    ),
    keep=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-3, 3), st.text(max_size=4), st.none()),
    segments=st.one_of(st.integers(-5, 60), st.floats(allow_nan=True), st.text(max_size=3), st.none()),
    seed=st.one_of(st.integers(-5, 2**40), st.floats(), st.none()),
)
def test_fuzz_select_only_raises_clean_value_errors(method, scores, keep, segments, seed):
    """Random parameter values: either a valid selection or a ValueError with a message."""
    try:
        sel = select(method, scores, keep, **options(method, segments, seed))
    except ValueError as err:
        assert str(err)
    else:
        assert sel.k == keep_count(len(scores), keep)
        assert np.all(np.diff(sel.indices) > 0)


# --- beyond the paper: adaptive-segmentwise, divprune, silence awareness


@settings(max_examples=60, deadline=None)
@given(s=st.integers(1, 12), per_segment=st.integers(1, 40), k_frac=st.floats(0.01, 1.0), seed=st.integers(0, 10**6))
def test_adaptive_reduces_to_segmentwise_when_masses_are_equal(s, per_segment, k_frac, seed):
    """Every segment holds a permutation of the same values: equal mass -> identical selection."""
    rng = np.random.default_rng(seed)
    base = rng.random(per_segment)
    scores = np.concatenate([rng.permutation(base) for _ in range(s)])
    n = scores.size
    k = keep_count(n, k_frac)
    assume(k >= s)  # S_eff = min(S, K) < S re-cuts the clip into unequal-mass segments
    a = select("adaptive-segmentwise", scores, k_frac, segments=s)
    b = select("segmentwise", scores, k_frac, segments=s)
    assert a.indices.tolist() == b.indices.tolist()


def test_adaptive_budget_follows_attention_mass():
    n, s = 100, 4
    scores = np.full(n, 0.1)
    scores[:25] = 3.0  # segment 0 holds most of the mass
    sel = select("adaptive-segmentwise", scores, 0.2, segments=s)  # K = 20
    per = np.histogram(sel.indices, bins=segment_bounds(n, s))[0]
    assert per.sum() == 20
    assert per[0] > per[1] and per[0] > per[2] and per[0] > per[3]
    assert np.all(per >= 1)  # the floor: one token in every (non-silent) segment
    # quotas: 1 + 16 * 75 / 82.5 = 15.5 -> 15 and 1 + 16 * 2.5 / 82.5 = 1.5 -> 1; the 2 leftover slots
    # go to the best remaining tokens, which lie in segment 0
    assert per.tolist() == [17, 1, 1, 1]


def test_adaptive_gives_no_floor_to_silent_segments():
    n, s = 100, 4
    scores = np.random.default_rng(0).random(n)
    silent = np.zeros(n, dtype=bool)
    silent[25:50] = True
    sel = select("adaptive-segmentwise", scores, 0.2, segments=s, silent=silent)
    assert sel.k == 20 and not np.any(silent[sel.indices])


def greedy_maxmin_reference(scores, emb, k):
    x = emb.double() / emb.double().norm(dim=-1, keepdim=True)
    chosen = [int(np.argmax(scores))]
    while len(chosen) < k:
        best, best_d = None, -1.0
        for j in range(len(scores)):
            if j in chosen:
                continue
            d = min(1.0 - float(x[j] @ x[c]) for c in chosen)
            if d > best_d + 1e-12:
                best, best_d = j, d
        chosen.append(best)
    return sorted(chosen)


@pytest.mark.parametrize("seed", range(5))
def test_divprune_matches_a_brute_force_greedy(seed):
    rng = np.random.default_rng(seed)
    scores = rng.random(40)
    emb = torch.from_numpy(rng.standard_normal((40, 8)))
    assert select("divprune", scores, 0.3, embeddings=emb).indices.tolist() == greedy_maxmin_reference(scores, emb, 12)


def test_divprune_prefers_distinct_tokens_over_repeats():
    """Ten copies of one sound and three distinct sounds: K = 4 keeps one copy and all three."""
    emb = torch.eye(4)[[0] * 10 + [1, 2, 3]].float()
    scores = np.linspace(1, 0, 13)
    sel = select("divprune", scores, 4 / 13, embeddings=emb)
    assert sel.indices.tolist() == [0, 10, 11, 12]
    assert select("topk", scores, 4 / 13).indices.tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("keep", [0.1, 0.3, 0.6, 1.0])
def test_silence_option_drops_silent_tokens_first(method, keep):
    rng = np.random.default_rng(1)
    n = 200
    scores = rng.random(n)
    scores[60:120] += 5.0  # the silent stretch even has the highest scores
    silent = np.zeros(n, dtype=bool)
    silent[60:120] = True
    emb = make_embeddings(n, seed=2)
    sel = select(method, scores, keep, embeddings=emb, silent=silent)
    k = keep_count(n, keep)
    assert sel.k == k and np.all(np.diff(sel.indices) > 0)
    kept_silent = int(silent[sel.indices].sum())
    assert kept_silent == max(0, k - int((~silent).sum()))  # silent ones only once the rest is kept
    if keep == 1.0:
        assert sel.indices.tolist() == list(range(n))
        if sel.embeddings is not None:
            assert torch.equal(sel.embeddings, emb)


@pytest.mark.parametrize("method", [m for m in METHODS if METHODS[m].merges])
@pytest.mark.parametrize("keep", [0.2, 0.8])  # 0.8: every non-silent token, and merges among the silent ones
def test_silence_option_carries_the_merged_flags_of_the_sub_selection(method, keep):
    rng = np.random.default_rng(3)
    n = 200
    scores = rng.random(n)
    silent = np.zeros(n, dtype=bool)
    silent[60:120] = True
    emb = make_embeddings(n, seed=4)
    sel = select(method, scores, keep, embeddings=emb, silent=silent)
    k = keep_count(n, keep)
    live, quiet = np.flatnonzero(~silent), np.flatnonzero(silent)
    m = make_method(method)
    if live.size >= k:  # the method on the non-silent tokens alone
        sub = m.choose(scores[live], k, emb[live])
        expected = dict(zip(live[sub.indices].tolist(), sub.merged.tolist()))
    else:  # every non-silent token as it is, the method's choice among the silent ones
        sub = m.choose(scores[quiet], k - live.size, emb[quiet])
        expected = dict.fromkeys(live.tolist(), False) | dict(zip(quiet[sub.indices].tolist(), sub.merged.tolist()))
    assert sub.merged.any()  # the sub-selection did merge: its flags must reach the result
    assert sel.indices.tolist() == sorted(expected)
    assert sel.merged.tolist() == [expected[i] for i in sel.indices.tolist()]
    rows = {i: r for i, r in zip(sel.indices.tolist(), sel.embeddings)}
    for i, was_merged in expected.items():
        if not was_merged:
            assert torch.equal(rows[i], emb[i])  # a flag of False is a row taken as it was


def test_silence_mask_is_validated():
    with pytest.raises(ValueError, match="silence mask"):
        select("topk", np.ones(5), 0.5, silent=np.ones(4, dtype=bool))
    with pytest.raises(ValueError, match="silence mask"):
        select("topk", np.ones(5), 0.5, silent=np.ones(5))


# --- methods own their options


def test_a_misspelled_or_foreign_option_names_the_methods_options():
    with pytest.raises(ValueError) as err:
        select("segmentwise", np.arange(20.0), 0.5, segmnts=4)
    assert "'segmnts'" in str(err.value) and "segments (default 10)" in str(err.value)
    with pytest.raises(ValueError, match="its options: none"):
        select("topk", np.arange(20.0), 0.5, segments=4)
    with pytest.raises(ValueError, match="context_ratio"):
        make_method("visionzip", ratio=0.3)
    with pytest.raises(ValueError, match="context_ratio must be a number"):
        make_method("visionzip", context_ratio=-1)


def test_visionzip_context_ratio_changes_its_selection():
    scores = make_scores(400, "normal", 3)
    emb = make_embeddings(400, h=16, seed=3)
    default = select("visionzip", scores, 0.25, embeddings=emb)  # K = 100: 85 dominant + 15 contextual
    wider = select("visionzip", scores, 0.25, embeddings=emb, context_ratio=1.0)  # 50 + 50
    none = select("visionzip", scores, 0.25, embeddings=emb, context_ratio=0.0)  # Top-K
    assert default.k == wider.k == none.k == 100
    assert not np.array_equal(default.indices, wider.indices)
    assert none.indices.tolist() == select("topk", scores, 0.25).indices.tolist()
    assert wider.merged.sum() > default.merged.sum() > 0 == none.merged.sum()


def test_options_are_recorded_and_only_changed_ones_name_a_setting():
    from segprune.comparison import Setting

    assert make_method("segmentwise").options() == {"segments": 10}
    assert make_method("segmentwise", segments=5).changed_options() == {"segments": 5}
    assert Setting("segmentwise", 0.25).key == "segmentwise@0.25"
    assert Setting("segmentwise", 0.25, segments=10).key == "segmentwise@0.25"
    assert Setting("segmentwise", 0.25, segments=5, drop_silent=True).key == "segmentwise[segments=5]+drop_silent@0.25"
    assert Setting("visionzip", 0.1, context_ratio=0.3).to_dict()["options"] == {
        "context_ratio": 0.3,
        "context_window": 16,
    }
    with pytest.raises(ValueError, match="no option 'segments'"):
        Setting("topk", 0.25, segments=5)


# --- merging methods: local-merge (LTBM-style, with a window) and global-merge (sketched, after ToMe)


def merge_best_edges(groups, edges, k):
    """One round's merges: the min(m - k, |A|) most similar edges (cos, A, B), ties: the earlier A;
    each merged A group's tokens go after its B group's, in the order of the A groups."""
    m = len(groups)
    chosen = sorted(edges, key=lambda e: (-e[0], e[1]))[: min(m - k, (m + 1) // 2)]
    into = {p: q for _, p, q in chosen}
    return [
        groups[q] + [i for p, d in sorted(into.items()) if d == q for i in groups[p]] for q in range(m) if q not in into
    ]


def ref_merge(x, k, window):
    """Groups (lists of original positions, the anchor first) by plain loops over the definition,
    in float64: rounds of bipartite matching (A = even positions, B = odd) until k groups remain."""
    x = np.asarray(x, dtype=np.float64)
    groups = [[i] for i in range(len(x))]
    while len(groups) > k:
        m = len(groups)
        means = [x[g].mean(axis=0) for g in groups]

        def cos(p, q, means=means):
            u, v = means[p], means[q]
            return float(u @ v) / (max(np.linalg.norm(u), 1e-12) * max(np.linalg.norm(v), 1e-12))

        edges = []
        for p in range(0, m, 2):
            candidates = [q for q in range(1, m, 2) if window is None or abs(q - p) <= 2 * window - 1]
            best = max(candidates, key=lambda q: (cos(p, q), -q))  # ties: the earlier B
            edges.append((cos(p, best), p, best))
        groups = merge_best_edges(groups, edges, k)
    return groups


def ref_sketched_merge(x, k):
    """Groups (the anchor first) of the sketched global merge by plain loops over its definition, in
    float64: the rounds of `ref_merge`, each A's candidates its two temporal neighbours and the nearest
    B before and after it in the order by (SimHash bucket, position), compared by the cosine of the
    groups' sketches (the sums of their rows times `sketch_basis`; the rows themselves where H <= 16)."""
    from segprune.merging import hash_directions, sketch_basis

    x = np.asarray(x, dtype=np.float64)
    basis = sketch_basis(torch.from_numpy(x))
    sketch = x if basis is None else x @ basis.numpy()
    directions = hash_directions(sketch.shape[1], torch.float64).numpy()
    groups = [[i] for i in range(len(x))]
    while len(groups) > k:
        m = len(groups)
        units = []
        for g in groups:
            z = sketch[g].sum(axis=0)
            units.append(z / max(np.linalg.norm(z), 1e-12))
        buckets = [int("".join("1" if v > 0 else "0" for v in u @ directions), 2) for u in units]  # the signs
        order = sorted(range(m), key=lambda q: (buckets[q], q))
        edges = []
        for p in range(0, m, 2):
            place = order.index(p)
            before = [q for q in order[:place] if q % 2 == 1]
            after = [q for q in order[place + 1 :] if q % 2 == 1]
            candidates = {q for q in (p - 1, p + 1) if 0 <= q < m}
            candidates |= set(before[-1:]) | set(after[:1])
            best = max(candidates, key=lambda q: (float(units[p] @ units[q]), -q))  # ties: the earlier B
            edges.append((float(units[p] @ units[best]), p, best))
        groups = merge_best_edges(groups, edges, k)
    return groups


def ref_groups(method, x, k, opts):
    """The reference groups of a registry merge method."""
    return ref_sketched_merge(x, k) if method == "global-merge" else ref_merge(x, k, opts["window"])


MERGES = [("local-merge", {"window": 1}), ("local-merge", {"window": 2}), ("local-merge", {"window": 3})]
MERGES += [("global-merge", {})]


@pytest.mark.parametrize("method, opts", MERGES)
@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 90), data=st.data(), h=st.integers(1, 40), seed=st.integers(0, 2**16))
def test_merges_match_brute_force(method, opts, n, data, h, seed):
    """The global merge in float64: its hash compares products of nearly equal size, which float32
    could round the other way than the float64 reference."""
    k = data.draw(st.integers(1, n))
    emb = make_embeddings(n, h=h, seed=seed, dtype=torch.float64 if method == "global-merge" else torch.float32)
    sel = select(method, np.zeros(n), k / n, embeddings=emb, **opts)
    groups = ref_groups(method, emb.numpy(), keep_count(n, k / n), opts)
    assert sel.k == len(groups) == keep_count(n, k / n)
    assert sel.indices.tolist() == [g[0] for g in groups]  # anchors, in temporal order
    assert sel.merged.tolist() == [len(g) > 1 for g in groups]
    expected = np.stack([emb.double().numpy()[g].mean(axis=0) for g in groups])
    np.testing.assert_allclose(sel.embeddings.double().numpy(), expected, rtol=1e-5, atol=1e-6)
    for row, g in zip(sel.embeddings, groups):
        if len(g) == 1:  # a token that merged nothing is its original row, bit for bit
            assert torch.equal(row, emb[g[0]])


@pytest.mark.parametrize("method, opts", MERGES)
@FAST
@given(case=cases(max_n=1200))
def test_merges_keep_exactly_k_in_order_deterministically(method, opts, case):
    n, ratio, _, _, seed = case
    emb = make_embeddings(n, h=16, seed=seed)
    sel = select(method, np.zeros(n), ratio, embeddings=emb, **opts)
    assert sel.k == keep_count(n, ratio) and np.all(np.diff(sel.indices) > 0)
    assert sel.embeddings.shape == (sel.k, 16) and sel.merged.dtype == bool
    again = select(method, np.zeros(n), ratio, embeddings=emb.clone(), **opts)
    np.testing.assert_array_equal(sel.indices, again.indices)
    assert torch.equal(sel.embeddings, again.embeddings) and np.array_equal(sel.merged, again.merged)
    identity = select(method, np.zeros(n), 1.0, embeddings=emb, **opts)
    assert identity.indices.tolist() == list(range(n)) and torch.equal(identity.embeddings, emb)
    assert not identity.merged.any()


@FAST
@given(case=cases(max_n=3000))
def test_local_merge_with_window_one_merges_contiguous_stretches(case):
    """Window 1: every merged row is the mean of one contiguous stretch of tokens holding its anchor."""
    from segprune.merging import bipartite_merge

    n, ratio, _, _, seed = case
    emb = make_embeddings(n, h=6, seed=seed, dtype=torch.float64)
    merged = bipartite_merge(emb, keep_count(n, ratio), window=1)
    ends = np.cumsum(merged.sizes)
    starts = ends - merged.sizes
    assert ends[-1] == n and np.all((starts <= merged.anchors) & (merged.anchors < ends))
    expected = torch.stack([emb[s:e].mean(dim=0) for s, e in zip(starts, ends)])
    torch.testing.assert_close(merged.rows, expected, rtol=1e-12, atol=1e-12)


def test_merges_crafted_ties_go_to_the_earlier_token():
    from segprune.merging import bipartite_merge

    same = torch.ones(6, 3)  # every cosine is exactly 1
    # K = 3, one full round: A_0 -> B_0 (its only neighbour), A_1 -> B_0 (earlier of two), A_2 -> B_1
    local = select("local-merge", np.zeros(6), 0.5, embeddings=same)
    assert local.indices.tolist() == [1, 3, 5] and local.merged.tolist() == [True, True, False]
    assert torch.equal(local.embeddings, torch.ones(3, 3))
    # global: one bucket, so its hash neighbours are its temporal ones: as the local merge
    glob = select("global-merge", np.zeros(6), 0.5, embeddings=same)
    assert glob.indices.tolist() == [1, 3, 5] and glob.merged.tolist() == [True, True, False]
    exact = bipartite_merge(same, 3)  # the exact global search: every A into the first B
    assert exact.anchors.tolist() == [1, 3, 5] and exact.sizes.tolist() == [4, 1, 1]
    # K = 4, a partial round: of three equal edges the two earliest A merge
    assert select("local-merge", np.zeros(6), 4 / 6, embeddings=same).indices.tolist() == [1, 3, 4, 5]
    # a row that merged nothing is the original bit for bit, even the sign of a zero
    signed = same.clone()
    signed[5, 0] = -0.0  # token 5 (B_2) is less like token 4 than token 3 is: nothing merges into it
    alone = select("local-merge", np.zeros(6), 0.5, embeddings=signed)
    assert alone.merged.tolist() == [True, True, False]
    assert torch.equal(alone.embeddings[2].view(torch.int32), signed[5].view(torch.int32))


def test_local_merge_keeps_two_sounds_apart_and_global_joins_their_repeats():
    e = torch.eye(4)
    two = e[[0] * 5 + [1] * 5]
    for method in ("local-merge", "global-merge"):
        sel = select(method, np.zeros(10), 0.2, embeddings=two)
        assert sel.indices.tolist() == [3, 7] and torch.equal(sel.embeddings, e[[0, 1]])
    repeat = e[[0] * 2 + [1] * 4 + [0] * 2]  # the first sound comes back after the second
    glob = select("global-merge", np.zeros(8), 0.25, embeddings=repeat)
    assert torch.equal(glob.embeddings, e[[1, 0]])  # both stretches of sound 0 in one row
    local = select("local-merge", np.zeros(8), 0.25, embeddings=repeat)
    assert not torch.equal(local.embeddings, e[[1, 0]])  # a window of 1 cannot reach across sound 1


def test_merges_compute_in_float32_and_return_the_input_dtype():
    emb = make_embeddings(300, h=32, seed=4, dtype=torch.bfloat16)
    for method, opts in MERGES:
        sel = select(method, np.zeros(300), 0.25, embeddings=emb, **opts)
        assert sel.embeddings.dtype == torch.bfloat16 and sel.embeddings.device == emb.device
        if method == "global-merge":  # the float32 merge of the same values, its means rounded once
            wide = select(method, np.zeros(300), 0.25, embeddings=emb.float(), **opts)
            assert sel.indices.tolist() == wide.indices.tolist()
            assert torch.equal(sel.embeddings, wide.embeddings.to(torch.bfloat16))
            continue
        groups = ref_merge(emb.float().numpy(), sel.k, opts.get("window"))
        assert sel.indices.tolist() == [g[0] for g in groups]
        expected = torch.stack([emb[g].float().mean(dim=0) for g in groups]).to(torch.bfloat16)
        assert torch.equal(sel.embeddings, expected)  # the float32 mean, rounded once


def test_merges_results_do_not_depend_on_the_block_sizes(monkeypatch):
    from segprune import merging

    emb = make_embeddings(700, h=24, seed=5)
    default = {(m, str(o)): select(m, np.zeros(700), 0.1, embeddings=emb, **o) for m, o in MERGES}
    monkeypatch.setattr(merging, "SIM_BLOCK", 97)
    monkeypatch.setattr(merging, "BLOCK_ROWS", 3)
    for (method, opts), sel in zip(MERGES, default.values()):
        small = select(method, np.zeros(700), 0.1, embeddings=emb, **opts)
        np.testing.assert_array_equal(small.indices, sel.indices)
        torch.testing.assert_close(small.embeddings, sel.embeddings, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("window", [1, 2, 5])
@pytest.mark.parametrize("ratio", [0.5, 0.25, 0.1, 0.03])
def test_local_merge_from_row_dots_equals_merging_the_sums_each_round(monkeypatch, window, ratio):
    """The band of row dots (several rounds from one read of the rows) decides as summing the groups
    before every round does: CANCELLING above 1 sends every round through the group sums."""
    from segprune import merging

    emb = make_embeddings(1500, h=24, seed=8)
    near = -emb[900] + 1e-3 * make_embeddings(30, h=24, seed=9)
    emb[900:960:2], emb[901:961:2] = emb[900], near  # x, -x + e, x, ...: groups whose rows nearly cancel
    band = select("local-merge", np.zeros(1500), ratio, embeddings=emb, window=window)
    monkeypatch.setattr(merging, "CANCELLING", 2.0)
    summed = select("local-merge", np.zeros(1500), ratio, embeddings=emb, window=window)
    np.testing.assert_array_equal(band.indices, summed.indices)
    np.testing.assert_array_equal(band.merged, summed.merged)
    torch.testing.assert_close(band.embeddings, summed.embeddings, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("m, span", [(1, 0), (2, 1), (8, 3), (9, 1), (17, 5), (40, 20), (100, 1), (100, 30)])
def test_forward_dots_are_the_banded_gram_matrix(m, span):
    from segprune.merging import forward_dots

    s = torch.randn(m, 2 * 5, dtype=torch.float64)[:, ::2]  # a strided view, as the rows of a round are
    gram = (s @ s.T).numpy()
    expected = np.array([[gram[p, p + d] if p + d < m else 0.0 for d in range(span + 1)] for p in range(m)])
    np.testing.assert_allclose(forward_dots(s, span), expected, rtol=1e-12, atol=1e-12)


def test_sketch_basis_is_orthonormal_and_keeps_a_low_rank_clip_exactly():
    from segprune.merging import SKETCH_DIMS, sketch_basis

    assert sketch_basis(make_embeddings(50, h=SKETCH_DIMS)) is None  # narrow rows are their own sketch
    x = make_embeddings(3000, h=64, seed=2, dtype=torch.float64)
    p = sketch_basis(x)
    assert p.shape == (64, SKETCH_DIMS) and p.dtype == torch.float64
    torch.testing.assert_close(p.T @ p, torch.eye(SKETCH_DIMS, dtype=torch.float64))
    assert torch.equal(sketch_basis(x.clone()), p)  # deterministic
    # rows in a 10-dimensional subspace: the basis spans it, so the sketch keeps every length and cosine
    space = torch.linalg.qr(make_embeddings(64, h=10, seed=3, dtype=torch.float64)).Q  # [64, 10]
    low = make_embeddings(3000, h=10, seed=4, dtype=torch.float64) @ space.T
    z = low @ sketch_basis(low)
    torch.testing.assert_close(z @ z.T, low @ low.T)


def test_sketch_rows_is_the_product_on_every_path():
    from segprune.merging import sketch_basis, sketch_rows

    x = make_embeddings(3000, h=64, seed=1)
    p = sketch_basis(x)
    torch.testing.assert_close(sketch_rows(x, p), x @ p, rtol=1e-5, atol=1e-5)  # oneDNN's kernel on the CPU
    wide = x.double()  # float64: the plain product
    torch.testing.assert_close(sketch_rows(wide, p.double()), wide @ p.double(), rtol=0, atol=0)


def test_global_merge_joins_a_sound_that_returns_and_loses_less_than_the_local_merge():
    """A clip of four sounds in stretches of 3 to 12 tokens, each sound returning many times: the
    global merge puts tokens of one sound far apart into one row, which a window of one cannot, and
    the rows it keeps lose less of the clip's variance."""
    from segprune.merging import bipartite_merge, sketched_global_merge

    rng = np.random.default_rng(7)
    sounds = rng.standard_normal((4, 64))
    labels = np.concatenate([np.full(rng.integers(3, 13), rng.integers(0, 4)) for _ in range(300)])
    x = torch.from_numpy(sounds[labels] + 0.3 * rng.standard_normal((labels.size, 64))).float()
    k = keep_count(labels.size, 0.1)
    lost, spans = {}, {}
    for name, merged in [("local", bipartite_merge(x, k, window=1)), ("global", sketched_global_merge(x, k))]:
        spans[name] = max(np.ptp(np.flatnonzero(merged.members == j)) for j in range(k))
        lost[name] = float(((x - merged.rows[merged.members]) ** 2).sum() / ((x - x.mean(0)) ** 2).sum())
    assert spans["global"] > 500 and spans["local"] < 100
    assert lost["global"] < 0.9 * lost["local"]


@pytest.mark.parametrize("merge", ["local", "exact", "sketched"])
@FAST
@given(case=cases(max_n=1500))
def test_merges_report_each_tokens_row(merge, case):
    from segprune.merging import bipartite_merge, sketched_global_merge

    n, ratio, _, _, seed = case
    x = make_embeddings(n, h=24, seed=seed, dtype=torch.float64)
    k = keep_count(n, ratio)
    merged = {"local": lambda: bipartite_merge(x, k, window=2), "exact": lambda: bipartite_merge(x, k)}.get(
        merge, lambda: sketched_global_merge(x, k)
    )()
    assert merged.members.shape == (n,) and np.array_equal(merged.members[merged.anchors], np.arange(k))
    assert np.array_equal(np.bincount(merged.members, minlength=k), merged.sizes)
    means = torch.zeros(k, 24, dtype=torch.float64).index_add_(0, torch.as_tensor(merged.members), x)
    torch.testing.assert_close(merged.rows, means / torch.as_tensor(merged.sizes).unsqueeze(1).double())


def test_global_merge_cost_grows_linearly_with_the_clip():
    """CPU time at N = 32,000 against N = 4,000 (H = 32, keep 0.25): about 8x for two passes over the
    rows; the exact search over every pair would take about 60x."""

    def cpu_seconds(n):
        emb = make_embeddings(n, h=32, seed=n)
        best = math.inf
        for _ in range(3):
            start = time.process_time()
            select("global-merge", np.zeros(n), 0.25, embeddings=emb)
            best = min(best, time.process_time() - start)
        return best

    assert cpu_seconds(32_000) < 25 * cpu_seconds(4_000)


def test_merge_window_is_validated():
    with pytest.raises(ValueError, match="window must be a whole number of at least 1"):
        make_method("local-merge", window=0)
    with pytest.raises(ValueError, match="its options: none"):
        select("global-merge", np.zeros(10), 0.5, embeddings=torch.ones(10, 2), window=2)


# --- selection at scale: DivPrune's greedy in rounds of matrix products, VisionZip's blocked search, the cost warning


def greedy_per_pick(x, first, k):
    """The greedy max-min order updating all N distances after every pick (the old DivPrune loop)."""
    chosen = torch.zeros(x.shape[0], dtype=torch.bool)
    chosen[first] = True
    nearest = 1.0 - x @ x[first]
    order = [first]
    for _ in range(k - 1):
        j = int(torch.argmax(nearest.masked_fill(chosen, -torch.inf)))
        chosen[j] = True
        order.append(j)
        nearest = torch.minimum(nearest, 1.0 - x @ x[j])
    return order


def assert_greedy_max_min(x, order, atol=1e-5):
    """Every pick is an unpicked row at the largest distance to its nearest earlier pick (float64
    distances, within `atol`: the products may round differently from a pass per pick)."""
    x = x.double()
    used = torch.zeros(x.shape[0], dtype=torch.bool)
    used[order[0]] = True
    nearest = 1.0 - x @ x[order[0]]
    for j in order[1:]:
        assert not used[j] and nearest[j] >= nearest.masked_fill(used, -torch.inf).max() - atol
        used[j] = True
        nearest = torch.minimum(nearest, 1.0 - x @ x[j])


def greedy_data(kind, n, h, rng):
    if kind == "normal":
        return torch.from_numpy(rng.standard_normal((n, h)).astype(np.float32))
    if kind == "clusters":  # 30 sounds with a little noise, as steady audio gives
        centres = rng.standard_normal((30, h))
        return torch.from_numpy(
            (centres[rng.integers(0, 30, n)] + 0.05 * rng.standard_normal((n, h))).astype(np.float32)
        )
    return torch.eye(6)[rng.integers(0, 6, n)]  # few distinct rows: exact ties everywhere, broken by the lower index


@pytest.mark.parametrize("candidates", [1, 7, 128, 5000])
@pytest.mark.parametrize("kind", ["normal", "clusters", "repeats"])
def test_divprune_rounds_pick_what_a_pass_per_pick_picks(candidates, kind):
    from segprune.methods import greedy_max_min

    rng = np.random.default_rng(candidates)
    n = 800
    x = torch.nn.functional.normalize(greedy_data(kind, n, 24, rng), dim=-1)
    exact = (1, 2, 40) if kind == "clusters" else (1, 2, 40, 300)  # past 30 picks, clusters hold float32 near-ties
    for k in exact:
        order = greedy_max_min(x, 17, k, candidates)
        assert order.tolist() == greedy_per_pick(x, 17, k)  # the same picks in the same order
    for k in (300, n // 2, n - 1, n):  # long runs, where near-ties abound: a valid greedy order
        order = greedy_max_min(x, 17, k, candidates)
        assert len(set(order.tolist())) == k
        assert_greedy_max_min(x, order.tolist())
    sel = select("divprune", rng.random(n), 1.0, embeddings=x)
    assert sel.indices.tolist() == list(range(n))


@pytest.mark.parametrize("window", [0, 3, 16])
def test_visionzip_results_do_not_depend_on_the_block_size(monkeypatch, window):
    from segprune import methods

    scores = make_scores(900, "normal", 6)
    emb = make_embeddings(900, h=16, seed=6)
    default = select("visionzip", scores, 0.3, embeddings=emb, context_window=window)  # K_c = 41
    monkeypatch.setattr(methods, "SIM_BLOCK", 50)  # many small blocks of the search over every target
    monkeypatch.setattr(methods, "CONTEXT_ROWS", 7)  # and of the windowed search
    monkeypatch.setattr(methods, "CONTEXT_STRETCH", 1)  # stretches of 2W + 1 targets
    small = select("visionzip", scores, 0.3, embeddings=emb, context_window=window)
    np.testing.assert_array_equal(small.indices, default.indices)
    np.testing.assert_array_equal(small.merged, default.merged)
    assert torch.equal(small.embeddings, default.embeddings)  # the same sums, added in the same order


def test_visionzip_window_matches_brute_force_over_many_blocks():
    n = 2500
    scores = make_scores(n, "normal", 11)
    # (16, 0.5): blocks end where their stretch of 48 targets does (not at CONTEXT_ROWS); 64 wide, so
    # that a window one target short there merges some token elsewhere
    for window, ratio, h in [(1, 0.25, 8), (4, 0.1, 8), (16, 0.5, 8), (16, 0.5, 64)]:
        emb = make_embeddings(n, h=h, seed=11)
        sel = select("visionzip", scores, ratio, embeddings=emb, context_window=window)
        idx, rows = ref_visionzip(scores.tolist(), emb.double().numpy(), keep_count(n, ratio), window)
        assert sel.indices.tolist() == idx
        np.testing.assert_allclose(sel.embeddings.double().numpy(), rows, rtol=1e-5, atol=1e-6)


def test_visionzip_window_covering_every_target_is_the_original():
    scores = make_scores(750, "normal", 12)  # 30 s of Qwen2-Audio at keep 0.25: K_c = 29 <= 2W
    emb = make_embeddings(750, h=16, seed=12)
    default = select("visionzip", scores, 0.25, embeddings=emb)
    every = select("visionzip", scores, 0.25, embeddings=emb, context_window=0)
    np.testing.assert_array_equal(default.indices, every.indices)
    assert torch.equal(default.embeddings, every.embeddings)
    narrow = select("visionzip", scores, 0.25, embeddings=emb, context_window=2)
    assert not torch.equal(narrow.embeddings, every.embeddings)  # a narrower window merges differently


def test_slow_selection_warning_follows_the_cost_model():
    from segprune import words
    from segprune.methods import (
        CPU_MULTIPLY_ADDS_PER_S,
        SLOWDOWN_OVER_PRODUCT,
        selection_multiply_adds,
        selection_seconds,
    )

    assert selection_multiply_adds("divprune", 15_000, 3_750, 896) == 3_750 * 15_000 * 896
    assert selection_multiply_adds("visionzip", 1180, 118, 2) == 18 * (1180 - 118) * 2  # K_c = 18 targets
    # the window holds 32 targets: past them, each token meets 32 (linear in N), unless told every target
    assert selection_multiply_adds("visionzip", 45000, 11250, 896) == 0
    assert selection_multiply_adds("visionzip", 45000, 11250, 896, {"context_window": 0}) == 1716 * 33750 * 896
    assert selection_multiply_adds("visionzip", 1180, 118, 2, {"context_ratio": 1.0}) == 0  # K_c = 59
    assert selection_multiply_adds("visionzip", 1180, 118, 2, {"context_ratio": 0.1}) == 11 * (1180 - 118) * 2
    assert selection_multiply_adds("segmentwise", 45_000, 11_250, 896) == 0
    divprune = 3_750 * 15_000 * 896 / CPU_MULTIPLY_ADDS_PER_S * SLOWDOWN_OVER_PRODUCT["divprune"]
    assert selection_seconds("divprune", 15_000) == pytest.approx(divprune)
    for method in METHODS:
        assert words.slow_selection_warning(method, 750) is None  # 30 s of audio: quick for every method
        assert words.slow_selection_warning(method, 0) is None  # a clip under one token: the request's sentence
    quick = ["segmentwise", "topk", "adaptive-segmentwise", "local-merge", "global-merge", "random", "bottomk"]
    for method in quick + ["uniform"]:  # a few passes over N: the merges' rounds included
        assert selection_seconds(method, 45_000) == 0.0 and words.slow_selection_warning(method, 45_000) is None
    sentence = words.slow_selection_warning("divprune", 30_000)  # 20 minutes of audio
    estimate = words.seconds(selection_seconds("divprune", 30_000))
    assert sentence.startswith(f"DivPrune will take about {estimate} to choose 7,500 of N = 30,000")
    assert len(sentence.split(". ")) == 1 and sentence.endswith(".")
    # the threshold is the estimate: just above and just below SLOW_SELECTION_SECONDS
    n = next(n for n in range(1000, 20_000, 10) if selection_seconds("divprune", n) > words.SLOW_SELECTION_SECONDS)
    assert words.slow_selection_warning("divprune", n) and words.slow_selection_warning("divprune", n - 10) is None
    assert words.slow_selection_warning("divprune", 30_000, keep=0.01) is None  # K = 300: quick again
    assert words.slow_selection_warning("divprune", 30_000, hidden=64) is None  # narrow embeddings: quick
    assert words.slow_selection_warning("divprune", 15_000, hidden=4096)  # Qwen2-Audio-7B's width, 10 minutes
    assert words.slow_selection_warning("divprune", 30_000, device="cuda:0") is None  # no model measured there
    with pytest.raises(ValueError, match="Unknown method"):
        selection_seconds("fastv", 100)
