"""What the pruned model hears, and the app's session: the listening track has the clip's length and
is silent exactly over the dropped tokens' spans (every family; Whisper's and Voxtral's padding
tokens have no audio); a session re-selects, draws and renders the track from its cached encoding
without an encoder pass or a language-model run, also for a 30-minute clip, with bounded memory;
coverage, overlap and word error rate of the compare-all table."""

import time
import tracemalloc

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from segprune import listen, words
from segprune.answers import edit_distance, readable, word_error_rate
from segprune.comparison import Comparison, PrunedRun, Run, Setting, compare, encode_clip
from segprune.coverage import covered_bins, covered_share, jaccard
from segprune.methods import METHODS, keep_count, select
from segprune.models.types import AudioTokens
from segprune.plot import methods_figure, token_figure
from segprune.session import Session
from segprune.timing import Samples
from tests.conftest import TINY_KEYS, scene

RATE = 16_000


def spans(starts, duration, indices, n):
    """Sample spans [a, b) of the given tokens, clipped to the clip (the definition, written out)."""
    out = []
    for i in indices:
        a = min(max(round(starts[i] * RATE), 0), n)
        b = min(max(round((starts[i] + duration) * RATE), 0), n)
        out.append((a, b))
    return out


def check_track(track, samples, starts, duration, kept):
    """The track equals the clip over kept spans and is exactly 0 everywhere else."""
    n = len(samples)
    assert track.shape == samples.shape and track.dtype == samples.dtype
    heard = np.zeros(n, dtype=bool)
    for a, b in spans(starts, duration, kept, n):
        heard[a:b] = True
    np.testing.assert_array_equal(track[heard], samples[heard])
    assert not track[~heard].any()
    return heard


@settings(max_examples=60, deadline=None)
@given(
    n_tokens=st.integers(1, 120),
    duration=st.sampled_from([0.02, 0.04, 0.08]),
    extra=st.floats(0, 0.5),
    padding=st.integers(0, 40),
    seed=st.integers(0, 2**16),
)
def test_track_is_the_clip_over_kept_spans_and_silence_elsewhere(n_tokens, duration, extra, padding, seed):
    """Tokens of `duration` s covering the clip (plus a tail shorter than one token and `padding`
    tokens past its end, as Whisper's window has), a random kept set."""
    rng = np.random.default_rng(seed)
    n = round((n_tokens * duration + extra * duration) * RATE)
    samples = (rng.uniform(0.05, 1.0, n) * rng.choice([-1, 1], n)).astype(np.float32)  # never 0
    starts = np.arange(n_tokens + padding) * duration
    kept = np.sort(rng.choice(n_tokens + padding, rng.integers(0, n_tokens + padding + 1), replace=False))
    track = listen.listening_track(samples, RATE, starts, duration, kept)
    heard = check_track(track, samples, starts, duration, kept)
    dropped = np.setdiff1d(np.arange(n_tokens + padding), kept)
    for a, b in spans(starts, duration, dropped, n):
        assert not track[a:b].any()  # exactly silent over every dropped span
    assert listen.heard_seconds(starts, duration, kept, RATE, n) == pytest.approx(heard.sum() / RATE)
    # tokens that start past the clip's end (padding) have no audio: keeping them or not changes nothing
    no_padding = kept[starts[kept] < n / RATE]
    np.testing.assert_array_equal(listen.listening_track(samples, RATE, starts, duration, no_padding), track)


def test_spans_merge_and_the_flac_is_lossless():
    starts = np.arange(10) * 0.04
    got = listen.heard_spans(starts, 0.04, [7, 1, 2, 3, 9], RATE, 10 * 640 - 100)
    assert got.tolist() == [[640, 2560], [4480, 5120], [5760, 6300]]  # 1-3 merged, 9 cut at the clip's end
    assert listen.heard_spans(starts, 0.04, [], RATE, 6400).shape == (0, 2)
    import io

    import soundfile

    pcm = listen.to_pcm16(scene(2.0))
    track = listen.listening_track(pcm, RATE, np.arange(50) * 0.04, 0.04, np.arange(0, 50, 3))
    back, rate = soundfile.read(io.BytesIO(listen.flac_bytes(track, RATE)), dtype="int16")
    assert rate == RATE and np.array_equal(back, track)


@pytest.mark.parametrize("key", TINY_KEYS)
def test_every_family_track_follows_its_tokens(tiny_models, key):
    """Real encodings: the track silences the dropped tokens' spans on each family's own token
    arithmetic; tokens past the audio (Whisper's window, Voxtral's last chunk) have no samples."""
    lm = tiny_models[key]
    samples = scene(3.3, seed=3)
    clip = encode_clip(lm, (RATE, samples), "Describe.", 2)
    tokens = clip.tokens
    kept = select("segmentwise", tokens.scores, 0.25).indices
    track = listen.listening_track(clip.audio.samples, RATE, tokens.token_seconds, tokens.token_duration, kept)
    check_track(track, clip.audio.samples, tokens.token_seconds, tokens.token_duration, kept)
    assert len(track) == len(samples)
    past = tokens.token_seconds >= len(samples) / RATE  # tokens with no audio at all
    if key in ("tiny-whisper", "tiny-voxtral-mini"):
        assert past.sum() > 0 and tokens.audio_end < tokens.n
    covered = listen.heard_spans(tokens.token_seconds, tokens.token_duration, np.flatnonzero(past), RATE, len(track))
    assert covered.size == 0


# --------------------------------------------------------------------------- the session


@pytest.fixture(scope="module")
def qwen(tiny_models):
    return tiny_models["tiny-qwen2-audio"]


def counting(module):
    calls = []
    return calls, module.register_forward_hook(lambda *_: calls.append(1))


def test_reselection_uses_the_cached_encoding_only(qwen):
    audio = (RATE, scene(6.0, seed=4))
    settings_ = [Setting("segmentwise", 0.25), Setting("topk", 0.5)]
    c = compare(qwen, audio, "Describe.", settings_, max_new_tokens=2, repeats=1)
    from segprune.audio import load_audio

    session = Session.of(c, load_audio(audio))
    assert session.tokens.embeddings.device.type == "cpu" and all(
        p.selection.embeddings is None for p in session.comparison.pruned
    )
    encoder, h1 = counting(qwen.audio_encoder)
    llm, h2 = counting(qwen.language_model)
    try:
        for method in METHODS:
            for keep in (0.1, 1.0):
                pruned = session.select(Setting(method, keep))
                assert pruned.run is None and pruned.selection.k == keep_count(c.tokens.n, keep)
                session.track(pruned)
            token_figure(session.view(pruned), 0, session.samples(), RATE)
        again = session.select(settings_[0])
        methods_figure(c)
    finally:
        h1.remove()
        h2.remove()
    assert encoder == [] and llm == []  # no encoder pass, no language model
    assert np.array_equal(again.selection.indices, c.pruned[0].selection.indices)  # what Run selected
    assert session.ran(settings_[1]) == 1 and session.ran(Setting("topk", 0.3)) is None
    assert session.prompt_tokens(session.select(settings_[1])) == c.pruned[1].run.prompt_tokens
    t = session.tokens
    expected = 2 * len(session.pcm) + t.embeddings.nelement() * 4 + 17 * t.n
    assert session.nbytes == expected and len(session.pcm) == 6 * RATE


def long_session(seconds=1800.0, token_duration=0.08, per_window=375, width=64):
    """A session of a 30-minute clip on tiny-voxtral-mini's arithmetic (the longest clip a tiny
    model takes: N = 22,500 tokens of 80 ms, windows of 375), with its encoding made up: encoding
    it for real takes 14 s of CPU here, and the encoder is not what this tests."""
    rng = np.random.default_rng(0)
    n = round(seconds / token_duration)
    samples = (0.1 * rng.standard_normal(round(seconds * RATE))).astype(np.float32)
    tokens = AudioTokens(
        embeddings=torch.from_numpy(rng.standard_normal((n, width)).astype(np.float32)),
        scores=rng.random(n),
        window_starts=np.arange(0, n, per_window),
        token_duration=token_duration,
        window_seconds=per_window * token_duration,
        silent=np.zeros(n, dtype=bool),
    )
    run = Run("", [], n + 20, n, Samples([1.0]), 1.0, float("nan"))
    setting = Setting("segmentwise", 0.25)
    first = select("segmentwise", tokens.scores, 0.25)
    c = Comparison(
        "tiny-voxtral-mini", True, "Describe.", seconds, 0.0, tokens, run, [PrunedRun(setting, first, 0.0, run)]
    )
    from segprune.audio import Audio

    return Session.of(c, Audio(samples))


def test_a_30_minute_clip_reselects_and_plays_with_bounded_memory():
    session = long_session()
    n, samples = session.tokens.n, len(session.pcm)
    assert (n, samples) == (22_500, 1800 * RATE)
    assert session.nbytes < 70e6  # 57.6 MB of int16 audio, 5.8 MB of embeddings, 0.4 MB per-token
    assert words.slow_selection_warning("divprune", n)  # the app does not re-select DivPrune here
    tracemalloc.start()
    try:
        start = time.process_time()
        track = None
        for method in [m for m in METHODS if m != "divprune"]:
            pruned = session.select(Setting(method, 0.1))
            track = None  # the page holds one track at a time
            track = session.track(pruned)
            assert pruned.selection.k == 2250 and len(track) == samples
        seconds_used = time.process_time() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # one int16 track (57.6 MB) at a time, plus the selection's O(N) arrays: no per-sample mask, no copy per method
    assert peak < 1.3 * session.pcm.nbytes, peak / 1e6
    assert seconds_used < 20  # CPU time; measured about 2 s on this 2-core machine
    spans = listen.heard_spans(session.tokens.token_seconds, 0.08, pruned.selection.indices, RATE, samples)
    heard = np.zeros(samples, dtype=bool)
    for a, b in spans:
        heard[a:b] = True
    assert not track[~heard].any() and np.array_equal(track[heard], session.pcm[heard])
    assert heard.sum() == 2250 * 1280  # 2,250 kept tokens of 80 ms


# --------------------------------------------------------------------------- compare-all numbers


def test_coverage_overlap_and_word_error_rate():
    starts = np.arange(250) * 0.04  # 10 s
    assert covered_bins(starts, 0.04, np.arange(250), 10.0) == (10, 10)
    assert covered_bins(starts, 0.04, [0, 1, 24, 26], 10.0) == (2, 10)  # token 24 is centred at 0.98 s
    assert covered_share(starts, 0.04, [249], 10.0) == pytest.approx(0.1)
    assert covered_bins(np.arange(1500) * 0.02, 0.02, [10, 1400], 3.4) == (1, 4)  # padding frame 1400: no second
    assert jaccard([1, 2, 3], [2, 3, 4]) == pytest.approx(0.5) and jaccard([], []) == 1.0
    assert edit_distance("a b c".split(), "a x c d".split()) == 2
    assert word_error_rate("The cat, sat.", "the cat sat") == 0.0
    assert word_error_rate("a b c d", "a c d e f") == pytest.approx(3 / 4)
    assert word_error_rate("", "anything") is None
    assert readable("ok\ufffd\ufffd\x00 \n fine") == "ok··· fine"


def test_the_apps_reselection_on_a_30_minute_clip(monkeypatch):
    """The function behind the page's selection controls, on the 30-minute session: a fast method
    redraws and renders the track; a selection estimated to be slow is not run there, the settings
    note says why."""
    from apphelpers import FakeModel

    from segprune import demo

    reselect = demo.make_selection(FakeModel(random_weights=True))
    session = long_session()
    start = time.process_time()
    figure, (rate, track), status, note, *_, kept_session = reselect("topk", 0.1, 10, False, session)
    print(f"\nre-selection of a 30-minute clip: {time.process_time() - start:.1f} s of CPU (figure, track)")
    assert kept_session is session and note == "" and len(track) == 1800 * RATE and rate == RATE
    assert "K = 2250 of N = 22500" in status and "from the last Run" in status
    assert len(figure.data) > 0
    quick = reselect("divprune", 0.1, 10, False, session)  # 64-wide rows: about 0.1 s by the cost model
    assert quick[3] == "" and "K = 2250 of N = 22500" in quick[2]
    monkeypatch.setattr(words, "SLOW_SELECTION_SECONDS", 0.01)  # now it counts as slow
    slow = reselect("divprune", 0.1, 10, False, session)
    assert slow[3].startswith("⚠️ DivPrune will take about") and "2,250 of N = 22,500 tokens" in slow[3]
    assert "press Run" in slow[3] and slow[0] == {"__type__": "update"}  # nothing redrawn
