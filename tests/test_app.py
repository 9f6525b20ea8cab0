"""The Gradio app through gradio_client, served in-process on the tiny model: every method gives
both answers, the plot, the listening track and the same K and kept tokens as `segprune run --json`;
compare-all compares; changing the selection re-selects from the cached encoding (no encoder pass,
no language model); errors are plain sentences and leave nothing stale on the page; the default
model falls back to the tiny one, with a reason, and fast; Whisper's page has no prompt."""

import json
import re
import time
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import soundfile
from apphelpers import (
    RUN_OUTPUTS,
    SELECT_OUTPUTS,
    figure_dict,
    import_app,
    kept_indices,
    marker_traces,
    named,
    plotly_array,
    served,
    shapes_named,
)
from conftest import scene
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from segprune import demo, listen, words
from segprune.answers import readable
from segprune.audio import load_audio
from segprune.cli import main as cli_main
from segprune.methods import METHODS, keep_count
from segprune.models import ModelLoadError
from segprune.models.choice import choose_model
from segprune.plot import SEGMENT_BOUNDARY

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:gradio.queueing")  # gradio's pandas use

KEEP, SEGMENTS, MAX_NEW = 0.3, 7, 4
PROMPT = "Describe the audio in detail."


@pytest.fixture(scope="module")
def lm(tiny_models):
    return tiny_models["tiny-qwen2-audio"]


@pytest.fixture(scope="module")
def client(lm):
    with served(lm, "the test asked for it") as url:
        yield Client(url, verbose=False)


def run_app(client, wav, method, keep=KEEP, segments=SEGMENTS, compare_all=False, prompt=PROMPT, quiet=False):
    args = (handle_file(wav), method, keep, segments, prompt, MAX_NEW, compare_all, quiet)
    out = client.predict(*args, api_name="/run")
    assert len(out) == len(RUN_OUTPUTS)
    return named(out)


def select_app(client, method, keep, segments=SEGMENTS, quiet=False):
    return named(client.predict(method, keep, segments, quiet, api_name="/select"), SELECT_OUTPUTS)


def run_cli(capsys, wav, method, keep=KEEP, segments=SEGMENTS, *extra):
    argv = ["run", wav, "--model", "tiny-qwen2-audio", "--device", "cpu", "--method", method, "--keep", str(keep)]
    argv += list(extra) + (["--segments", str(segments)] if METHODS[method].takes("segments") else [])
    argv += ["--prompt", PROMPT, "--max-new-tokens", str(MAX_NEW), "--repeats", "1"]
    assert cli_main(argv + ["--json"]) == 0
    return json.loads(capsys.readouterr().out)


def prefill_ms(markdown: str) -> float:
    return float(re.search(r"prefill \*\*([\d.]+) ms\*\*", markdown).group(1))


def check_track(path, record, seconds):
    """The downloaded listening track: the clip's length, silent exactly where the JSON's kept
    tokens do not cover it, and the clip itself (to 16-bit PCM) where they do."""
    track, rate = soundfile.read(path, dtype="int16")
    clip = listen.to_pcm16(load_audio(record["audio_file"]).samples)
    assert rate == 16000 and len(track) == len(clip) == round(seconds * rate)
    starts = np.asarray(record["token_seconds"])
    heard = np.zeros(len(track), dtype=bool)
    for a, b in listen.heard_spans(starts, record["token_duration"], record["kept_indices"], rate, len(track)):
        heard[a:b] = True
    assert heard.any() and not heard.all()
    assert not track[~heard].any() and np.array_equal(track[heard], clip[heard])


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_matches_the_cli(client, capsys, wav_factory, method):
    wav = wav_factory(6.0, seed=2)
    out = run_app(client, wav, method)
    record = run_cli(capsys, wav, method)
    n, k = record["n_audio_tokens"], record["n_kept"]
    assert (n, k) == (150, keep_count(150, KEEP))

    # both answers, labelled as random-weight output, the same greedy text as the CLI's
    for side in ("full", "pruned"):
        ids = record[side]["token_ids"]
        assert (
            out[f"{side}_text"]
            == f"(random weights) {len(ids)} tokens: {readable(record[side]['text'], ascii_only=True)}"
        )
        assert "\ufffd" not in out[f"{side}_text"]
    assert f"**{record['full']['prompt_tokens']}** prompt tokens ({n} audio tokens)" in out["full_stats"]
    assert f"**{record['pruned']['prompt_tokens']}** prompt tokens ({k} audio tokens)" in out["pruned_stats"]
    assert prefill_ms(out["full_stats"]) > 0 and prefill_ms(out["pruned_stats"]) > 0
    head = out["summary"].split("\n")
    assert head[0] == f"## Prompt {record['full']['prompt_tokens']} → {record['pruned']['prompt_tokens']} tokens: " + (
        f"the language model prefills {k} of {n} audio tokens"
    )
    assert f"K = {k}** of **N = {n}**" in out["summary"] and "To the first token" in out["summary"]
    assert "encoder" in out["details"] and "scoring hook" in out["details"]
    assert out["status"].startswith("**Up to date:**") and not out["table"]["data"] and out["methods_plot"] is None

    # the plot: every token once, the CLI's kept tokens marked kept
    fig = figure_dict(out["plot"])
    traces = marker_traces(fig)
    assert sum(len(plotly_array(t["x"])) for t in traces.values()) == n
    assert kept_indices(fig) == record["kept_indices"]
    s_eff = min(SEGMENTS, k) if METHODS[method].takes("segments") else 1
    assert len(shapes_named(fig, SEGMENT_BOUNDARY)) == s_eff - 1
    check_track(out["listen"], {**record, "audio_file": wav}, 6.0)


def test_compare_all_compares(client, wav_factory):
    out = run_app(client, wav_factory(6.0, seed=2), "topk", compare_all=True)
    table = out["table"]
    headers, rows = table["headers"], table["data"]
    assert headers == words.TABLE_HEADERS and len(rows) == 1 + len(METHODS)
    assert rows[0][0].startswith("Full model") and rows[0][1] == 150 and rows[0][2] == "6 of 6 s (100 %)"
    assert rows[1][0] == "Top-K"  # the chosen method first, as in the side-by-side view
    by_label = {row[0].split(" (S")[0]: row for row in rows[1:]}
    assert set(by_label) == {m.label for m in METHODS.values()}
    k = keep_count(150, KEEP)
    assert all(row[1] == k for row in rows[1:])
    assert by_label["Segmentwise Top-K"][3] == "1.00"  # its overlap with itself
    assert all(0.0 <= float(row[3]) <= 1.0 for row in rows[1:])
    assert all(re.fullmatch(r"\d+ of 6 s \(\d+ %\)", row[2]) for row in rows[1:])
    assert all(re.fullmatch(r"[\d.]+ ms · .+", row[5]) for row in rows[1:]) and rows[0][5].endswith(" ms")
    verdicts = ("no pruning", "within noise", "faster", "slower")
    assert all(any(v in row[5] for v in verdicts) for row in rows[1:])
    assert all(row[6].startswith("(random weights)") for row in rows)
    assert all(re.fullmatch(r"\d+ % \(random weights\)|n/a \(no full answer\)", row[7]) for row in rows[1:])
    assert rows[1][6] == out["pruned_text"]
    # where each method's tokens fall: one strip per method, in the table's order
    strips = figure_dict(out["methods_plot"])
    labels = strips["layout"]["yaxis"]["categoryarray"]
    assert labels == [row[0] for row in rows[1:]]
    assert not shapes_named(figure_dict(out["plot"]), SEGMENT_BOUNDARY)  # the plot follows the chosen method


def counted(module):
    calls = []
    return calls, module.register_forward_hook(lambda *_: calls.append(1))


def test_changing_the_selection_reselects_without_the_models(client, lm, wav_factory):
    """After a Run, a new keep ratio, S or method redraws the plot, the counts and the listening
    track from the cached encoding: the encoder and the language model are not called."""
    wav = wav_factory(8.0, seed=3)
    first = run_app(client, wav, "segmentwise", keep=0.25, compare_all=True)
    n = 200
    encoder, h1 = counted(lm.audio_encoder)
    llm, h2 = counted(lm.language_model)
    try:
        start = time.perf_counter()
        moved = select_app(client, "segmentwise", 0.5)
        answered = time.perf_counter() - start
        other = select_app(client, "uniform", 0.1, 3)
        ran = select_app(client, "topk", 0.25)  # compare-all ran Top-K at 0.25: its answers exist
        bad = select_app(client, "segmentwise", 1.5)
        assert encoder == [] and llm == []
        run_app(client, wav, "uniform")  # the hooks do count: a Run encodes once and runs the language model
        assert len(encoder) == 1 and len(llm) > 2
    finally:
        h1.remove()
        h2.remove()
    print(f"\nre-selection answered in {answered * 1000:.0f} ms (wall, served, loaded machine)")
    assert kept_indices(figure_dict(moved["plot"])) != kept_indices(figure_dict(first["plot"]))
    assert len(kept_indices(figure_dict(moved["plot"]))) == keep_count(n, 0.5)
    assert f"K = {keep_count(n, 0.5)} of N = {n}" in moved["status"] and "from the last Run" in moved["status"]
    assert "Segmentwise Top-K (S = 7), keep 0.25" in moved["status"]  # what the answers still come from
    track, _ = soundfile.read(moved["listen"], dtype="int16")
    assert len(track) == 8 * 16000
    assert len(kept_indices(figure_dict(other["plot"]))) == keep_count(n, 0.1)
    assert "Uniform at keep 0.1" in other["status"]
    table = {row[0].split(" (S")[0]: row for row in first["table"]["data"][1:]}
    assert ran["status"].startswith("**Up to date:**") and ran["pruned_text"] == table["Top-K"][6]
    assert "with Top-K at keep 0.25" in ran["summary"]
    assert bad["check"].startswith("⚠️ The keep ratio must be a number in (0, 1]")


def test_errors_are_plain_sentences_and_truncation_is_reported(client, tmp_path, wav_factory):
    with pytest.raises(AppError, match="No audio"):
        client.predict(None, "topk", KEEP, SEGMENTS, PROMPT, MAX_NEW, False, False, api_name="/run")
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio\n" * 50)
    with pytest.raises(AppError, match="could not be read as audio") as err:
        run_app(client, str(text), "topk")
    assert "Traceback" not in str(err.value)
    short = tmp_path / "short.wav"
    soundfile.write(short, np.zeros(80, dtype=np.float32), 16000)  # 5 ms: no audio token
    with pytest.raises(AppError, match="too short"):
        run_app(client, str(short), "topk")
    with pytest.raises(AppError, match="prompt is empty"):
        run_app(client, wav_factory(2.0), "topk", prompt="  ")
    long = run_app(client, wav_factory(32.0), "segmentwise", keep=0.1)
    assert "Truncated" in long["details"] and "2.0 s were dropped" in long["details"]
    assert "N = 750" in long["summary"]
    # and the app still answers afterwards
    assert "To the first token" in run_app(client, wav_factory(2.0), "uniform")["summary"]


def test_the_page_after_a_refusal_shows_nothing_stale(lm, wav_factory, tmp_path):
    """The Run button's function: a refusal is one sentence in the headline; every other output is
    cleared, the results column hidden and the session dropped."""
    run = demo.make_request(lm, repeats=1)
    page_run = demo.on_page(run)
    good = page_run(wav_factory(3.0), "topk", 0.3, 5, PROMPT, 2, False, False, None)
    assert good[-2] is not None and good[-1]["visible"] is True
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF" + bytes(100))
    bad = page_run(str(junk), "topk", 0.3, 5, PROMPT, 2, False, False, good[-2])
    summary, *rest, session, column = bad
    assert summary.startswith("## ⚠️ ") and "could not be read as audio" in summary
    assert "Nothing from an earlier run is shown" in summary
    assert all(value in ("", None) for value in rest) and session is None and column["visible"] is False


def test_default_model_falls_back_fast_with_a_reason(monkeypatch):
    start = time.perf_counter()
    choice = choose_model("qwen2-audio", explicit=False, device="cpu", hub_timeout=2.0)
    lm, reason = choice.lm, choice.reason
    # a hang shows in wall time only: measured 0.05 s, where from_pretrained's download retries take 30 s
    assert time.perf_counter() - start < 15
    assert lm.name == "tiny-qwen2-audio" and lm.random_weights
    assert reason == (
        "Qwen/Qwen2-Audio-7B-Instruct is not served because offline mode is on (HF_HUB_OFFLINE) and it is not "
        "in the local cache."
    )
    text, classes = words.banner(lm, reason, choice.details)
    assert "meaningless" in text and "real" in text and reason in text and classes == ["warn"]
    assert "<details>" in text  # the underlying error, behind a disclosure
    explicit_text, _ = words.banner(lm, None)
    assert "chosen explicitly" in explicit_text
    offline = choose_model("qwen2-audio", explicit=False, device="cpu", offline=True)
    assert "--offline" in offline.reason


def test_the_hugging_face_cache_is_the_sessions_own():
    """conftest.py points HF_HOME at an empty folder of its own, so a checkpoint in the real cache
    cannot turn the fallback tests into loads of the real model."""
    from conftest import HF_HOME
    from huggingface_hub import constants

    assert Path(constants.HF_HUB_CACHE).is_relative_to(HF_HOME) and not any(
        Path(constants.HF_HUB_CACHE).glob("models--*")
    )


def test_explicit_model_never_falls_back(capsys):
    app = import_app()
    with pytest.raises(ModelLoadError, match="tiny-qwen2-audio"):
        choose_model("qwen2-audio", explicit=True, device="cpu", hub_timeout=2.0)
    assert app.main(["--model", "no-such/model", "--hub-timeout", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("app.py: error:") and "Traceback" not in err


def test_main_serves_the_fallback_with_its_banner(monkeypatch):
    app = import_app()
    launched = {}
    monkeypatch.setattr(gr.Blocks, "launch", lambda demo, **kw: launched.update(demo=demo, **kw))
    assert app.main(["--offline", "--port", "7999", "--device", "cpu"]) == 0
    demo_, config = launched["demo"], launched["demo"].config
    banner = next(c for c in config["components"] if c["props"].get("elem_id") == "banner")
    assert "random weights" in banner["props"]["value"] and "--offline" in banner["props"]["value"]
    assert launched["server_port"] == 7999 and launched["css"] == app.CSS
    assert demo_._queue.max_size and demo_._queue.default_concurrency_limit == 1


def test_bundled_examples_load_and_set_their_preset():
    app = import_app()
    clips = app.examples()
    assert len(clips) == 3
    for path, preset, prompt in clips:
        audio = load_audio(path)
        assert 5.0 <= audio.seconds <= 10.0 and audio.source_rate == 16000 and prompt.endswith((".", "?"))
        assert np.abs(audio.samples).max() > 0.1  # not silence
        assert app.PROMPTS[preset] == prompt  # clicking an example selects its prompt preset
    assert sum(Path(path).stat().st_size for path, _, _ in clips) < 500_000


def test_silent_tokens_first_out_matches_the_cli(client, capsys, tmp_path):
    samples = scene(10.0, seed=5)
    samples[16000 * 2 : 16000 * 6] = 0.0  # 4 s of silence
    wav = str(tmp_path / "pause.wav")
    soundfile.write(wav, samples, 16000)
    out = run_app(client, wav, "topk", 0.25, SEGMENTS, False, PROMPT, True)
    record = run_cli(capsys, wav, "topk", 0.25, SEGMENTS, "--drop-silent")
    silent = np.asarray(record["silent"])
    assert silent.sum() >= 95  # the 4 s pause (100 tokens, give or take the edges)
    kept = kept_indices(figure_dict(out["plot"]))
    assert kept == record["kept_indices"] and not silent[kept].any()
    assert "silent audio tokens (shaded), dropped first: 0 kept" in out["details"]
    plain = run_app(client, wav, "topk", 0.25)  # the option is off by default
    assert "treated like the others" in plain["details"]


def props(demo_, elem_id) -> dict:
    return next(c for c in demo_.config["components"] if c["props"].get("elem_id") == elem_id)["props"]


def test_whisper_page_has_no_prompt_and_speaks_of_frames(tiny_models, wav_factory):
    whisper = tiny_models["tiny-whisper"]
    app = import_app()
    page = app.build_demo(whisper, repeats=1)
    assert props(page, "prompt")["visible"] is False and props(page, "preset")["visible"] is False
    assert "transcribes" in props(page, "no-prompt")["value"]
    assert "encoder frames" in props(page, "intro")["value"] and "cross-attends" in props(page, "intro")["value"]
    out = named(demo.make_request(whisper, repeats=1)(wav_factory(3.0), "segmentwise", 0.25, 10, "x", 3, False))
    assert "The decoder cross-attends to 375 of 1500 encoder frames: its prefill reads" in out["summary"]
    assert "decoder prefill" in out["summary"] and "LLM" not in out["summary"]
    assert "of them are the window's padding (no audio)" in out["details"]
    track = out["listen"][1]
    assert len(track) == 3 * 16000  # the clip's length; the padding frames have no audio
    llm = app.build_demo(tiny_models["tiny-qwen2-audio"], repeats=1)
    assert props(llm, "prompt")["visible"] is not False and "audio tokens" in props(llm, "intro")["value"]
