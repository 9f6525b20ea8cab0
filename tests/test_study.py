"""The "which method wins where" study script, on a tiny model over a generated manifest."""

import json

import pytest

from segprune.eval import TASKS
from segprune.eval.data import Item
from segprune.eval.report import summarise, table
from segprune.eval.study import main as study
from segprune.eval.study import markdown, winners
from tests.test_eval import write_manifest

ASR_REFERENCE = "the cat sat on the mat today"
ASR_TEXTS = {  # setting -> transcript of the one item: WER 0, 300/7, 0, 100/7 (lower is better)
    "full": ASR_REFERENCE,
    "segmentwise@0.25": "the cat sat on a mat to day",
    "topk@0.25": "the cat sat on the mat today",
    "speech-segmentwise@0.25": "the cat sat on the mat",
}


def asr_results() -> dict:
    """`report.summarise` of the asr task over one item and four settings (the eval's own path)."""
    items = [Item("a", "a.flac", references=[ASR_REFERENCE])]
    records = [
        {
            "item": "a",
            "setting": key,
            "method": key.split("@")[0],
            "keep_ratio": 1.0 if key == "full" else 0.25,
            "options": {},
            "drop_silent": False,
            "text": text,
            "prefill_ms": 1.0,
            "n_kept": 1,
            "n_audio_tokens": 4,
            "new_tokens": 3,
        }
        for key, text in ASR_TEXTS.items()
    ]
    return summarise(TASKS["asr"], items, records, list(ASR_TEXTS))


def test_wer_ranks_lowest_first_and_margins_say_how_much_better():
    results = asr_results()
    assert results["lower_is_better"] is True
    (w,) = winners(results, score_layers=1)
    assert [name for name, _ in w["ranking"]] == ["topk", "speech-segmentwise", "segmentwise"]
    assert w["winner"] == "topk" and w["winner_value"] == 0.0 and w["full"] == 0.0
    assert w["margin_over_runner_up"] == pytest.approx(100 / 7)  # points of WER the winner leads by
    assert w["margin_over_segmentwise"] == pytest.approx(300 / 7)
    assert "| wer (lower is better) |" in markdown({"runs": [{**RUN, "winners": [w]}]})
    assert "| 25 % | Top-K | 0.0 |" in table(results, "m", random_weights=False)  # WER with one decimal


def test_an_old_results_file_without_the_direction_follows_its_task():
    results = asr_results()
    del results["lower_is_better"]
    assert winners(results, 1)[0]["winner"] == "topk"
    results["task"] = "clothoaqa"  # higher is better: the worst transcript "wins"
    assert winners(results, 1)[0]["winner"] == "segmentwise"


RUN = {"model": "m", "task": "asr", "n_items": 1, "random_weights": False, "folder": "f"}


def test_study_ranks_every_method_per_task_ratio_and_score_source(tmp_path, capsys):
    manifest = write_manifest(tmp_path, n=2)
    out = tmp_path / "study"
    methods = ["segmentwise", "topk", "adaptive-segmentwise"]
    argv = [
        "--models",
        "tiny-qwen2-audio",
        "--tasks",
        "clothoaqa",
        "clotho",
        "--methods",
        *methods,
        "--keep",
        "0.25",
        "--score-layers",
        "1",
        "2",
        "--manifest",
        f"clothoaqa={manifest}",
        f"clotho={manifest}",
        "--max-new-tokens",
        "2",
        "--device",
        "cpu",
        "--no-progress",
        "--out",
        str(out),
    ]
    assert study(argv) == 0
    result = json.loads((out / "study.json").read_text())
    assert len(result["runs"]) == 4  # 2 tasks x 2 score sources
    for run in result["runs"]:
        (w,) = run["winners"]
        assert w["keep_ratio"] == 0.25 and sorted(name for name, _ in w["ranking"]) == sorted(methods)
        values = [v for _, v in w["ranking"]]
        assert values == sorted(values, reverse=True) and w["winner_value"] == values[0]
        assert w["winner"] == w["ranking"][0][0]
        per_run = json.loads((tmp_path / "study" / run["folder"].split("/")[-1] / "results.json").read_text())
        assert per_run["score_layers"] == w["score_layers"]
    table = (out / "study.md").read_text()
    assert "Random-weight models" in table and table.count("| tiny-qwen2-audio |") == 4
    # rerunning resumes every eval run (finished items are skipped) and gives the same study
    assert study(argv) == 0
    assert json.loads((out / "study.json").read_text()) == result
