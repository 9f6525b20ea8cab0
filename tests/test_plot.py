"""segprune.plot: one marker per token at its centre time, kept vs dropped, segment and window
boundaries where the selection and the clip put them, and the waveform coloured where it was kept."""

import dataclasses
import json

import numpy as np
import pytest
from conftest import scene

import segprune
from segprune.comparison import PrunedRun, Setting, prune_tokens
from segprune.plot import SEGMENT_BOUNDARY, WAVE_DROPPED, WAVE_KEPT, WINDOW_BOUNDARY, token_figure


@pytest.fixture(scope="module")
def clip():
    return segprune.Audio(scene(10.0, seed=3))


@pytest.fixture(scope="module")
def comparison(tiny_models, clip):
    lm = tiny_models["tiny-qwen2-audio"]
    return segprune.compare(
        lm, clip, "Describe the sound.", [Setting("segmentwise", 0.25)], max_new_tokens=2, repeats=1
    )


def with_setting(c, setting):
    """`c` with its pruned variant replaced by `setting` on the same tokens (no LLM run needed)."""
    selection, _, ms = prune_tokens(c.tokens, setting)
    return dataclasses.replace(c, pruned=[PrunedRun(setting, selection, ms, c.pruned[0].run)])


def markers(fig):
    return {t.legendgroup: t for t in fig.data if t.mode == "markers"}


def shapes(fig, name):
    return [s for s in fig.layout.shapes if s.name == name]


def test_one_marker_per_token_at_its_centre(comparison, clip):
    c = comparison
    fig = token_figure(c, 0, clip.samples)
    m = markers(fig)
    sel = c.pruned[0].selection
    assert len(m["kept"].x) == sel.k == 63 and len(m["dropped"].x) == c.tokens.n - sel.k == 187
    centres = c.tokens.token_seconds + c.tokens.token_duration / 2
    np.testing.assert_allclose(m["kept"].x, centres[sel.indices])
    np.testing.assert_allclose(m["kept"].y, c.tokens.scores[sel.indices])
    kept_custom = np.asarray(m["kept"].customdata)
    assert kept_custom[:, 0].astype(int).tolist() == sel.indices.tolist()
    assert set(kept_custom[:, 3]) == {1.0} and set(np.asarray(m["dropped"].customdata)[:, 3]) == {0.0}
    np.testing.assert_allclose(kept_custom[:, 2] - kept_custom[:, 1], c.tokens.token_duration)
    assert "kept" in m["kept"].hovertemplate and "dropped" in m["dropped"].hovertemplate
    assert "score" in m["kept"].hovertemplate and "token" in m["kept"].hovertemplate
    assert m["kept"].marker.size > m["dropped"].marker.size and m["dropped"].marker.opacity < 1
    assert fig.layout.xaxis.range == (0, c.audio_seconds)
    json.loads(fig.to_json())  # what gr.Plot sends


def test_segment_boundaries_are_the_selections(comparison, clip):
    fig = token_figure(comparison, 0, clip.samples)
    bounds = comparison.pruned[0].selection.segment_bounds
    lines = shapes(fig, SEGMENT_BOUNDARY)
    assert len(lines) == 10 - 1
    starts = comparison.tokens.token_seconds
    assert [s.x0 for s in lines] == pytest.approx(starts[bounds[1:-1]].tolist())
    assert all(s.yref == "paper" and (s.y0, s.y1) == (0, 1) for s in lines)  # across waveform and scores
    assert not shapes(fig, WINDOW_BOUNDARY)
    assert "S = 10" in fig.layout.title.text and "63" in fig.layout.title.text


def test_segments_capped_by_k_and_none_for_other_methods(comparison):
    few = with_setting(comparison, Setting("segmentwise", 0.02, segments=10))  # K = 5 < S: S_eff = 5
    assert few.pruned[0].selection.k == 5
    assert len(shapes(token_figure(few), SEGMENT_BOUNDARY)) == 4
    for method in ["topk", "visionzip", "random", "bottomk", "uniform"]:
        fig = token_figure(with_setting(comparison, Setting(method, 0.25)))
        assert not shapes(fig, SEGMENT_BOUNDARY), method
        assert len(markers(fig)["kept"].x) == 63


def test_waveform_is_coloured_where_tokens_were_kept(comparison, clip):
    c = comparison
    fig = token_figure(c, 0, clip.samples)
    waves = {t.name: t for t in fig.data if t.name in (WAVE_KEPT, WAVE_DROPPED)}
    kept_x = np.asarray(waves[WAVE_KEPT].x, dtype=float)
    kept_x = kept_x[np.isfinite(kept_x)]
    assert kept_x.size > 0 and np.isfinite(np.asarray(waves[WAVE_DROPPED].x, dtype=float)).any()
    token = np.floor(kept_x / c.tokens.token_duration).astype(int)  # one window: token i starts at 0.04 i
    assert set(np.unique(token)) <= set(c.pruned[0].selection.indices.tolist())
    assert fig.layout.xaxis.matches or fig.layout.xaxis2.matches  # shared time axis
    no_wave = token_figure(c)  # without samples: the score row alone
    assert not [t for t in no_wave.data if t.name in (WAVE_KEPT, WAVE_DROPPED)]


def test_window_boundaries_beyond_30_seconds(tiny_models):
    lm = tiny_models["tiny-audio-flamingo-3"]
    audio = segprune.Audio(scene(45.0, seed=1))
    c = segprune.compare(lm, audio, "Describe.", [Setting("topk", 0.1)], max_new_tokens=1, repeats=1)
    fig = token_figure(c, 0, audio.samples)
    windows = shapes(fig, WINDOW_BOUNDARY)
    assert len(windows) == 1 and windows[0].x0 == pytest.approx(30.0)
    assert any("window 2" in a.text for a in fig.layout.annotations)
    m = markers(fig)
    assert len(m["kept"].x) + len(m["dropped"].x) == c.tokens.n == 1125
    assert max(m["dropped"].x.max(), m["kept"].x.max()) == pytest.approx(45.0 - 0.02)


def test_silent_stretches_are_shaded_and_flagged(tiny_models):
    lm = tiny_models["tiny-qwen2-audio"]
    samples = scene(10.0, seed=4)
    samples[16000 * 2 : 16000 * 5] = 0.0  # 3 s of digital silence
    samples[16000 * 7 : 16000 * 8] = 0.0  # and 1 s more
    audio = segprune.Audio(samples)
    c = segprune.compare(lm, audio, "Describe.", [Setting("topk", 0.25, drop_silent=True)], max_new_tokens=1, repeats=1)
    fig = token_figure(c, 0, samples)
    from segprune.plot import SILENT_STRETCH

    bands = sorted((s.x0, s.x1) for s in shapes(fig, SILENT_STRETCH))
    assert len(bands) == 2
    assert bands[0][0] == pytest.approx(2.0, abs=0.05) and bands[0][1] == pytest.approx(5.0, abs=0.05)
    assert bands[1][0] == pytest.approx(7.0, abs=0.05) and bands[1][1] == pytest.approx(8.0, abs=0.05)
    m = markers(fig)
    flagged = np.concatenate([np.asarray(m[g].customdata)[:, 4] for g in ("kept", "dropped")])
    assert int(flagged.sum()) == int(c.tokens.silent.sum())
    assert not np.asarray(m["kept"].customdata)[:, 4].any()  # dropped first: none of them kept
    assert "silent (dropped first)" in fig.layout.title.text
