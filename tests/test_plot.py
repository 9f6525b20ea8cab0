"""segprune.plot: one marker per token at its centre time, kept vs dropped (merged tokens drawn apart),
segment and window boundaries where the selection and the clip put them, the waveform coloured where
it was kept, the padding a model receives past the clip, decimation of what is drawn at 45,000 tokens,
and a title and key that fit a 390 px phone screen in a real browser."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from conftest import scene

import segprune
from segprune.comparison import PrunedRun, Setting, prune_tokens
from segprune.plot import (
    AUDIO_END,
    COLUMNS,
    DRAW_ALL,
    KEPT_ALL,
    PADDING,
    SCORE_LINE,
    SEGMENT_BOUNDARY,
    SILENT_STRETCH,
    WAVE_DROPPED,
    WAVE_KEPT,
    WINDOW_BOUNDARY,
    envelope,
    token_centres,
    token_figure,
)


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
    assert not [x for x in fig.layout.shapes if x.name in (PADDING, AUDIO_END)]  # every token covers audio
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
    bands = sorted((s.x0, s.x1) for s in shapes(fig, SILENT_STRETCH))
    assert len(bands) == 2
    assert bands[0][0] == pytest.approx(2.0, abs=0.05) and bands[0][1] == pytest.approx(5.0, abs=0.05)
    assert bands[1][0] == pytest.approx(7.0, abs=0.05) and bands[1][1] == pytest.approx(8.0, abs=0.05)
    m = markers(fig)
    flagged = np.concatenate([np.asarray(m[g].customdata)[:, 4] for g in ("kept", "dropped")])
    assert int(flagged.sum()) == int(c.tokens.silent.sum())
    assert not np.asarray(m["kept"].customdata)[:, 4].any()  # dropped first: none of them kept
    assert "silent (dropped first)" in fig.layout.title.text


# --- merged tokens


def test_merged_tokens_are_drawn_apart_and_keyed(comparison):
    c = with_setting(comparison, Setting("visionzip", 0.25))
    sel = c.pruned[0].selection
    assert sel.merged.any() and not sel.merged.all()
    fig = token_figure(c)
    kept = markers(fig)["kept"]
    custom = np.asarray(kept.customdata)
    assert custom[:, 0].astype(int).tolist() == sel.indices.tolist()  # every kept row, merged ones too
    assert custom[:, 5].astype(bool).tolist() == sel.merged.tolist()
    symbols = np.asarray(kept.marker.symbol)
    assert set(symbols[sel.merged]) == {"diamond"} and set(symbols[~sel.merged]) == {"circle"}
    assert f"merged ({int(sel.merged.sum())})" in fig.layout.title.text
    assert "merged" in "".join(kept.text[i] for i in np.flatnonzero(sel.merged))
    plain = token_figure(comparison)  # a method that only drops: no diamonds, no key line
    assert "merged" not in plain.layout.title.text and plain.data[-1].marker.symbol is None


# --- padding the model receives past the clip


@pytest.mark.parametrize("key", ["tiny-whisper", "tiny-voxtral-mini"])
def test_the_whole_window_is_drawn_with_its_padding_marked(tiny_models, key):
    lm = tiny_models[key]
    audio = segprune.Audio(scene(6.0, seed=2))
    c = segprune.compare(lm, audio, "Describe.", [Setting("segmentwise", 0.25)], max_new_tokens=1, repeats=1)
    t = c.tokens
    assert t.audio_end < t.n  # Whisper: 1500 frames for 6 s of speech; Voxtral: a whole 30 s chunk
    fig = token_figure(c, 0, audio.samples)
    end = t.token_seconds[-1] + t.token_duration
    assert fig.layout.xaxis.range == pytest.approx((0, 30.0)) and end == pytest.approx(30.0)
    m = markers(fig)
    assert len(m["kept"].x) + len(m["dropped"].x) == t.n  # every frame, the padding's too
    assert max(m["kept"].x.max(), m["dropped"].x.max()) == pytest.approx(30.0 - t.token_duration / 2)
    [band] = shapes(fig, PADDING)
    [line] = shapes(fig, AUDIO_END)
    assert (band.x0, band.x1) == pytest.approx((6.0, 30.0)) and line.x0 == pytest.approx(6.0)
    assert any("padding (no audio)" in a.text for a in fig.layout.annotations)
    assert "padding" in fig.layout.title.text
    custom = np.concatenate([np.asarray(m[g].customdata) for g in ("kept", "dropped")])
    padding = custom[custom[:, 6] == 1, 0].astype(int)
    assert sorted(padding.tolist()) == list(range(t.audio_end, t.n))
    # silent stretches are shaded within the audio only: the padding has its own band
    assert all(s.x1 <= 6.0 + 1e-9 for s in shapes(fig, SILENT_STRETCH))


# --- 45,000 tokens: decimate what is drawn, never what is selected


def long_comparison(n: int, method: str, keep: float, **options):
    """A Comparison of n tokens (25 per second in 30 s windows, random scores and embeddings) with one
    pruned variant: what the figure sees of a 30-minute clip, without running a model."""
    from segprune.comparison import Comparison, Run
    from segprune.models.types import AudioTokens
    from segprune.timing import Samples

    rng = np.random.default_rng(0)
    tokens = AudioTokens(torch.randn(n, 8), rng.gamma(2.0, 0.5, n), np.arange(0, n, 750), 0.04, 30.0)
    tokens.silent = np.zeros(n, dtype=bool)
    for start in rng.integers(0, n - 100, n // 400):
        tokens.silent[start : start + rng.integers(3, 60)] = True
    run = Run("", [0], n + 20, n, Samples([1.0, 1.0, 1.0]), 1.0, float("nan"))
    setting = Setting(method, keep, **options)
    selection, _, ms = prune_tokens(tokens, setting)
    return Comparison("tiny", True, "Describe.", n * 0.04, 0.0, tokens, run, [PrunedRun(setting, selection, ms, run)])


def test_envelope_keeps_the_lowest_and_highest_of_each_column():
    rng = np.random.default_rng(1)
    column = np.sort(rng.integers(0, 50, 2000))
    values = rng.standard_normal(2000)
    which = np.flatnonzero(rng.random(2000) < 0.6)
    got = envelope(column, values, which)
    assert np.all(np.diff(got) > 0) and set(got) <= set(which)
    for col in np.unique(column[which]):
        mine = which[column[which] == col]
        drawn = got[column[got] == col]
        assert len(drawn) == min(2, len(mine))
        assert values[mine].min() == values[drawn].min() and values[mine].max() == values[drawn].max()
    assert envelope(column, values, which[:0]).size == 0


@pytest.mark.parametrize(("keep", "kept_drawn_all"), [(0.05, True), (0.25, False)])
def test_45000_tokens_are_decimated_when_drawn_not_when_selected(keep, kept_drawn_all):
    c = long_comparison(45_000, "segmentwise", keep)
    sel = c.pruned[0].selection
    k, n = sel.k, c.tokens.n
    assert k == round(keep * n)  # the selection itself is whole
    samples = np.random.default_rng(2).standard_normal(45_000 * 640).astype(np.float32) * 0.1
    fig = token_figure(c, 0, samples)
    m = markers(fig)
    assert len(m["kept"].x) + len(m["dropped"].x) <= DRAW_ALL
    assert len(m["dropped"].x) <= 2 * COLUMNS and len(json.dumps(fig.to_plotly_json(), default=str)) > 0
    # every drawn marker is a real token, at its own place, with its own hover data and fate
    centres, scores = token_centres(c), c.tokens.scores
    kept = np.zeros(n, dtype=bool)
    kept[sel.indices] = True
    for group, fate in (("kept", True), ("dropped", False)):
        custom = np.asarray(m[group].customdata)
        index = custom[:, 0].astype(int)
        np.testing.assert_allclose(m[group].x, centres[index])
        np.testing.assert_allclose(m[group].y, scores[index])
        assert np.all(kept[index] == fate) and np.all(custom[:, 3] == fate)
    kept_index = np.asarray(m["kept"].customdata)[:, 0].astype(int)
    if kept_drawn_all:
        assert k <= KEPT_ALL and kept_index.tolist() == sel.indices.tolist()
        assert f"all {k:,} kept" in fig.layout.title.text
    else:
        assert k > KEPT_ALL and len(kept_index) <= 2 * COLUMNS
        assert f"{len(kept_index):,} of {k:,} kept" in fig.layout.title.text
    assert f"{len(m['dropped'].x):,} of {n - k:,} dropped" in fig.layout.title.text
    # each column's highest and lowest score stay on the score line: no peak disappears
    line = next(t for t in fig.data if t.name == SCORE_LINE)
    assert len(line.x) <= 2 * COLUMNS and max(line.y) == scores.max() and min(line.y) == scores.min()
    # what the selection put on the figure is all there: segment lines, window lines, no window labels
    bounds = sel.segment_bounds
    assert [s.x0 for s in shapes(fig, SEGMENT_BOUNDARY)] == pytest.approx(c.tokens.token_seconds[bounds[1:-1]])
    assert len(shapes(fig, WINDOW_BOUNDARY)) == 59 and not fig.layout.annotations
    assert len(shapes(fig, SILENT_STRETCH)) <= COLUMNS


def test_45000_token_figure_is_small_and_quick_to_build():
    """At 45,000 tokens (30 minutes) the JSON that gr.Plot sends stays under 1 MB (drawing every token it
    was 5.2 MB), and building it costs less than 4 times the CPU time of a 5,000-token figure that draws
    every token (drawing every token it was 30 to 40 times)."""
    import time

    cpu, size = [], 0
    for n in (DRAW_ALL, 45_000):
        c = long_comparison(n, "visionzip", 0.25)  # per-point marker styles: the costliest kept trace
        samples = np.random.default_rng(2).standard_normal(n * 640).astype(np.float32) * 0.1
        token_figure(c, 0, samples)  # warm plotly's validators
        start = time.process_time()
        size = len(token_figure(c, 0, samples).to_json())
        cpu.append(time.process_time() - start)
    assert size < 1_000_000, size
    assert cpu[1] < 4 * cpu[0], cpu


# --- a phone screen and a desktop, in a real browser


def test_title_key_and_labels_fit_a_phone_and_a_desktop(tiny_models, comparison, clip, tmp_path):
    """Every title, key and label text lies inside the figure at 390 px and at 1440 px wide, and the
    title block ends above the plot area; chromium renders plotly.js from the plotly package (no
    network). Figures: segmentwise with silence dropped first, VisionZip's merged tokens, Whisper's
    padded window, 45,000 tokens."""
    from playwright.sync_api import sync_playwright
    from plotly.offline import get_plotlyjs

    lm = tiny_models["tiny-whisper"]
    speech = segprune.load_audio("assets/speech.flac")
    whisper = segprune.compare(lm, speech, "Transcribe.", [Setting("segmentwise", 0.25)], max_new_tokens=1, repeats=1)
    figures = {
        "silent": token_figure(with_setting(comparison, Setting("adaptive-segmentwise", 0.25, drop_silent=True))),
        "merged": token_figure(with_setting(comparison, Setting("visionzip", 0.25)), 0, clip.samples),
        "whisper": token_figure(whisper, 0, speech.samples),
        "long": token_figure(long_comparison(45_000, "segmentwise", 0.25)),
    }
    draw = """async ([fig, width]) => {
        const gd = document.getElementById('fig');
        gd.style.width = width + 'px';
        await Plotly.newPlot(gd, fig.data, fig.layout, {responsive: false});
        const svg = gd.querySelector('.main-svg').getBoundingClientRect();
        const plot = gd.querySelector('.bglayer rect, .gridlayer').getBoundingClientRect();
        const texts = [...gd.querySelectorAll('.gtitle, .annotation-text, .infolayer text')];
        return {width: svg.width, plotTop: plot.top - svg.top, boxes: texts.map(t => {
            const r = t.getBoundingClientRect();
            return {text: t.textContent.slice(0, 40), title: t.classList.contains('gtitle'),
                    left: r.left - svg.left, right: r.right - svg.left, top: r.top - svg.top, bottom: r.bottom - svg.top};
        })};
    }"""
    page_html = tmp_path / "figure.html"
    plotly_js = tmp_path / "plotly.min.js"
    plotly_js.write_text(get_plotlyjs())
    page_html.write_text(
        '<html><body style="margin:0"><script src="plotly.min.js"></script><div id="fig"></div></body></html>'
    )
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.goto(page_html.as_uri())
            page.wait_for_function("typeof Plotly !== 'undefined'")
            for name, fig in figures.items():
                for width in (390, 1440):  # a phone (the figure gets the page's width) and a desktop
                    got = page.evaluate(draw, [json.loads(fig.to_json()), width])
                    assert got["width"] == width and got["boxes"]
                    for box in got["boxes"]:
                        where = (name, width, box["text"])
                        assert box["left"] >= 0 and box["right"] <= width and box["top"] >= 0, (where, box)
                        if box["title"]:
                            assert box["bottom"] <= got["plotTop"], (where, box, got["plotTop"])
        finally:
            browser.close()
