"""speech_segmentwise: exact budgets, order, determinism and the regions it keeps."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segprune.methods import keep_count, segmentwise
from segprune.speech_policy import speech_segmentwise

N = 1500


@st.composite
def cases(draw):
    n = draw(st.integers(1, 400))
    k = draw(st.integers(1, n))
    audio_end = draw(st.integers(1, n))
    ties = draw(st.booleans())
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 4, n).astype(float) if ties else rng.random(n)
    options = {
        "segments": draw(st.integers(1, 12)),
        "pad_share": draw(st.sampled_from([0.0, 0.1, 0.25, 0.5, 1.0])),
        "after": draw(st.integers(0, 60)),
        "tail": draw(st.integers(0, 60)),
    }
    silent = rng.random(n) < 0.3 if draw(st.booleans()) else None
    return scores, k, audio_end, options, silent


@settings(max_examples=300, deadline=None)
@given(cases())
def test_exactly_k_increasing_in_range_and_deterministic(case):
    scores, k, audio_end, options, silent = case
    sel = speech_segmentwise(scores, k, audio_end=audio_end, silent=silent, **options)
    assert sel.k == k and sel.n == scores.size
    assert np.all(np.diff(sel.indices) > 0) and sel.indices[0] >= 0 and sel.indices[-1] < scores.size
    again = speech_segmentwise(scores.copy(), k, audio_end=audio_end, silent=silent, **options)
    assert np.array_equal(sel.indices, again.indices)
    assert sel.segment_bounds[0] == 0 and sel.segment_bounds[-1] == audio_end


@settings(max_examples=100, deadline=None)
@given(cases())
def test_keep_all_is_the_identity(case):
    scores, _, audio_end, options, silent = case
    sel = speech_segmentwise(scores, scores.size, audio_end=audio_end, silent=silent, **options)
    assert np.array_equal(sel.indices, np.arange(scores.size))


@settings(max_examples=200, deadline=None)
@given(cases())
def test_without_padding_it_is_segmentwise_top_k(case):
    scores, k, _, options, _ = case
    sel = speech_segmentwise(scores, k, audio_end=scores.size, **options)
    assert np.array_equal(sel.indices, segmentwise(scores, k, segments=options["segments"]).indices)


@settings(max_examples=200, deadline=None)
@given(cases())
def test_budgets_split_between_speech_and_padding(case):
    scores, k, audio_end, options, _ = case
    n = scores.size
    sel = speech_segmentwise(scores, k, audio_end=audio_end, **options)
    pad = min(math.ceil(options["pad_share"] * k), n - audio_end)
    speech = min(k - pad, audio_end)
    assert int((sel.indices < audio_end).sum()) == speech
    kept_pad = sel.indices[sel.indices >= audio_end]
    padding = np.arange(audio_end, n)
    first = list(dict.fromkeys([*padding[::-1][: options["tail"]], *padding[: options["after"]]]))
    taken = first[: k - speech]
    assert set(taken) <= set(kept_pad.tolist())  # the window's last frames, then those after the speech, come first


def test_ties_go_to_the_lower_index():
    scores = np.ones(N)
    sel = speech_segmentwise(scores, 100, audio_end=200, segments=1, pad_share=0.1, after=5, tail=5)
    assert sel.indices.tolist() == list(range(90)) + list(range(200, 205)) + list(range(1495, 1500))


def test_whisper_budget_on_a_short_clip():
    """A 3.6 s clip (audio_end 180) at keep 0.25: every speech frame, then the second after it, the
    window's last second and the best-scoring other padding frames."""
    rng = np.random.default_rng(0)
    scores = rng.random(N)
    k = keep_count(N, 0.25)
    sel = speech_segmentwise(scores, k, audio_end=180)
    idx = sel.indices
    assert sel.k == k == 375 and np.array_equal(idx[:180], np.arange(180))
    assert set(range(180, 230)) | set(range(1450, 1500)) <= set(idx.tolist())
    others = np.setdiff1d(np.arange(230, 1450), idx)
    assert scores[np.setdiff1d(idx[idx >= 230], np.arange(1450, 1500))].min() >= scores[others].max()


def test_long_speech_gets_segmentwise_coverage():
    """A 20 s clip at keep 0.1: 25 % of K is padding, the rest spread over S segments of the speech."""
    rng = np.random.default_rng(1)
    scores = rng.random(N)
    k = keep_count(N, 0.1)
    sel = speech_segmentwise(scores, k, audio_end=1000, segments=10)
    speech = sel.indices[sel.indices < 1000]
    assert speech.size == k - math.ceil(0.25 * k)
    per_segment = np.bincount(np.searchsorted(sel.segment_bounds, speech, side="right") - 1, minlength=10)
    assert per_segment.min() >= speech.size // 10


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"audio_end": 0}, "audio_end must be from 1 to 1500"),
        ({"audio_end": 1501}, "audio_end must be from 1 to 1500"),
        ({"audio_end": 10, "pad_share": 1.5}, "pad_share must be in"),
        ({"audio_end": 10, "after": -1}, "non-negative"),
    ],
)
def test_bad_arguments_are_one_sentence(kwargs, match):
    with pytest.raises(ValueError, match=match):
        speech_segmentwise(np.zeros(N), 10, **kwargs)
    with pytest.raises(ValueError, match="k must be from 1 to 1500"):
        speech_segmentwise(np.zeros(N), 0, audio_end=10)
