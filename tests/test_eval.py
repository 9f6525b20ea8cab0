"""`segprune eval` on tiny models over a manifest the tests build: the table, resuming, data."""

import io
import json
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
import soundfile

from segprune import METHODS, keep_count
from segprune.cli import main
from segprune.comparison import Setting
from segprune.eval import TASKS
from segprune.eval.data import Item, items_from_rows, load_hub, read_manifest
from segprune.eval.metrics import java_status
from segprune.eval.report import summarise, table
from segprune.eval.runner import FULL, check_config, evaluate, setting_key
from segprune.methods import Method, uniform
from segprune.models.base import AudioLM
from segprune.models.decoder_only import DecoderOnlyLM
from tests.conftest import scene

ITEMS = [
    {
        "id": "park",
        "seconds": 4.0,
        "answer": "dog",
        "references": ["A dog barks in a park.", "Birds sing while a dog barks"],
    },
    {
        "id": "rain",
        "seconds": 6.0,
        "answer": "rain",
        "references": ["Rain falls on a tin roof.", "heavy rain and thunder"],
    },
    {"id": "road", "seconds": 3.0, "answer": "car", "references": ["A car passes by on a wet road", "traffic noise"]},
]


def write_manifest(folder, n=3) -> str:
    lines = []
    for i, spec in enumerate(ITEMS[:n]):
        soundfile.write(folder / f"{spec['id']}.wav", scene(spec["seconds"], seed=i), 16000)
        lines.append(
            json.dumps(
                {
                    "id": spec["id"],
                    "audio": f"{spec['id']}.wav",
                    "references": spec["references"],
                    "question": "What makes the main sound?",
                    "choices": ["dog", "rain", "car", "bell"],
                    "answer": spec["answer"],
                }
            )
        )
    path = folder / "items.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


class Calls:
    """Counts calls of an adapter method, optionally raising after `fail_after` calls."""

    def __init__(self, monkeypatch, name, fail_after=None, owner=None):
        owner = owner or (DecoderOnlyLM if name == "generate" else AudioLM)
        self.n, self.fail_after = 0, fail_after
        original = getattr(owner, name)

        def wrapper(lm, *args, **kwargs):
            if self.fail_after is not None and self.n >= self.fail_after:
                raise KeyboardInterrupt  # what Ctrl-C raises mid-run
            self.n += 1
            return original(lm, *args, **kwargs)

        monkeypatch.setattr(owner, name, wrapper)


@dataclass(frozen=True)
class EveryOther(Method):
    """A method added after the eval code (one class and one registry entry)."""

    name: ClassVar[str] = "everyother"
    label: ClassVar[str] = "Every Other"
    summary: ClassVar[str] = "test-only"

    def choose(self, scores, k, embeddings=None, silent=None):
        return uniform(scores, k)


def test_eval_cli_table_has_every_method_and_ratio(tmp_path, capsys, monkeypatch):
    """Default --methods is the whole registry, including a method added after the eval code."""
    monkeypatch.setitem(METHODS, "everyother", EveryOther)
    encodes, generates = Calls(monkeypatch, "encode"), Calls(monkeypatch, "generate")
    manifest = write_manifest(tmp_path, n=2)
    out = tmp_path / "out"
    argv = ["eval", "--model", "tiny-qwen2-audio", "--task", "clotho", "--manifest", manifest, "--keep", "0.5", "0.25"]
    argv += ["--out", str(out), "--max-new-tokens", "3", "--repeats", "1", "--device", "cpu", "--no-progress"]
    assert main(argv) == 0
    captured = capsys.readouterr()

    keys = [FULL] + [f"{m}@{r:g}" for r in (0.5, 0.25) for m in METHODS]
    assert encodes.n == 2  # each clip encoded once for the full model and all 14 settings
    assert generates.n == 2 * len(keys)
    records = [json.loads(line) for line in (out / "generations.jsonl").read_text().splitlines()]
    assert sorted((r["item"], r["setting"]) for r in records) == sorted((i, k) for i in ("park", "rain") for k in keys)
    for r in records:
        assert r["n_kept"] == keep_count(r["n_audio_tokens"], r["keep_ratio"])
        assert r["prefill_ms"] > 0 and r["prompt_tokens"] > r["n_kept"]
    assert {r["n_audio_tokens"] for r in records} == {100, 150}  # 4 s and 6 s at 25 tokens/s

    results = json.loads((out / "results.json").read_text())
    assert [row["setting"] for row in results["rows"]] == keys
    assert results["n_items"] == 2 and results["random_weights"] is True
    for row in results["rows"]:
        assert 0.0 <= row["metrics"]["cider_d"] and row["prefill_ms"] > 0

    text = (out / "table.md").read_text()
    assert text in captured.out
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == len(keys)
    assert rows[0].startswith("| 100 % | Full model |")
    cells = [tuple(c.strip() for c in row.split("|")[1:3]) for row in rows[1:]]
    assert cells == [(f"{p} %", METHODS[m].label) for p in (50, 25) for m in METHODS]  # paper layout
    assert "TINY MODEL" in text and "random weights" in captured.err
    assert ("SPIDEr skipped" in text) == (java_status() is not None)  # said when Java is missing


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("eval")
    return read_manifest(write_manifest(folder))


def test_resume_after_interruption_recomputes_nothing(tiny_models, clips, tmp_path, monkeypatch):
    lm, task = tiny_models["tiny-audio-flamingo-3"], TASKS["mmau"]
    settings = [Setting("segmentwise", 0.5), Setting("topk", 0.25)]
    total = len(clips) * (1 + len(settings))
    out = tmp_path / "run"

    interrupted = Calls(monkeypatch, "generate", fail_after=4)
    with pytest.raises(KeyboardInterrupt):
        evaluate(lm, task, clips, settings, out, "test", max_new_tokens=2, progress=False)
    lines = (out / "generations.jsonl").read_text().splitlines()
    assert len(lines) == 4 == interrupted.n  # every finished run was saved as it finished
    with open(out / "generations.jsonl", "a") as f:
        f.write('{"item": "rain", "setting": "topk@0.25", "te')  # a kill in the middle of a write

    monkeypatch.undo()
    encodes, generates = Calls(monkeypatch, "encode"), Calls(monkeypatch, "generate")
    store = evaluate(lm, task, clips, settings, out, "test", max_new_tokens=2, progress=False)
    assert generates.n == total - 4  # nothing finished is run again
    assert encodes.n == 2  # the clips with runs left: 'rain' (half done) and 'road'
    records = [json.loads(line) for line in (out / "generations.jsonl").read_text().splitlines()]
    assert len(records) == total == len({(r["item"], r["setting"]) for r in records}) == len(store.records)

    monkeypatch.undo()
    again = Calls(monkeypatch, "generate")
    evaluate(lm, task, clips, settings, out, "test", max_new_tokens=2, progress=False)
    assert again.n == 0

    keys = [FULL, *map(setting_key, settings)]
    results = summarise(task, clips, store.records, keys, {"sbert_model": str(tmp_path / "no-such-model")})
    assert results["n_items"] == 3 and not results["incomplete_items"]
    assert set(results["rows"][0]["metrics"]) == {"accuracy"}
    assert "accuracy_sbert" in results["skipped_metrics"]  # no such model: said, not fatal
    assert "no-such-model" in table(results, lm.name, lm.random_weights)


def test_resume_refuses_another_model_or_task(tmp_path):
    config = {"task": "clotho", "model": "a", "source": "s", "max_new_tokens": 8, "settings": [{"method": "topk"}]}
    check_config(tmp_path / "config.json", config)
    check_config(tmp_path / "config.json", {**config, "settings": [{"method": "random"}]})  # settings may grow
    assert len(json.loads((tmp_path / "config.json").read_text())["settings"]) == 2
    for change in ({"model": "b"}, {"task": "mmau"}, {"max_new_tokens": 9}, {"score_layers": 2}):
        with pytest.raises(ValueError, match="another --out folder"):
            check_config(tmp_path / "config.json", {**config, **change})


def test_table_marks_incomplete_items_and_scores_the_rest(clips):
    task = TASKS["clothoaqa"]
    recs = [
        {
            "item": "park",
            "setting": k,
            "method": m,
            "keep_ratio": r,
            "text": t,
            "prefill_ms": p,
            "n_kept": 10,
            "n_audio_tokens": 20,
            "new_tokens": 1,
        }
        for k, m, r, t, p in [(FULL, None, 1.0, "Dog.", 4.0), ("topk@0.5", "topk", 0.5, "cat", 2.0)]
    ]
    recs.append({**recs[0], "item": "rain", "text": "rain"})  # 'rain' lacks topk@0.5: left out everywhere
    results = summarise(task, clips, recs, [FULL, "topk@0.5"])
    assert results["n_items"] == 1 and results["incomplete_items"] == ["rain", "road"]
    full, topk = results["rows"]
    assert full["metrics"]["accuracy"] == 100.0 and topk["metrics"]["accuracy"] == 0.0
    assert topk["relative_change_pct"]["accuracy"] == -100.0 and topk["prefill_speedup"] == 2.0
    text = table(results, "m", False)
    assert "| 50 % | Top-K | 0.0 | -100.0 % | 2.0 | x2.00 |" in text and "2 items are not finished" in text


def test_task_prompts_per_family_and_manifest_override():
    item = Item("x", "x.wav", question="What is heard?", choices=["dog", "cat"], answer="dog")
    assert TASKS["clotho"].prompt(item, "audio-flamingo-3") == "Generate a caption for the input audio."
    assert TASKS["audiocaps"].prompt(item, "qwen2-audio") == "Generate the caption in English:"
    assert (
        TASKS["clothoaqa"].prompt(item, "qwen2-audio")
        == "What is heard?\nAnswer the question using a single word only."
    )
    assert TASKS["mmau"].prompt(item, "audio-flamingo-3") == (
        "Instruction: What is heard? Choose the correct option among the options below: (A) dog (B) cat."
    )
    item.prompt = "Describe it."
    assert all(task.prompt(item, "qwen2-audio") == "Describe it." for task in TASKS.values())


def test_manifest_errors_name_the_line(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    for text, needle in [
        ('{"audio": "a.wav"}\nnot json\n', "line 2 is not valid JSON"),
        ('{"id": 1, "audio": "a.wav"}\n{"id": 1, "audio": "b.wav"}\n', "the id '1' is used twice"),
        ('{"id": 1}\n', "line 1 has no 'audio'"),
    ]:
        bad.write_text(text)
        with pytest.raises(ValueError, match=needle):
            read_manifest(bad)
    bad.write_text('{"audio": "a.wav", "question": "q"}\n')  # no answer, no choices: fails before loading a model
    code = main(["eval", "--task", "mmau", "--manifest", str(bad), "--model", "no/such-model"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "needs a question, choices and an answer" in err


def _wav_bytes(seconds, rate=22050):
    buf = io.BytesIO()
    soundfile.write(buf, scene(seconds, rate), rate, format="WAV")
    return buf.getvalue()


def test_hub_rows_become_items():
    rows = [
        {"audio": {"bytes": _wav_bytes(1.0), "path": "a.wav"}, "youtube_id": "a", "caption": "a dog barks"},
        {"audio": {"bytes": _wav_bytes(1.0), "path": "a.wav"}, "youtube_id": "a", "caption": "barking"},
        {"audio": {"bytes": _wav_bytes(2.0), "path": "b.wav"}, "youtube_id": "b", "caption": "rain"},
        {"audio": {"bytes": _wav_bytes(2.0), "path": "c.wav"}, "youtube_id": "c", "caption": "wind"},
    ]
    items = items_from_rows(rows, limit=2)  # one caption per row (AudioCaps copies): merged per clip
    assert [(i.id, i.references) for i in items] == [("a", ["a dog barks", "barking"]), ("b", ["rain"])]
    assert items[0].load().sample_rate == 16000 and abs(items[1].load().seconds - 2.0) < 1e-3
    numbered = {"audio": {"array": np.zeros(1600), "sampling_rate": 16000}, "caption_2": "two", "caption_1": "one"}
    assert items_from_rows([numbered])[0].references == ["one", "two"]


def test_load_hub_reads_a_local_dataset_folder_without_audio_decoders(tmp_path):
    """The real `datasets` path (streaming, audio read undecoded), on a parquet folder made here."""
    import datasets

    (tmp_path / "data").mkdir()
    rows = [
        {
            "audio": {"bytes": _wav_bytes(1.0), "path": f"{i}.wav"},
            "file_name": f"{i}.wav",
            "question": "q?",
            "answer": "yes",
        }
        for i in range(3)
    ]
    ds = datasets.Dataset.from_list(rows).cast_column("audio", datasets.Audio())
    ds.to_parquet(str(tmp_path / "data" / "test-00000-of-00001.parquet"))
    items = load_hub(str(tmp_path), None, "test", limit=2)
    assert [(i.id, i.question, i.answer) for i in items] == [("0.wav", "q?", "yes"), ("1.wav", "q?", "yes")]
    assert abs(items[0].load().seconds - 1.0) < 1e-3


def test_eval_with_silence_option_and_score_layers(tmp_path, capsys):
    """--drop-silent adds a "drop silent tokens first" row per setting; --score-layers is recorded."""
    manifest = write_manifest(tmp_path, n=2)
    out = tmp_path / "quiet"
    argv = [
        "eval",
        "--model",
        "tiny-qwen2-audio",
        "--task",
        "clothoaqa",
        "--manifest",
        manifest,
        "--methods",
        "segmentwise",
        "topk",
        "--keep",
        "0.25",
        "--drop-silent",
        "--score-layers",
        "2",
        "--out",
        str(out),
        "--max-new-tokens",
        "2",
        "--repeats",
        "1",
        "--no-progress",
        "--device",
        "cpu",
    ]
    assert main(argv) == 0
    text = (out / "table.md").read_text()
    assert text.count("drop silent tokens first") == 2
    results = json.loads((out / "results.json").read_text())
    assert results["score_layers"] == 2
    assert json.loads((out / "config.json").read_text())["score_layers"] == 2
    keys = {json.loads(line)["setting"] for line in (out / "generations.jsonl").read_text().splitlines()}
    assert keys == {FULL, "segmentwise@0.25", "segmentwise+drop_silent@0.25", "topk@0.25", "topk+drop_silent@0.25"}
    capsys.readouterr()
    again = list(argv)
    again[again.index("--score-layers") + 1] = "1"
    assert main(again) == 2  # a resumed run may not change it
    assert "score_layers" in capsys.readouterr().err
