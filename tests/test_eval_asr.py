"""The asr evaluation task: normaliser, WER against jiwer's own numbers, a manifest run end to end."""

import json
import shutil
from pathlib import Path

import jiwer
import pytest

from segprune.eval import TASKS
from segprune.eval.asr import TASK, normalize, word_error_rate
from segprune.eval.data import Item, read_manifest

ASSETS = Path(__file__).resolve().parents[1] / "assets"


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("Please turn off the lights, don't wait!", "please turn off the lights do not wait"),
        ("The train leaves every twenty minutes.", "the train leaves every 20 minutes"),
        ("The train leaves every 20 minutes.", "the train leaves every 20 minutes"),
        ("Water boils at one hundred degrees.", "water boils at 100 degrees"),
        ("Mr. Smith  (laughs) arrived [noise]", "mister smith arrived"),
        ("", ""),
    ],
)
def test_normalize(text, want):
    assert normalize(text) == want


def test_wer_is_jiwers_corpus_wer_of_the_normalised_texts():
    refs = ["The cat sat on the mat.", "Twenty dogs barked loudly", "Rain is expected tonight."]
    hyps = ["the cat sat on a mat", "20 dogs barked", "rain is expected to night tonight"]
    got = word_error_rate(refs, hyps)
    # "the" -> "a" (substitution), "loudly" missing (deletion), "to night" inserted (2) over 14 words
    assert got["wer"] == pytest.approx(100 * jiwer.wer([normalize(r) for r in refs], [normalize(h) for h in hyps]))
    assert (got["substitutions"], got["deletions"], got["insertions"]) == (1, 1, 2)
    assert got["wer"] == pytest.approx(100 * 4 / 14)
    assert word_error_rate(refs, refs)["wer"] == 0.0 and word_error_rate(refs, refs)["cer"] == 0.0
    assert word_error_rate(["a b"], [""])["wer"] == 100.0  # an empty transcript deletes every word
    with pytest.raises(ValueError, match="empty after normalisation"):
        word_error_rate(["[noise]"], ["x"])


def test_task_is_registered_and_scores_lower_is_better():
    assert TASKS["asr"] is TASK and TASK.metric == "wer" and TASK.lower_is_better
    items = [Item("a", "a.flac", references=["red green blue black"]), Item("b", "b.flac", references=["white pink"])]
    scores = TASK.score(items, ["red green blue black", "white"])
    assert scores.values["wer"] == pytest.approx(100 / 6) and "lower is better" in scores.notes[0]
    with pytest.raises(ValueError, match="'c' has no reference transcript"):
        TASK.check([Item("c", "c.flac", references=[])])


def test_the_speech_set_manifest_reads_as_asr_items():
    items = read_manifest(ASSETS / "speech" / "manifest.jsonl")
    TASK.check(items)
    assert len(items) == 23 and all(Path(item.audio).is_file() for item in items)
    rows = [json.loads(line) for line in (ASSETS / "speech" / "manifest.jsonl").read_text().splitlines()]
    assert {r["split"] for r in rows} == {"tune", "heldout"}
    assert all(3.0 <= r["seconds"] <= 15.0 for r in rows)
    tune = {r["voice"] for r in rows if r["split"] == "tune"}
    held = {r["voice"] for r in rows if r["split"] == "heldout"}
    assert not tune & held  # the held-out clips use other voices (and other sentences)
    assert not {r["references"][0] for r in rows if r["split"] == "tune"} & {
        r["references"][0] for r in rows if r["split"] == "heldout"
    }


def test_eval_asr_runs_on_a_manifest_with_real_whisper(tiny_en_folder, tmp_path, capsys):
    from segprune.cli import main

    clip = tmp_path / "clip.flac"
    shutil.copy(ASSETS / "speech" / "tune-01.flac", clip)
    reference = "The train to the airport leaves every twenty minutes."
    manifest = tmp_path / "tiny.jsonl"
    manifest.write_text(json.dumps({"id": "t1", "audio": "clip.flac", "references": [reference]}) + "\n")
    out = tmp_path / "run"
    argv = ["eval", "--model", str(tiny_en_folder), "--task", "asr", "--manifest", str(manifest)]
    argv += ["--methods", "topk", "--keep", "0.5", "--out", str(out), "--repeats", "1", "--no-progress"]
    argv += ["--max-new-tokens", "24"]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    full, topk = results["rows"]
    assert results["metric"] == "wer" and full["setting"] == "full" and topk["setting"] == "topk@0.5"
    assert full["metrics"]["wer"] == 0.0  # measured: "The train to the airport leaves every 20 minutes."
    assert topk["metrics"]["wer"] <= 25.0
    assert "Speech recognition (WER %, lower is better)" in (out / "table.md").read_text()
    capsys.readouterr()
