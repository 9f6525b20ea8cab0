"""Speech Segmentwise (the registry's "speech-segmentwise", Whisper's default): exact budgets, order,
determinism, the regions it keeps, and how `select` passes it `audio_end`."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segprune.methods import SPEECH_METHOD, get_method, keep_count, make_method, segmentwise, select, speech_segmentwise

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
        "pad_after": draw(st.integers(0, 60)),
        "pad_tail": draw(st.integers(0, 60)),
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
    if silent is None and sel.indices[0] < audio_end:
        assert sel.segment_bounds[0] == 0 and sel.segment_bounds[-1] == audio_end
    if sel.segment_bounds is not None:
        assert sel.segment_bounds[-1] == audio_end


@settings(max_examples=100, deadline=None)
@given(cases())
def test_keep_all_is_the_identity(case):
    scores, _, audio_end, options, silent = case
    sel = speech_segmentwise(scores, scores.size, audio_end=audio_end, silent=silent, **options)
    assert np.array_equal(sel.indices, np.arange(scores.size))


@settings(max_examples=200, deadline=None)
@given(cases())
def test_without_padding_it_is_segmentwise_top_k(case):
    scores, k, _, options, silent = case
    sel = speech_segmentwise(scores, k, audio_end=scores.size, **options)
    assert np.array_equal(sel.indices, segmentwise(scores, k, segments=options["segments"]).indices)
    if silent is not None:  # with silent frames dropped first: exactly `select("segmentwise", silent=...)`
        sel = speech_segmentwise(scores, k, audio_end=scores.size, silent=silent, **options)
        plain = select("segmentwise", scores, k / scores.size, segments=options["segments"], silent=silent)
        assert np.array_equal(sel.indices, plain.indices)


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
    first = list(dict.fromkeys([*padding[::-1][: options["pad_tail"]], *padding[: options["pad_after"]]]))
    taken = first[: k - speech]
    assert set(taken) <= set(kept_pad.tolist())  # the window's last frames, then those after the speech, come first


def test_ties_go_to_the_lower_index():
    scores = np.ones(N)
    sel = speech_segmentwise(scores, 100, audio_end=200, segments=1, pad_share=0.1, pad_after=5, pad_tail=5)
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
        ({"audio_end": 0}, "audio_end must be a token index from 1 to 1500"),
        ({"audio_end": 1501}, "audio_end must be a token index from 1 to 1500"),
        ({"audio_end": 2.5}, "audio_end must be a token index"),
        ({"audio_end": 10, "pad_share": 1.5}, "pad_share must be a number from 0 to 1"),
        ({"audio_end": 10, "pad_share": True}, "pad_share must be a number from 0 to 1"),
        ({"audio_end": 10, "pad_after": -1}, "pad_after must be a whole number of at least 0"),
        ({"audio_end": 10, "pad_tail": 1.0}, "pad_tail must be a whole number of at least 0"),
        ({"audio_end": 10, "segments": 0}, "segments must be a whole number of at least 1"),
        ({"audio_end": 10, "after": 5}, "has no option 'after'; its options: segments"),
    ],
)
def test_bad_arguments_are_one_sentence(kwargs, match):
    with pytest.raises(ValueError, match=match):
        select(SPEECH_METHOD, np.zeros(N), 0.25, **kwargs)


# --- through the registry (select, as the CLI, the app, bench and eval call it)


def test_registered_with_its_options():
    cls = get_method(SPEECH_METHOD)
    assert cls.option_defaults() == {"segments": 10, "pad_share": 0.25, "pad_after": 50, "pad_tail": 50}
    assert cls.reads_audio_end and cls.drops_silent_itself and not cls.needs_embeddings
    assert make_method(SPEECH_METHOD, pad_share=0.5).changed_options() == {"pad_share": 0.5}


@settings(max_examples=200, deadline=None)
@given(cases(), st.sampled_from([0.05, 0.1, 0.25, 0.5, 0.75, 1.0]))
def test_select_passes_audio_end_and_keeps_exactly_k(case, keep):
    scores, _, audio_end, options, silent = case
    sel = select(SPEECH_METHOD, scores, keep, audio_end=audio_end, silent=silent, **options)
    want = speech_segmentwise(scores, keep_count(scores.size, keep), audio_end, silent=silent, **options)
    assert np.array_equal(sel.indices, want.indices) and sel.k == keep_count(scores.size, keep)
    if keep == 1.0:
        assert np.array_equal(sel.indices, np.arange(scores.size))


@settings(max_examples=100, deadline=None)
@given(cases(), st.sampled_from([0.1, 0.25, 0.5]))
def test_without_audio_end_select_is_segmentwise(case, keep):
    """The decoder-only families (audio_end = N, their padding already dropped) get Segmentwise Top-K."""
    scores, _, _, options, _ = case
    plain = select("segmentwise", scores, keep, segments=options["segments"]).indices
    assert np.array_equal(select(SPEECH_METHOD, scores, keep, **options).indices, plain)
    assert np.array_equal(select(SPEECH_METHOD, scores, keep, audio_end=scores.size, **options).indices, plain)


def test_other_methods_ignore_audio_end():
    scores = np.random.default_rng(3).random(N)
    for name in ("segmentwise", "topk", "uniform"):
        assert np.array_equal(select(name, scores, 0.25, audio_end=200).indices, select(name, scores, 0.25).indices)


def test_drop_silent_keeps_the_padding_budget():
    """Padding is silent; dropping silent tokens first would starve the decoder of it. The method takes
    the mask itself: only the audio region's silent frames go last, the padding budget stays."""
    rng = np.random.default_rng(4)
    scores = rng.random(N)
    silent = np.arange(N) >= 180
    silent[40:60] = True  # a pause inside the speech
    sel = select(SPEECH_METHOD, scores, 0.1, audio_end=200, silent=silent)
    k = keep_count(N, 0.1)
    pad = math.ceil(0.25 * k)  # 38: the window's last 38 frames
    assert sel.indices[sel.indices >= 200].tolist() == list(range(N - pad, N))
    assert not set(range(40, 60)) & set(sel.indices.tolist())  # the pause's frames lose to speech
