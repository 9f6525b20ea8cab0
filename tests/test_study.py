"""The "which method wins where" study script, on a tiny model over a generated manifest."""

import json

from segprune.eval.study import main as study
from tests.test_eval import write_manifest


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
