"""Thirty minutes of audio: Audio Flamingo Next (MusicFlamingo's classes, 60 windows, N = 45,000) on its
tiny variant, end to end: the processor's features computed a few windows at a time, the encoding
(encoder + scoring), a pruned language-model run, the app's re-selection, listening track and plot.

The clips are synthetic (noise and a tone that comes and goes). The full model's prefill of all
45,000 tokens is left out here (about 17 s of CPU on the tiny model, twice with its warm-up):
`benchmarks/long_audio.py` and the acceptance command `segprune run --model tiny-audio-flamingo-next
--keep 0.1 --json` on a 30-minute WAV measure it (benchmarks/RESULTS.md).
"""

import time
import tracemalloc

import numpy as np
import pytest
import torch

from segprune import demo, listen, silence, words
from segprune.audio import Audio
from segprune.bench.presets import load_preset, parameter_count
from segprune.comparison import Comparison, InProcess, PrunedRun, Run, Setting, encode_clip, prepare, run_variants
from segprune.models import load_model, registry
from segprune.models.decoder_only import DecoderOnlyLM
from segprune.models.musicflamingo import AudioFlamingoNextLM, MusicFlamingoLM
from segprune.plot import COLUMNS, DRAW_ALL, SEGMENT_BOUNDARY, WINDOW_BOUNDARY, token_figure
from segprune.timing import Repeats, Samples

RATE = 16_000
KEY = "tiny-audio-flamingo-next"
PROMPT = "Describe the audio in detail."


def long_clip(minutes: float, seed: int = 0) -> Audio:
    """A synthetic clip: noise at 0.05 plus a 0.3 tone gliding around 220 Hz, on for 6.5 s of every 13 s."""
    n = round(minutes * 60 * RATE)
    rng = np.random.default_rng(seed)
    out = np.empty(n, dtype=np.float32)
    for start in range(0, n, 60 * RATE):
        t = np.arange(start, min(n, start + 60 * RATE)) / RATE
        tone = 0.3 * np.sin(2 * np.pi * (220 + 200 * np.sin(2 * np.pi * t / 97)) * t) * (np.sin(2 * np.pi * t / 13) > 0)
        out[start : start + len(t)] = 0.05 * rng.standard_normal(len(t)) + tone
    return Audio(out)


@pytest.fixture(scope="module")
def af_next():
    return load_model(KEY, device="cpu")


@pytest.fixture(scope="module")
def thirty(af_next):
    """The 30-minute clip, encoded once for real (11 s of CPU alone here; 40 s on busy shared cores)."""
    audio = long_clip(30)
    return audio, encode_clip(af_next, audio, PROMPT, max_new_tokens=2)


# --------------------------------------------------------------------------- the registry entry


def test_the_registry_entry_and_its_full_preset(af_next):
    specs = registry()
    assert specs["audio-flamingo-next"].hub_id == "nvidia/audio-flamingo-next-hf"
    assert specs["audio-flamingo-next-think"].hub_id == "nvidia/audio-flamingo-next-think-hf"
    assert specs["audio-flamingo-next-captioner"].hub_id == "nvidia/audio-flamingo-next-captioner-hf"
    assert specs[KEY].tiny and specs[KEY].family.load() is AudioFlamingoNextLM
    assert isinstance(af_next, AudioFlamingoNextLM) and af_next.max_seconds == 1800.0
    assert af_next.context_length > 45_000 + 200  # 45,000 audio tokens and the text
    assert load_model("tiny-music-flamingo", device="cpu").max_seconds == 1200.0  # its own limit, unchanged
    preset = load_preset("audio-flamingo-next", "full")
    assert preset["hub_id"] == "nvidia/audio-flamingo-next-hf" and "ASSUMPTIONS" in preset["notes"]
    assert preset["text"]["max_position_embeddings"] >= 45_000 + 200
    assert 8.0e9 < parameter_count(AudioFlamingoNextLM, "full")["total"] < 8.6e9  # counted on the meta device


def test_a_saved_folder_loads_the_adapter_it_was_built_as(tmp_path):
    """Both adapters share MusicFlamingo's model type; the config's `segprune_adapter` tells them apart,
    and the saved processor's `max_audio_len` sets the limit."""
    for key, adapter, seconds in ((KEY, AudioFlamingoNextLM, 1800.0), ("tiny-music-flamingo", MusicFlamingoLM, 1200.0)):
        lm = load_model(key, device="cpu")
        folder = tmp_path / key
        lm.model.save_pretrained(folder)
        lm.processor.save_pretrained(folder)
        again = load_model(str(folder), device="cpu")
        assert type(again) is adapter and again.max_seconds == seconds and again.random_weights


# --------------------------------------------------------------------------- features, a few windows at a time


@pytest.mark.parametrize(("key", "seconds"), [(KEY, 150.5), (KEY, 61.0), ("tiny-audio-flamingo-3", 75.5)])
def test_windowed_features_are_the_processors(key, seconds):
    """Pieces of `windows_per_call` windows (the last one partial, or a lone window) give the processor's
    own output exactly: features, masks, ids (the placeholder run N long) and attention mask."""
    lm = load_model(key, device="cpu")
    audio = long_clip(seconds / 60, seed=3)
    prompt = "What is heard? <sound> is text here."  # a control-token string in the prompt stays text
    mine, theirs = lm.inputs(audio, prompt), DecoderOnlyLM.inputs(lm, audio, prompt)
    assert sorted(mine) == sorted(theirs)
    for name in theirs:
        assert torch.equal(mine[name], theirs[name]), name
    assert lm.audio_counts(mine) == [int(seconds / 0.04)]


def test_windowed_features_keep_the_temporaries_flat(af_next):
    """The processor transforms all windows in one batch (about 7.7 MB of numpy temporaries per window);
    in pieces the temporaries are a piece's, whatever the clip's length. Measured with tracemalloc
    (numpy's allocations): 19 MB at 10 minutes in pieces of 2 windows, 154 MB in one batch."""

    def peak(minutes: float) -> int:
        audio = long_clip(minutes)
        tracemalloc.start()
        try:
            af_next.inputs(audio, PROMPT)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    short, long = peak(2.0), peak(6.0)
    assert long < 1.3 * short, (short, long)  # 3 times the clip: the same temporaries


def test_energy_before_is_the_whole_running_sum():
    rng = np.random.default_rng(4)
    samples = rng.standard_normal(10_007).astype(np.float32)
    points = np.concatenate([[0, 10_007, 1000, 1000, 999, 1001, 2000], rng.integers(0, 10_008, 50)])
    whole = np.concatenate([[0.0], np.cumsum(samples.astype(np.float64) ** 2)])
    np.testing.assert_allclose(silence.energy_before(samples, points, block=1000), whole[points], rtol=1e-12)


# --------------------------------------------------------------------------- 30 minutes on the tiny model


def test_a_30_minute_clip_encodes_to_45000_tokens_and_runs_pruned(af_next, thirty):
    _, clip = thirty
    t = clip.tokens
    assert (t.n, t.audio_end, len(t.embeddings)) == (45_000, 45_000, 45_000)
    assert t.window_starts.tolist() == list(range(0, 45_000, 750))  # 60 windows
    assert np.isfinite(t.scores).all() and np.allclose(t.scores.reshape(60, 750).mean(1), 1.0)
    assert t.token_seconds[-1] == pytest.approx(1800 - 0.04)
    assert not t.silent.any()  # noise at 0.05 throughout: nothing is silent
    (variant,) = prepare(af_next, clip, [Setting("segmentwise", 0.1)], full=False)
    (run,) = run_variants([variant], InProcess(af_next), 2, Repeats.fixed(1, warmup=0))
    assert variant.selection.k == 4500 and run.audio_tokens == 4500 and len(run.token_ids) == 2
    assert run.prompt_tokens == af_next.prompt_tokens(clip.inputs) - 40_500
    bounds = variant.selection.segment_bounds
    assert len(bounds) == 11 and np.all(np.diff(variant.selection.indices) > 0)


@pytest.fixture(scope="module")
def session(af_next, thirty):
    """The app's session of the 30-minute Run: the real encoding and a real pruned run at the page's
    Segmentwise, keep 0.1; the full model's Run is its prompt length only (its 45,000-token prefill
    is not run here)."""
    from segprune.session import Session

    audio, clip = thirty
    setting = demo.settings_for(["segmentwise"], 0.1, 10, False)[0]
    (variant,) = prepare(af_next, clip, [setting], full=False)
    (run,) = run_variants([variant], InProcess(af_next), 1, Repeats.fixed(1, warmup=0))
    n = clip.tokens.n
    full = Run("", [], af_next.prompt_tokens(clip.inputs), n, Samples([]), float("nan"), float("nan"))
    c = Comparison(
        af_next.name,
        True,
        PROMPT,
        audio.seconds,
        0.0,
        clip.tokens,
        full,
        [PrunedRun(setting, variant.selection, 0.0, run)],
    )
    return Session.of(c, audio)


def test_a_30_minute_clip_reselects_and_plays_in_the_app(af_next, session):
    t, samples = session.tokens, len(session.pcm)
    assert samples == 1800 * RATE
    assert session.nbytes == 2 * samples + 45_000 * 64 * 4 + 17 * 45_000  # 57.6 MB audio, 11.5 MB embeddings
    reselect = demo.make_selection(af_next)
    start = time.process_time()
    figure, (rate, track), status, note, *_, kept = reselect("topk", 0.25, 10, False, session)
    cpu = time.process_time() - start
    print(f"\nre-selection of the 30-minute clip (N = 45,000): {cpu:.1f} s of CPU (selection, figure, track)")
    assert kept is session and note == "" and rate == RATE and len(track) == samples
    assert "of 11,250 kept" in figure.layout.title.text  # the page's figure is the new selection's
    assert "K = 11250 of N = 45000" in status and "from the last Run" in status
    # the track: the clip over the kept tokens' spans, silence elsewhere (all 11,250 tokens lie in the audio)
    indices = session.select(Setting("topk", 0.25)).selection.indices
    heard = np.zeros(samples, dtype=bool)
    for a, b in listen.heard_spans(t.token_seconds, t.token_duration, indices, RATE, samples):
        heard[a:b] = True
    assert heard.sum() == 11_250 * 640
    assert not track[~heard].any() and np.array_equal(track[heard], session.pcm[heard])
    # back to the Run's own setting: the Run's variant is shown again, with the very tokens it kept
    back = reselect("segmentwise", 0.1, 10, False, session)
    assert session.shown == 0 and back[2] == words.status_of_run(session.comparison, 0)
    ran = session.comparison.pruned[0].selection.indices
    assert np.array_equal(session.select(session.comparison.pruned[0].setting).selection.indices, ran)
    assert listen.heard_seconds(t.token_seconds, t.token_duration, ran, RATE, samples) == pytest.approx(4500 * 0.04)


def test_the_30_minute_figure_is_decimated_small_and_quick(session):
    """What the figure draws is decimated above DRAW_ALL tokens; what was selected is whole. The JSON
    that gr.Plot sends stays under 1 MB; every window line (59) and segment line (9) is drawn."""
    view = session.view(session.comparison.pruned[0])
    token_figure(view, 0, session.samples(), RATE)  # warm plotly's validators
    start = time.process_time()
    figure = token_figure(view, 0, session.samples(), RATE)
    payload = figure.to_json()
    cpu = time.process_time() - start
    print(f"\n30-minute figure (N = 45,000, K = 4,500): {len(payload) / 1e6:.2f} MB of JSON, {cpu:.2f} s of CPU")
    assert len(payload) < 1_000_000
    markers = {trace.legendgroup: trace for trace in figure.data if trace.mode == "markers"}
    drawn = sum(len(trace.x) for trace in markers.values())
    assert drawn <= DRAW_ALL and drawn < 45_000 and all(len(tr.x) <= 2 * COLUMNS for tr in markers.values())
    title = figure.layout.title.text
    assert "of 4,500 kept" in title and "of 40,500 dropped" in title
    names = [shape.name for shape in figure.layout.shapes]
    assert names.count(WINDOW_BOUNDARY) == 59 and names.count(SEGMENT_BOUNDARY) == 9
