"""`segprune run`: the human report, the JSON record and clean errors."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from segprune.cli import main
from segprune.models import registry
from tests.conftest import SECONDS, TINY_KEYS, expected_tokens, expected_windows


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, wav, key, *extra):
    """`segprune run WAV --model KEY --json` on the CPU with one timing repeat: (exit code, record, stderr)."""
    code, out, err = run_cli(capsys, "run", wav, "--model", key, "--json", "--repeats", "1", "--device", "cpu", *extra)
    return code, json.loads(out) if code == 0 else None, err


@pytest.mark.parametrize("key", TINY_KEYS)
def test_run_json_fields_are_consistent(capsys, wav_factory, key):
    seconds = SECONDS[key]
    family = registry()[key].family.load()
    wav = wav_factory(seconds)
    code, record, err = run_json(capsys, wav, key, "--keep", "0.25", "--max-new-tokens", "4")
    assert code == 0
    for field in [
        "model",
        "method",
        "keep_ratio",
        "options",
        "n_audio_tokens",
        "n_kept",
        "kept_indices",
        "scores",
        "token_seconds",
        "full",
        "pruned",
        "encoder_ms",
        "scoring_ms",
        "truncated_seconds",
    ]:
        assert field in record, field
    for side in ("full", "pruned"):
        assert {"text", "token_ids", "prefill_ms", "prompt_tokens"} <= set(record[side])
        assert record[side]["prefill_ms"] > 0
    n = record["n_audio_tokens"]
    assert n == expected_tokens(family, seconds)
    assert record["method"] == "segmentwise" and record["options"] == {"segments": 10} and record["keep_ratio"] == 0.25
    assert len(record["kept_indices"]) == record["n_kept"] == math.floor(0.25 * n + 0.5)
    assert record["kept_indices"] == sorted(set(record["kept_indices"]))
    assert len(record["scores"]) == len(record["token_seconds"]) == n
    assert len(record["window_starts"]) == expected_windows(family, seconds)
    assert record["full"]["prompt_tokens"] - record["pruned"]["prompt_tokens"] == n - record["n_kept"]
    assert record["random_weights"] is True and "random weights" in err  # said prominently


def test_run_report_shows_both_answers_side_by_side(capsys, wav_factory):
    code, out, _ = run_cli(
        capsys,
        "run",
        wav_factory(5.0),
        "--model",
        "tiny-qwen2-audio",
        "--method",
        "topk",
        "--keep",
        "0.5",
        "--max-new-tokens",
        "3",
        "--repeats",
        "1",
        "--device",
        "cpu",
    )
    assert code == 0
    assert "TINY MODEL" in out and "FULL MODEL" in out and "PRUNED MODEL" in out
    assert "K = 63 of 125" in out and "Top-K" in out
    assert out.count("prefill") >= 2


def test_truncation_is_reported(capsys, wav_factory):
    code, record, err = run_json(capsys, wav_factory(32.0), "tiny-qwen2-audio", "--max-new-tokens", "2")
    assert code == 0
    assert record["truncated_seconds"] == pytest.approx(2.0)
    assert "dropped" in err


def make_bad_files(folder):
    (folder / "empty.wav").write_bytes(b"")
    (folder / "noise.wav").write_bytes(np.random.default_rng(0).bytes(4000))
    (folder / "text.wav").write_text("this is not audio\n" * 50)
    soundfile.write(folder / "ok.wav", np.zeros(1600, dtype=np.float32), 16000)
    return folder


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["run", "{f}/missing.wav"], "No such audio file"),
        (["run", "{f}/empty.wav"], "empty"),
        (["run", "{f}/noise.wav"], "could not be read as audio"),
        (["run", "{f}/text.wav"], "could not be read as audio"),
        (["run", "{f}/ok.wav", "--keep", "0"], "keep ratio"),
        (["run", "{f}/ok.wav", "--keep", "1.5"], "keep ratio"),
        (["run", "{f}/ok.wav", "--keep", "abc"], "--keep"),
        (["run", "{f}/ok.wav", "--segments", "0"], "at least 1"),
        (["run", "{f}/ok.wav", "--method", "nope"], "invalid choice"),
        (["run", "{f}/ok.wav", "--model", "no-such-model"], "tiny-qwen2-audio"),
    ],
)
def test_errors_are_one_line_without_traceback(capsys, tmp_path, argv, needle):
    make_bad_files(tmp_path)
    argv = [a.format(f=tmp_path) for a in argv]
    code = main(argv + ["--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("segprune"), err
    assert needle in err and "Traceback" not in err


def test_console_script_exit_code_and_single_line(tmp_path):
    make_bad_files(tmp_path)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "segprune.cli", "run", str(tmp_path / "noise.wav"), "--model", "tiny-qwen2-audio"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr


QUIET_RUNS = """
import sys
from segprune import cli
from segprune.models.tiny import tiny_model
from segprune.models.whisper import WhisperLM

like_a_checkpoint = tiny_model(WhisperLM)  # the real checkpoints' generation configs carry forced_decoder_ids
config = like_a_checkpoint.model.generation_config
config.forced_decoder_ids = [[1, None], [2, config.task_to_id["transcribe"]]]
load = cli.load_from_args
cli.load_from_args = lambda args: like_a_checkpoint
codes = [cli.main(["run", sys.argv[1], "--model", "tiny-whisper", "--max-new-tokens", "3", "--repeats", "1"])]
cli.load_from_args = load
for model, prompt in [("tiny-whisper", "Hi."), ("tiny-qwen2-audio", "<|im_start|>system\\nHi.<|AUDIO|>")]:
    argv = ["run", sys.argv[1], "--model", model, f"--prompt={prompt}", "--max-new-tokens", "3", "--repeats", "1"]
    codes.append(cli.main(argv + ["--json"] * (model != "tiny-whisper")))
sys.exit(max(codes))
"""


def test_a_successful_run_prints_only_segprune_s_own_lines(wav_factory):
    """Whisper's own `generate` makes transformers log about how it calls the generic one (and about
    the checkpoints' forced_decoder_ids): expected and harmless, so not shown; stderr holds only
    segprune's lines (the random-weights warning here)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", QUIET_RUNS, wav_factory(2.0)], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines and all(line.startswith("segprune: ") for line in lines), proc.stderr
