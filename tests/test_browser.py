"""The app in a real browser (Debian's chromium driven by Playwright), served in-process on the
tiny model: upload and run Segmentwise Top-K, record through Chromium's fake microphone, and
recover from a file that is not audio. The page must make no request off localhost.

These tests FAIL when chromium is missing: `.ci/run` installs it (apt-get install chromium).
Screenshots go to pytest's tmp_path only.
"""

import re
from pathlib import Path
from urllib.parse import urlparse

import pytest
from apphelpers import served
from playwright.sync_api import sync_playwright

from segprune.methods import keep_count

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


@pytest.fixture(scope="module")
def url(tiny_models):
    with served(tiny_models["tiny-qwen2-audio"], "the test asked for the tiny model") as address:
        yield address


@pytest.fixture(scope="module")
def playwright():
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install -y chromium (see .ci/run)"
    with sync_playwright() as p:
        yield p


@pytest.fixture
def open_page(playwright, url):
    """open_page(*extra_flags, permissions=[]) -> a page on the app; afterwards, checks that every
    request the page made went to the app's own host."""
    browsers, requests = [], []

    def open_(*extra, permissions=()):
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS + list(extra))
        browsers.append(browser)
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, permissions=list(permissions))
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


def run_and_wait(page):
    page.locator("#run").click()
    page.wait_for_function(
        "document.querySelectorAll('#plot .scatterlayer .point').length > 0"
        " && /Pruned prefill:/.test(document.querySelector('#summary').innerText)"
        " && !document.querySelector('#summary .progress-text, #summary .eta-bar')"
    )


def readout(page) -> dict:
    summary = page.locator("#summary").inner_text()
    k, n = (int(x) for x in re.search(r"K = (\d+) of N = (\d+)", summary).groups())
    points = page.locator("#plot .scatterlayer .point")
    fills = points.evaluate_all("ps => ps.map(p => getComputedStyle(p).fill)")
    plot = page.locator("#plot .js-plotly-plot").evaluate(
        "gd => ({shapes: (gd.layout.shapes || []).map(s => s.name),"
        " domShapes: gd.querySelectorAll('.shapelayer path').length})"
    )
    prefills = [
        float(m)
        for box in ("#full-stats", "#pruned-stats")
        for m in re.findall(r"prefill ([\d.]+) ms", page.locator(box).inner_text())
    ]
    return dict(n=n, k=k, points=len(fills), kept=fills.count(KEPT_FILL), prefills=prefills, **plot)


def test_upload_segmentwise_run(open_page, wav_factory, tmp_path):
    page = open_page()
    banner = page.locator("#banner")
    assert "random weights" in banner.inner_text() and "meaningless" in banner.inner_text()
    assert "the test asked for the tiny model" in banner.inner_text()
    assert banner.bounding_box()["y"] < 100  # at the top of the page

    page.locator("#audio input[type=file]").set_input_files(wav_factory(10.0, seed=5))
    page.get_by_label("Top-K", exact=True).check()
    page.get_by_label("Segmentwise Top-K").check()
    set_number(page, "keep", 0.3)
    set_number(page, "segments", 7)
    set_number(page, "max-new-tokens", 8)
    run_and_wait(page)
    page.screenshot(path=tmp_path / "segmentwise.png", full_page=True)

    got = readout(page)
    assert (got["n"], got["k"]) == (250, 75)
    assert got["points"] == 250 and got["kept"] == 75
    assert got["shapes"].count("segment boundary") == 6 and got["domShapes"] == 6
    assert len(got["prefills"]) == 2 and all(ms > 0 for ms in got["prefills"])
    assert page.locator("#full-text textarea").input_value().strip()
    assert page.locator("#pruned-text textarea").input_value().strip()
    assert "Segmentwise Top-K (S = 7)" in page.locator("#summary").inner_text()


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
    assert got["points"] == got["n"] and got["kept"] == got["k"] == keep_count(got["n"], 0.25)
    assert len(got["prefills"]) == 2


def test_non_audio_file_then_a_good_run(open_page, wav_factory, tmp_path):
    page = open_page()
    notes = tmp_path / "notes.wav"
    notes.write_text("this is not audio\n" * 50)
    page.locator("#audio input[type=file]").set_input_files(notes)
    page.locator("#run").click()
    error = page.get_by_text("could not be read as audio")
    error.first.wait_for()
    assert "Traceback" not in page.content()

    page.locator("#audio button[aria-label=Clear]").click()
    page.locator("#audio input[type=file]").set_input_files(wav_factory(4.0, seed=6))
    run_and_wait(page)
    got = readout(page)
    assert got["n"] == 100 and got["points"] == 100 and got["kept"] == 25
