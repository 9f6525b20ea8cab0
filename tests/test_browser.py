"""The app in a real browser (Debian's chromium driven by Playwright), served in-process on the
tiny model: upload and run Segmentwise Top-K and read the verdict-led headline; record through
Chromium's fake microphone; recover from a file that is not audio with nothing stale left; listen to
what the pruned model hears; re-select instantly from the cached encoding; compare all methods; and
the phone layout (390 px): results before the settings, no clipped labels, a table that scrolls
sideways instead of wrapping a word per line. The page must make no request off localhost. Every
wait is on a condition, never a fixed time.

These tests FAIL when chromium is missing: `.ci/run` installs it (apt-get install chromium).
Screenshots go to pytest's tmp_path only (under /tmp, never into git).
"""

import io
import re
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
import soundfile
from apphelpers import plotly_array, served
from playwright.sync_api import sync_playwright

from segprune import listen
from segprune.methods import METHODS, keep_count

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:gradio.queueing")

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
KEPT_FILL = "rgb(228, 87, 46)"  # segprune.plot.KEPT_COLOR
TIMEOUT_MS = 120_000  # a loaded 2-core CI machine
DESKTOP, PHONE = {"width": 1440, "height": 900}, {"width": 390, "height": 844}
DONE = (
    "document.querySelectorAll('#plot .scatterlayer .point').length > 0"
    " && /To the first token/.test(document.querySelector('#summary').innerText)"
    " && !document.querySelector('#summary .progress-text, #summary .eta-bar')"
)


@pytest.fixture(scope="module")
def lm(tiny_models):
    return tiny_models["tiny-qwen2-audio"]


@pytest.fixture(scope="module")
def url(lm):
    with served(lm, "the test asked for the tiny model") as address:
        yield address


@pytest.fixture(scope="module")
def playwright():
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install -y chromium (see .ci/run)"
    with sync_playwright() as p:
        yield p


@pytest.fixture
def open_page(playwright, url):
    """open_page(*extra_flags, permissions=[], viewport=DESKTOP) -> a page on the app; afterwards,
    checks that every request the page made went to the app's own host."""
    browsers, requests = [], []

    def open_(*extra, permissions=(), viewport=DESKTOP):
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS + list(extra))
        browsers.append(browser)
        context = browser.new_context(viewport=viewport, permissions=list(permissions))
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.on("request", lambda r: requests.append(r.url))
        page.goto(url)
        page.wait_for_selector("#run")
        return page

    yield open_
    for browser in browsers:
        browser.close()
    hosts = {urlparse(r).hostname for r in requests if urlparse(r).scheme in ("http", "https", "ws", "wss")}
    assert requests and hosts <= {"127.0.0.1", "localhost"}, f"requests off localhost: {sorted(hosts)}"


def set_number(page, elem_id, value):
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def upload(page, path):
    page.locator("#audio input[type=file]").set_input_files(path)
    page.wait_for_selector("#audio audio[src], #audio a[download][href*='/gradio_api/file=']", state="attached")


def run_and_wait(page, done=DONE):
    page.locator("#run").click()
    page.wait_for_function(done)


def readout(page) -> dict:
    summary = page.locator("#summary").inner_text()
    k, n = (int(x) for x in re.search(r"K = (\d+) of N = (\d+)", summary).groups())
    points = page.locator("#plot .scatterlayer .point")
    fills = points.evaluate_all("ps => ps.map(p => getComputedStyle(p).fill)")
    plot = page.locator("#plot .js-plotly-plot").evaluate(
        "gd => ({shapes: (gd.layout.shapes || []).map(s => s.name),"
        " domShapes: gd.querySelectorAll('.shapelayer path').length,"
        " kept: gd.data.filter(t => t.legendgroup === 'kept').map(t => t.customdata)[0]})"
    )
    custom = plotly_array(plot.pop("kept"))  # plotly's {dtype, bdata, shape} as the page holds it
    plot["kept"] = sorted(int(i) for i in custom.reshape(-1, 5)[:, 0])
    prefills = [
        float(m)
        for box in ("#full-stats", "#pruned-stats")
        for m in re.findall(r"prefill ([\d.]+) ms", page.locator(box).inner_text())
    ]
    return dict(n=n, k=k, points=len(fills), kept_points=fills.count(KEPT_FILL), prefills=prefills, **plot)


def test_upload_segmentwise_run_and_the_headline_agrees_with_the_stats(open_page, wav_factory, tmp_path):
    page = open_page()
    banner = page.locator("#banner")
    assert "random weights" in banner.inner_text() and "meaningless" in banner.inner_text()
    assert "the test asked for the tiny model" in banner.inner_text()
    assert banner.bounding_box()["y"] < 100  # at the top of the page
    assert clipped_labels(page) == []
    # an example sets its clip, its prompt and the matching preset
    page.get_by_text("scene · Question answering").click()
    page.wait_for_function("/in what order/.test(document.querySelector('#prompt textarea').value)")
    assert page.get_by_label("Question answering").is_checked()
    page.wait_for_selector("#audio a[download][href*='scene']", state="attached")
    page.locator("#audio button[aria-label=Clear]").click()

    upload(page, wav_factory(10.0, seed=5))
    page.get_by_label("Top-K", exact=True).check()
    page.get_by_label("Segmentwise Top-K").check()
    set_number(page, "keep", 0.3)
    set_number(page, "segments", 7)
    set_number(page, "max-new-tokens", 8)
    run_and_wait(page)
    page.screenshot(path=tmp_path / "segmentwise.png", full_page=True)

    got = readout(page)
    assert (got["n"], got["k"]) == (250, 75)
    assert got["points"] == 250 and got["kept_points"] == 75
    assert got["shapes"].count("segment boundary") == 6 and got["domShapes"] == 6
    assert len(got["prefills"]) == 2 and all(ms > 0 for ms in got["prefills"])
    summary = page.locator("#summary").inner_text()
    assert "Segmentwise Top-K (S = 7)" in summary
    # random weights: the exact reduction leads, then the verdict with the direction full → pruned,
    # and its numbers are the two models' own prefill times
    assert summary.startswith("Prompt ") and "the language model prefills 75 of 250 audio tokens" in summary
    timing = re.search(
        r"LLM prefill (no pruning|within noise|[\d.]+× faster|[\d.]+× slower).*?: ([\d.]+) ms → ([\d.]+) ms \(full → pruned\)",
        summary,
    )
    assert timing, summary
    assert [float(timing.group(2)), float(timing.group(3))] == got["prefills"]
    assert "To the first token" in summary
    full_text = page.locator("#full-text textarea").input_value()
    assert re.match(r"\(random weights\) [1-8] tokens?: ", full_text) and "\ufffd" not in full_text


def test_microphone_run(open_page, wav_factory):
    voice = wav_factory(3.0, seed=7)
    page = open_page(
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={voice}",
        permissions=["microphone"],
    )
    page.get_by_role("button", name="Record audio").click()
    page.locator("#audio button.record-button").click()
    # record until the component's own clock reads 2 s
    page.wait_for_function("/^0:0[2-9]$/.test(document.querySelector('#audio time.duration')?.textContent)")
    # Stopping uploads the recording; Run before the upload has answered would send no audio.
    with page.expect_response(lambda r: r.url.endswith("/gradio_api/upload") and r.ok):
        page.locator("#audio button.stop-button").click()
    page.wait_for_selector("#audio audio[src]", state="attached")
    # the component holds the uploaded file as its value once its download link points at the server's copy
    page.wait_for_selector("#audio a[download][href*='/gradio_api/file=']", state="attached")
    run_and_wait(page)
    got = readout(page)
    assert 25 <= got["n"] <= 100  # about 2.5 s of recording at 25 tokens per second
    assert got["points"] == got["n"] and got["kept_points"] == got["k"] == keep_count(got["n"], 0.25)
    assert len(got["prefills"]) == 2


def test_a_bad_file_after_a_run_leaves_nothing_stale(open_page, wav_factory, tmp_path):
    page = open_page()
    upload(page, wav_factory(4.0, seed=6))
    run_and_wait(page)
    notes = tmp_path / "notes.wav"
    notes.write_text("this is not audio\n" * 50)
    page.locator("#audio button[aria-label=Clear]").click()
    page.locator("#audio input[type=file]").set_input_files(notes)
    page.locator("#run").click()
    page.wait_for_function("/could not be read as audio/.test(document.querySelector('#summary').innerText)")
    page.screenshot(path=tmp_path / "error.png", full_page=True)
    summary = page.locator("#summary").inner_text()
    assert "Nothing from an earlier run is shown" in summary and "To the first token" not in summary
    assert page.locator("#answers").is_hidden()  # no answer, plot or track of the previous clip
    assert page.locator("#plot .scatterlayer .point").count() == 0
    assert page.get_by_text("Error", exact=True).count() == 0  # one sentence, not a badge on every output
    assert "Traceback" not in page.content()

    page.locator("#audio button[aria-label=Clear]").click()
    upload(page, wav_factory(4.0, seed=6))
    run_and_wait(page)
    got = readout(page)
    assert got["n"] == 100 and got["points"] == 100 and got["kept_points"] == 25


def served_file(page, selector) -> bytes:
    href = page.locator(selector).get_attribute("href")
    response = page.request.get(href)
    assert response.ok
    return response.body()


def test_listen_to_what_the_pruned_model_hears(open_page, wav_factory):
    wav = wav_factory(10.0, seed=8)
    page = open_page()
    upload(page, wav)
    set_number(page, "max-new-tokens", 2)
    run_and_wait(page)
    page.wait_for_function("document.querySelector('#listen time#duration')?.textContent === '0:10'")
    track, rate = soundfile.read(io.BytesIO(served_file(page, "#listen a[download]")), dtype="int16")
    clip = listen.to_pcm16(soundfile.read(wav, dtype="float32")[0])
    kept = readout(page)["kept"]
    heard = np.zeros(len(clip), dtype=bool)
    for a, b in listen.heard_spans(np.arange(250) * 0.04, 0.04, kept, rate, len(clip)):
        heard[a:b] = True
    assert len(track) == len(clip) == 160_000 and heard.sum() == len(kept) * 640
    assert not track[~heard].any() and np.array_equal(track[heard], clip[heard])


def counted(module):
    calls = []
    return calls, module.register_forward_hook(lambda *_: calls.append(1))


def test_instant_reselection_redraws_without_the_models(open_page, lm, wav_factory, tmp_path):
    page = open_page()
    upload(page, wav_factory(8.0, seed=9))
    set_number(page, "max-new-tokens", 2)
    run_and_wait(page)
    headline = page.locator("#summary").inner_text()
    first_track = page.locator("#listen a[download]").get_attribute("href")
    encoder, h1 = counted(lm.audio_encoder)
    llm, h2 = counted(lm.language_model)
    try:
        set_number(page, "keep", 0.5)
        page.wait_for_function("/at keep 0.5: K = 100 of N = 200/.test(document.querySelector('#status').innerText)")
        page.wait_for_function(f"document.querySelector('#listen a[download]')?.href !== '{first_track}'")
        page.wait_for_function("document.querySelectorAll('#plot .scatterlayer .point').length === 200")
        got = readout(page)
        page.get_by_label("Uniform").check()
        page.wait_for_function("/Uniform at keep 0.5/.test(document.querySelector('#status').innerText)")
        set_number(page, "keep", 1.5)
        page.wait_for_function(
            "/keep ratio must be a number in \\(0, 1\\]/.test(document.querySelector('#check').innerText)"
        )
    finally:
        h1.remove()
        h2.remove()
    page.screenshot(path=tmp_path / "reselected.png", full_page=True)
    assert encoder == [] and llm == []  # no encoder pass, no language-model run
    assert got["kept_points"] == 100 and len(got["kept"]) == 100
    status = page.locator("#status").inner_text()
    assert "Answers, timings and headline: from the last Run" in status and "press Run" in status
    assert page.locator("#summary").inner_text() == headline  # the headline still speaks of the Run


def clipped_labels(page) -> list[str]:
    """Labels and choice names that do not fit their box (cut off or ellipsised)."""
    return page.locator("label span, label, .label-wrap span, [data-testid=block-info]").evaluate_all(
        "els => els.filter(e => e.offsetParent && e.scrollWidth > e.clientWidth + 1).map(e => e.innerText)"
    )


def no_word_broken(page, selector) -> list[str]:
    """Texts under `selector` shown on more lines than they have words (a word broken across
    lines), or wider than their cell (cut off)."""
    return page.locator(selector).evaluate_all(
        """cells => cells.filter(c => c.offsetParent && c.innerText.trim()).filter(c => {
            const style = getComputedStyle(c);
            const line = parseFloat(style.lineHeight) || 1.3 * parseFloat(style.fontSize);
            const lines = Math.round(c.getBoundingClientRect().height / line);
            const cell = c.closest('[role=columnheader], .body-cell') || c.parentElement;
            return lines > c.innerText.trim().split(/\\s+/).length || c.scrollWidth > cell.clientWidth + 1;
        }).map(c => c.innerText)"""
    )


def test_compare_all_on_a_phone(open_page, wav_factory, tmp_path):
    """Compare-all at 390 px: results come before the settings, the table scrolls sideways and no
    header or cell breaks a word across lines, the page itself never scrolls sideways, and no
    label is cut off."""
    page = open_page(viewport=PHONE)
    upload(page, wav_factory(6.0, seed=10))
    page.locator("#compare-all input").check()
    set_number(page, "max-new-tokens", 2)
    run_and_wait(page, DONE + f" && document.querySelectorAll('#table [role=row]').length > {len(METHODS)}")
    page.screenshot(path=tmp_path / "phone.png", full_page=True)
    top = {e: page.locator(e).bounding_box()["y"] for e in ("#run", "#summary", "#plot", "#method", "#keep")}
    assert top["#run"] < top["#summary"] < top["#plot"] < top["#method"] < top["#keep"]  # results first
    assert top["#summary"] - top["#run"] < 400  # right below Run, not after the settings
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    viewport = page.locator("#table .virtual-table-viewport")
    assert viewport.evaluate("v => v.scrollWidth > v.clientWidth + 100")  # the table scrolls sideways
    assert no_word_broken(page, "#table [role=columnheader] .header-content, #table .body-cell span") == []
    strips = page.locator("#methods-plot .js-plotly-plot").evaluate("gd => gd.layout.yaxis.categoryarray.length")
    assert strips == len(METHODS)
    assert clipped_labels(page) == []
