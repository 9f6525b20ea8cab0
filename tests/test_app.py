"""The Gradio app through gradio_client, served in-process on the tiny model: every method gives
both answers, the plot and the same K and kept tokens as `segprune run --json`; errors are plain
sentences; the default model falls back to the tiny one, with a reason, and fast."""

import json
import re
import time
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import soundfile
from apphelpers import figure_dict, import_app, kept_indices, marker_traces, plotly_array, served, shapes_named
from conftest import scene
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from segprune import words
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
def client(tiny_models):
    with served(tiny_models["tiny-qwen2-audio"], "the test asked for it") as url:
        yield Client(url, verbose=False)


def run_app(client, wav, method, keep=KEEP, segments=SEGMENTS, compare_all=False, prompt=PROMPT, *quiet):
    args = (handle_file(wav), method, keep, segments, prompt, MAX_NEW, compare_all, *quiet)
    out = client.predict(*args, api_name="/run")
    names = ["summary", "full_text", "full_stats", "pruned_text", "pruned_stats", "plot", "details", "table"]
    return dict(zip(names, out, strict=True))


def run_cli(capsys, wav, method, keep=KEEP, segments=SEGMENTS, *extra):
    argv = ["run", wav, "--model", "tiny-qwen2-audio", "--device", "cpu", "--method", method, "--keep", str(keep)]
    argv += list(extra) + (["--segments", str(segments)] if METHODS[method].takes("segments") else [])
    argv += ["--prompt", PROMPT, "--max-new-tokens", str(MAX_NEW), "--repeats", "1"]
    assert cli_main(argv + ["--json"]) == 0
    return json.loads(capsys.readouterr().out)


def prefill_ms(markdown: str) -> float:
    return float(re.search(r"prefill \*\*([\d.]+) ms\*\*", markdown).group(1))


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_matches_the_cli(client, capsys, wav_factory, method):
    wav = wav_factory(6.0, seed=2)
    out = run_app(client, wav, method)
    record = run_cli(capsys, wav, method)
    n, k = record["n_audio_tokens"], record["n_kept"]
    assert (n, k) == (150, keep_count(150, KEEP))

    # both answers, as readable text, the same greedy text as the CLI's
    assert out["full_text"] == (record["full"]["text"] or "(empty answer)")
    assert out["pruned_text"] == (record["pruned"]["text"] or "(empty answer)")
    assert f"**{record['full']['prompt_tokens']}** prompt tokens ({n} audio)" in out["full_stats"]
    assert f"**{record['pruned']['prompt_tokens']}** prompt tokens ({k} audio)" in out["pruned_stats"]
    assert prefill_ms(out["full_stats"]) > 0 and prefill_ms(out["pruned_stats"]) > 0
    assert f"K = {k}** of **N = {n}**" in out["summary"] and "Pruned prefill: " in out["summary"]
    assert "encoder" in out["details"] and "scoring hook" in out["details"]

    # the plot: every token once, the CLI's kept tokens marked kept
    fig = figure_dict(out["plot"])
    traces = marker_traces(fig)
    assert sum(len(plotly_array(t["x"])) for t in traces.values()) == n
    assert kept_indices(fig) == record["kept_indices"]
    s_eff = min(SEGMENTS, k) if METHODS[method].takes("segments") else 1
    assert len(shapes_named(fig, SEGMENT_BOUNDARY)) == s_eff - 1


def test_compare_all_methods_in_one_table(client, wav_factory):
    out = run_app(client, wav_factory(6.0, seed=2), "topk", compare_all=True)
    table = out["table"]
    headers, rows = table["headers"], table["data"]
    assert headers == ["method", "K kept", "prompt tokens", "prefill ms", "speedup", "answer"]
    assert len(rows) == 1 + len(METHODS)
    assert rows[0][0].startswith("Full model") and rows[0][1] == 150
    assert rows[1][0] == "Top-K"  # the chosen method first, as in the side-by-side view
    labels = {row[0].split(" (S")[0] for row in rows[1:]}
    assert labels == {m.label for m in METHODS.values()}
    k = keep_count(150, KEEP)
    assert all(row[1] == k for row in rows[1:])
    assert all(float(row[3]) > 0 for row in rows) and rows[0][4] == "—"
    assert all(row[4].startswith(("within noise", "no pruning")) or "× " in row[4] for row in rows[1:])
    assert rows[0][2] - rows[1][2] == 150 - k  # prompt tokens: the dropped audio tokens, no more
    assert rows[1][5] == out["pruned_text"].replace("(empty answer)", "")
    # the plot follows the chosen method
    assert not shapes_named(figure_dict(out["plot"]), SEGMENT_BOUNDARY)


def test_errors_are_plain_sentences_and_truncation_is_reported(client, tmp_path, wav_factory):
    with pytest.raises(AppError, match="No audio"):
        client.predict(None, "topk", KEEP, SEGMENTS, PROMPT, MAX_NEW, False, api_name="/run")
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
    assert "Pruned prefill: " in run_app(client, wav_factory(2.0), "uniform")["summary"]


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
    demo, config = launched["demo"], launched["demo"].config
    banner = next(c for c in config["components"] if c["props"].get("elem_id") == "banner")
    assert "random weights" in banner["props"]["value"] and "--offline" in banner["props"]["value"]
    assert launched["server_port"] == 7999 and launched["css"] == app.CSS
    assert demo._queue.max_size and demo._queue.default_concurrency_limit == 1


def test_bundled_examples_load():
    app = import_app()
    clips = app.examples()
    assert len(clips) == 3
    for path, prompt in clips:
        audio = load_audio(path)
        assert 5.0 <= audio.seconds <= 10.0 and audio.source_rate == 16000 and prompt.endswith((".", "?"))
        assert np.abs(audio.samples).max() > 0.1  # not silence
    assert sum(Path(path).stat().st_size for path, _ in clips) < 500_000


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
    assert "silent tokens (shaded), dropped first: 0 kept" in out["details"]
    plain = run_app(client, wav, "topk", 0.25)  # the option is off by default
    assert "treated like the others" in plain["details"]
