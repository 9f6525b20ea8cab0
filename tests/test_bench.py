"""`segprune bench` on the tiny models: the command, the JSON schema, the presets, the GPU entry.

No test asserts a timing: times are only checked to be positive and consistent with each other.
"""

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from segprune.bench import gpu, presets, report
from segprune.bench.measure import peers_scores, synthetic_audio
from segprune.bench.memory import PeakMemory
from segprune.bench.result import ROWS, SCHEMA, SELECTION_SLOW_REPEATS, Result
from segprune.cli import main
from segprune.methods import METHODS as REGISTRY
from segprune.methods import keep_count
from segprune.models.audioflamingo3 import AudioFlamingo3LM
from segprune.models.qwen2_audio import Qwen2AudioLM
from tests.conftest import TINY_KEYS

SECONDS = [5.0, 40.0]  # one and two encoder windows
KEEP = [0.5, 0.1]
METHODS = ["segmentwise", "topk", "visionzip"]
SELECTION_SIZES = [600, 1500]  # the synthetic selection test, kept small


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    """One bench run on tiny Audio Flamingo 3, shared by the tests below."""
    folder = tmp_path_factory.mktemp("bench")
    path, html = folder / "bench.json", folder / "bench.html"
    argv = ["bench", "--model", "tiny-audio-flamingo-3", "--device", "cpu", "--seconds", *map(str, SECONDS)]
    argv += [
        "--keep",
        *map(str, KEEP),
        "--methods",
        *METHODS,
        "--repeats",
        "2",
        "--warmup",
        "0",
        "--decode-tokens",
        "3",
    ]
    argv += ["--baseline-seconds", "5", "--selection-n", *map(str, SELECTION_SIZES), "--selection-hidden", "48"]
    argv += ["--json", str(path), "--html", str(html)]
    return argv, path, html


@pytest.fixture(scope="module")
def bench_output(bench_run):
    import contextlib
    import io

    argv, path, html = bench_run
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(argv)
    return code, out.getvalue(), json.loads(path.read_text()), html


def test_bench_json_follows_the_schema(bench_output):
    code, _, data, _ = bench_output
    assert code == 0
    assert data["schema"] == SCHEMA
    assert set(data) == {f.name for f in dataclasses.fields(Result)}
    for name, row in ROWS.items():
        for record in data[name]:
            assert set(record) == {f.name for f in dataclasses.fields(row)}, name
    assert "RANDOM WEIGHTS" in data["note"] and data["model"]["random_weights"] is True
    assert data["model"]["key"] == "audio-flamingo-3" and data["model"]["preset"] == "tiny"
    assert data["machine"]["threads"] >= 1 and data["machine"]["memory"]
    assert Result.from_dict(data).to_dict() == data  # lossless round trip


def test_bench_rows_are_consistent(bench_output):
    _, _, data, _ = bench_output
    prefill = data["prefill"]
    assert sorted({(r["seconds"], r["keep_ratio"]) for r in prefill}) == sorted(
        (s, r) for s in SECONDS for r in [1.0, *KEEP]
    )  # keep 1.0 (the full model) is always measured
    for r in prefill:
        n = int(r["seconds"] * 25)
        assert r["n"] == n and r["k"] == keep_count(n, r["keep_ratio"])
        assert r["prompt_tokens_full"] - r["prompt_tokens"] == n - r["k"]
        assert r["prefill_ms"] > 0 and r["prefill_ms_min"] <= r["prefill_ms"]
        assert math.isclose(r["speedup"], r["full_prefill_ms"] / r["prefill_ms"], rel_tol=1e-9)
        assert math.isclose(r["bound"], r["prompt_tokens_full"] / r["prompt_tokens"], rel_tol=1e-9)
        assert math.isclose(r["of_bound"], r["speedup"] / r["bound"], rel_tol=1e-9)
        assert r["prefill_cpu_ms"] > 0 and r["cpu_speedup"] > 0  # measured on CPU devices
        assert r["peak_mb"] >= 0
        assert r["decode_ms_per_token"] is None or r["decode_ms_per_token"] > 0
        assert r["method"] == ("none" if r["keep_ratio"] == 1.0 else "segmentwise")
    assert [e["windows"] for e in data["encoder"]] == [1, 2]
    for e in data["encoder"]:
        assert 0 < e["scoring_ms"] and 0 < e["encoder_ms"] <= e["encode_ms"] * 1.5 and e["scoring_share"] > 0
    [base] = data["baseline"]  # only at --baseline-seconds 5
    assert base["seconds"] == 5 and base["peers_peak_mb"] > 0
    assert base["max_score_diff"] < 1e-3  # the peers' way and the hook compute the same scores
    clip = [r for r in data["selection"] if r["source"] == "clip"]
    assert {r["n"] for r in clip} == {125, 1000} and len(clip) == 2 * len(KEEP) * len(METHODS)
    synthetic = [r for r in data["selection"] if r["source"] == "synthetic"]  # every registry method, each N
    assert [(r["method"], r["n"]) for r in synthetic] == [(m, n) for n in SELECTION_SIZES for m in REGISTRY]
    for r in data["selection"]:
        assert r["k"] == keep_count(r["n"], r["keep_ratio"]) and r["repeats"] >= 1
        assert 0 < r["select_ms_min"] <= r["select_ms"] and r["select_cpu_ms"] > 0
        assert r["hidden"] == (48 if r["source"] == "synthetic" else data["model"]["llm_hidden"])
        whole_window = r["method"] == "visionzip" and round(r["k"] * 0.18 / 1.18) <= 32  # K_c <= 2W: every target
        product = r["method"] == "divprune" or whole_window
        assert (r["multiply_adds"] > 0) == product == (r["floor_ms"] is not None)
        if product:
            assert r["floor_ms"] > 0 and r["floor_cpu_ms"] > 0
            assert math.isclose(r["of_floor"], r["select_ms"] / r["floor_ms"], rel_tol=1e-9)
    assert {r["keep_ratio"] for r in synthetic} == {0.25}
    fits = {f["keep_ratio"]: f for f in data["scaling"]}
    assert set(fits) == {1.0, *KEEP} and all(f["exponent"] and f["exponent_prompt"] for f in fits.values())
    assert all(len(f["seconds"]) == len(SECONDS) for f in fits.values())
    assert data["targets"] == []  # no 30 s clip, no 15,000-token selection in this small run


def test_bench_report_and_figure(bench_output, bench_run, capsys):
    _, out, _, html = bench_output
    assert "RANDOM WEIGHTS" in out
    for heading in ["### Prefill", "### Encoder and scoring hook", "### Scores", "### Selection", "### Scaling"]:
        assert heading in out
    assert "floor ms" in out and "as one float32 product" in out
    assert html.stat().st_size > 100_000 and "plotly" in html.read_text()[:100_000].lower()
    # the same report again from the saved JSON, without a model
    assert main(["bench", "--from-json", str(bench_run[1])]) == 0
    assert capsys.readouterr().out == out


def test_bench_refuses_audio_longer_than_the_model_takes(capsys):
    code = main(["bench", "--model", "tiny-qwen2-audio", "--device", "cpu", "--seconds", "31", "--repeats", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "31 s is out of range" in err and len(err.strip().splitlines()) == 1


def test_bench_from_json_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema": SCHEMA, "note": ""}))
    for path, message in [(tmp_path / "missing.json", "Cannot read"), (bad, "missing or unknown field")]:
        assert main(["bench", "--from-json", str(path)]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1


def test_targets_are_checked_where_the_run_has_them():
    row = {
        "seconds": 30.0,
        "n": 750,
        "keep_ratio": 0.25,
        "k": 188,
        "method": "segmentwise",
        "prompt_tokens_full": 800,
        "prompt_tokens": 238,
        "prefill_ms": 10.0,
        "prefill_ms_min": 9.0,
        "full_prefill_ms": 31.0,
        "full_prefill_ms_min": 30.0,
        "speedup": 3.1,
        "bound": 800 / 238,
        "of_bound": 3.1 / (800 / 238),
        "prefill_cpu_ms": 9.0,
        "cpu_speedup": 2.9,
        "decode_ms_per_token": None,
        "peak_mb": 1.0,
    }
    result = Result(SCHEMA, "", {}, {}, {"selection_repeats": 20}, prefill=[ROWS["prefill"](**row)])
    wall, cpu = report.targets(result, encoder_layers=12)
    assert wall.met and wall.value == pytest.approx(0.922, abs=1e-3)
    assert not cpu.met and cpu.value == pytest.approx(0.863, abs=1e-3)


def test_selection_targets_at_scale():
    def row(method, n, ms, floor=None):
        return ROWS["selection"](
            method,
            n,
            0.25,
            keep_count(n, 0.25),
            ms,
            ms,
            "synthetic",
            hidden=896,
            repeats=3,
            floor_ms=floor,
            of_floor=None if floor is None else ms / floor,
            multiply_adds=1 if floor else 0,
        )

    rows = [row("segmentwise", 45_000, 0.4), row("visionzip", 45_000, 900.0, 700.0), row("divprune", 45_000, 15e3, 9e3)]
    rows += [row("divprune", 15_000, 3e3, 1e3), row("local-merge", 15_000, 80.0)]  # no 50 ms goal below 45,000
    result = Result(SCHEMA, "", {}, {}, {"selection_repeats": 20}, selection=rows)
    met = {t.name: (t.met, t.value) for t in report.targets(result, encoder_layers=12)}
    assert met == {
        "selection time of segmentwise (N = 45000, keep 0.25, H = 896)": (True, 0.4),
        "selection time of visionzip (N = 45000, keep 0.25, H = 896)": (False, 900.0),
        "DivPrune selection / its arithmetic floor (N = 45000, keep 0.25, H = 896)": (True, 15e3 / 9e3),
        "DivPrune selection / its arithmetic floor (N = 15000, keep 0.25, H = 896)": (False, 3.0),
        "segmentwise selection time (N = 45000, keep 0.25)": (True, 0.4),
    }


def test_growth_exponent():
    seconds = [10.0, 30.0, 60.0, 120.0]
    assert report.growth_exponent(seconds, [3 * s**1.5 for s in seconds]) == pytest.approx(1.5)
    assert report.growth_exponent([30.0, 30.0], [1.0, 2.0]) is None


def test_peers_baseline_restores_the_encoder(tiny_models):
    lm = tiny_models["tiny-qwen2-audio"]
    tower = lm.audio_encoder
    inputs = lm.inputs(synthetic_audio(3.0), "Describe.")
    scores = peers_scores(lm, inputs)
    assert np.abs(scores - lm.encode(inputs)[0].scores).max() < 1e-3
    assert tower.config._attn_implementation == "sdpa" and not tower.config.output_attentions
    assert not tower._forward_hooks


def test_presets_carry_the_real_architectures():
    for family in (Qwen2AudioLM, AudioFlamingo3LM):
        assert presets.preset_names(family.key) == ["full", "mid", "quick", "tiny"]
    full = presets.parameter_count(Qwen2AudioLM, "full")  # counted on the meta device
    assert full["total"] == pytest.approx(8.40e9, rel=0.01)  # the hub model card: 8.4 B parameters
    assert full["audio_encoder"] == pytest.approx(0.64e9, rel=0.02)  # Whisper-large-v3 encoder
    af3 = presets.parameter_count(AudioFlamingo3LM, "full")
    # Qwen2.5-7B (7.6 B) + the same encoder + a 2-layer projector
    assert af3["total"] == pytest.approx(8.27e9, rel=0.02) and af3["audio_encoder"] == full["audio_encoder"]
    with pytest.raises(ValueError, match="No preset 'huge'"):
        presets.load_preset("qwen2-audio", "huge")


def test_every_listed_preset_builds_and_whisper_has_only_tiny():
    from segprune.models import FAMILIES

    for spec in FAMILIES:
        family = spec.load()
        for name in presets.preset_names(family.key):
            if name != presets.TINY:
                assert presets.parameter_count(family, name)["total"] > 0  # the config is accepted
    assert presets.preset_names("whisper") == ["tiny"]  # the generic presets describe an LLM
    with pytest.raises(ValueError, match="No preset 'quick' for whisper"):
        presets.load_preset("whisper", "quick")


def test_build_refuses_a_preset_that_does_not_fit(monkeypatch):
    class Small:
        available = 2 * 2**30

    monkeypatch.setattr(presets.psutil, "virtual_memory", lambda: Small)
    with pytest.raises(ValueError, match=r"needs 31.3 GiB .* only 2.0 GiB are free"):
        presets.build(Qwen2AudioLM, "full", "cpu", torch.float32)


def test_peak_memory_attributes_one_phase():
    with PeakMemory("cpu") as idle:
        pass
    with PeakMemory("cpu") as busy:
        block = np.ones(200 * 2**20 // 8)  # 200 MiB, touched
        del block
    assert idle.mb < 50 and 150 < busy.mb < 400


def test_gpu_entry_runs_on_cpu_with_the_tiny_preset(tmp_path, capsys):
    argv = ["--out", str(tmp_path), "--preset", "tiny", "--device", "cpu", "--dtype", "float32", "--repeats", "1"]
    argv += ["--decode-tokens", "2", "--selection-n", "400"]
    assert gpu.main([*argv, "--long", "30"]) == 0
    assert {p.name for p in tmp_path.iterdir()} == {
        "gpu-qwen2-audio.json",
        "gpu-audio-flamingo-3.json",
        "gpu.md",
        "gpu.html",
    }
    af3 = json.loads((tmp_path / "gpu-audio-flamingo-3.json").read_text())
    assert sorted(r["keep_ratio"] for r in af3["prefill"]) == [0.1, 0.25, 0.5, 1.0]
    md = (tmp_path / "gpu.md").read_text()
    assert "paper A100 ms" in md and "162.5" in md and md.count("RANDOM WEIGHTS") == 2


def test_bench_score_layers_is_recorded_and_skips_the_last_layer_baseline(tmp_path, capsys):
    path = tmp_path / "l2.json"
    argv = [
        "bench",
        "--model",
        "tiny-qwen2-audio",
        "--device",
        "cpu",
        "--seconds",
        "5",
        "--keep",
        "0.5",
        "--repeats",
        "1",
        "--warmup",
        "0",
        "--decode-tokens",
        "0",
        "--baseline-seconds",
        "5",
        "--selection-n",
        "500",
        "--score-layers",
        "2",
        "--json",
        str(path),
    ]
    assert main(argv) == 0
    result = json.loads(path.read_text())
    assert result["options"]["score_layers"] == 2
    assert not result.get("baseline")  # the peers' scores are last-layer only
    assert all(row["scoring_ms"] > 0 for row in result["encoder"])


@pytest.mark.parametrize("key", TINY_KEYS)
def test_bench_runs_for_every_family_with_its_score_check(tmp_path, capsys, key):
    """`segprune bench --model tiny-<key>` through the adapters' public seams, every family: the
    peers' output_attentions scores equal the hook's (same eager pass) within 1e-5, or the report
    says why the family has none."""
    path = tmp_path / "out.json"
    argv = ["bench", "--model", key, "--device", "cpu", "--keep", "1", "0.25", "--repeats", "2", "--seconds", "4"]
    argv += ["--baseline-seconds", "4", "--decode-tokens", "2", "--selection-n", "500", "--json", str(path)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    report_text = captured.out
    progress = [line for line in captured.err.splitlines() if line.startswith("[bench] ")]
    assert progress[0].startswith(f"[bench] {key}: ") and "parameters, ready in" in progress[0]
    estimate = next(i for i, line in enumerate(progress) if "estimated run time: about" in line)
    assert "[bench] 4 s: encoder x2" in progress[estimate + 1] and "left" in progress[estimate + 1]
    assert progress[-1].startswith("[bench] measured in") and "[bench]" not in report_text
    result = json.loads(path.read_text())
    assert [r["keep_ratio"] for r in result["prefill"]] == [1.0, 0.25]
    assert result["prefill"][1]["k"] == keep_count(result["prefill"][0]["n"], 0.25)
    if result["baseline"]:
        (row,) = result["baseline"]
        assert row["max_score_diff"] < 1e-5 and row["max_score_diff_backends"] < 1e-3
    else:
        (note,) = {e["baseline_note"] for e in result["encoder"]}
        assert key in ("tiny-qwen2.5-omni", "tiny-qwen3-omni", "tiny-phi-4-multimodal") and "returns no weights" in note
        assert "No output_attentions baseline for this family" in report_text


# --- run time: the estimate and the progress lines


def test_plan_prices_every_pass_of_the_run():
    """Two lengths (the output_attentions baseline at the second), two keep ratios, two methods:
    the passes and their cost, by hand."""
    from segprune.bench.estimate import PEERS_FACTOR, FirstLook, plan
    from segprune.bench.measure import Options

    opts = Options(seconds=[10.0, 40.0], keep=[1.0, 0.5, 0.1], methods=["segmentwise", "topk"], repeats=3)
    opts.baseline_seconds, opts.warmup, opts.decode_tokens, opts.selection_n = [40.0], 1, 4, [1000, 4000]
    measured = {m: 1.0 for m in REGISTRY} | {"topk": 3.0, "divprune": 10.0}  # one selection each at N = 1000
    look = FirstLook(100.0, 1, [(60, 30.0), (260, 80.0)], 5.0, measured, 1000, 16, 0.25)
    assert look.prefill_ms(160) == pytest.approx(55.0)  # on the line through the two prefills
    clips = {10.0: (250, 260, 1), 40.0: (1000, 1010, 2)}  # N, full prompt, windows
    phases = plan(opts, look, clips)
    assert [p.name.split(":")[0] for p in phases] == [
        "10 s",
        "10 s",
        "40 s",
        "40 s",
        "selection of every method on N = 1,000 synthetic tokens, keep 0.25",
        "selection of every method on N = 4,000 synthetic tokens, keep 0.25",
    ]
    rounds = 1 + 3  # warm-up + timed
    # 10 s: encoder passes without the baseline (its own encoding was the first measurement)
    assert phases[0].passes == {"encode": rounds + 1, "peers": 0} and phases[0].ms == pytest.approx(100 * 5)
    # 40 s: its own encoding too, and the baseline; two windows cost twice one
    assert phases[2].passes == {"encode": rounds + 2, "peers": rounds + 3}
    assert phases[2].ms == pytest.approx(200 * (6 + PEERS_FACTOR * 7))
    # prefills: full + 2 pruned prompts, each (rounds + 1 memory pass), then one generation of 4 tokens each
    prompts = [260, 10 + 125, 10 + 25]
    select = (1.0 + 3.0) * 2 * (1 + 20)  # both methods, 2 ratios, a first call + 20 repeats, at N = 1000
    want = sum(look.prefill_ms(p) for p in prompts) * (rounds + 1)
    want += sum(look.prefill_ms(p) + 3 * 5.0 for p in prompts) + select * 250 / 1000  # linear in N
    assert phases[1].ms == pytest.approx(want)
    assert phases[1].passes == {"prefill": 3 * (rounds + 1), "generate": 3, "select": 2 * 2 * 21}
    # the synthetic selection at N = 1000: every registry method as measured; a product's also its floor
    products = {"divprune"}  # visionzip: K_c = 38 > 2W, each token against its 32 nearest targets
    assert phases[4].ms == pytest.approx(sum(ms * (21 + 20 * (m in products)) for m, ms in measured.items()))
    assert phases[4].passes == {"select": 21 * len(REGISTRY)}
    # at N = 4000 DivPrune does 16x the multiply-adds (K * N): 160 ms, under 500 ms, still 20 repeats
    assert look.selection_ms("divprune", 4000, 0.25) == pytest.approx(160.0)
    assert look.selection_ms("segmentwise", 4000, 0.25) == pytest.approx(4.0)
    assert phases[5].passes == {"select": 21 * len(REGISTRY)}
    slow = FirstLook(100.0, 1, [(60, 30.0), (260, 80.0)], 5.0, measured | {"divprune": 40.0}, 1000, 16, 0.25)
    at_4000 = plan(opts, slow, clips)[5]  # DivPrune at 640 ms: a first call and SELECTION_SLOW_REPEATS
    assert at_4000.passes == {"select": 21 * (len(REGISTRY) - 1) + 1 + SELECTION_SLOW_REPEATS}


def test_progress_lines_scale_what_is_left_by_the_pace_so_far():
    from segprune.bench.estimate import Phase, Progress

    now = [0.0]
    lines = []
    progress = Progress(lines.append, clock=lambda: now[0])
    now[0] = 2.0  # the first measurement took 2 s
    progress.estimate([Phase("one", 10_000, {}), Phase("two", 10_000, {}), Phase("three", 20_000, {})])
    progress.next()
    now[0] = 22.0  # phase one took 20 s instead of 10: twice the plan
    progress.next()
    now[0] = 42.0
    progress.next()
    now[0] = 82.0
    progress.finish()
    assert lines == [
        lines[0],
        "one (2.0 s elapsed, about 40.0 s left)",
        "two (22.0 s elapsed, about 1 min 00 s left, at 2.0x the first measurement's pace)",
        "three (42.0 s elapsed, about 40.0 s left, at 2.0x the first measurement's pace)",
        "measured in 1 min 22 s (first estimate 42.0 s)",
    ]
    assert lines[0].startswith("estimated run time: about 42.0 s")


def test_the_run_does_what_its_plan_counts(tiny_models, monkeypatch):
    """Spy on the model during `measure.run`: per progress line, the encoder passes (with the hook and
    eager), the prefills, the generations and the selections are the plan's; the estimate comes
    before the first long phase; progress goes to the log, the report is not touched."""
    from segprune.bench import estimate, measure
    from segprune.bench.measure import Options

    lm = tiny_models["tiny-qwen2-audio"]
    calls = dict.fromkeys(["encode", "peers", "prefill", "generate", "select"], 0)

    def counting(name, fn):
        def wrapped(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)

        return wrapped

    for name, attr in [
        ("encode", "encode"),
        ("peers", "eager_scores"),
        ("prefill", "prefill"),
        ("generate", "generate"),
    ]:
        monkeypatch.setattr(lm, attr, counting(name, getattr(lm, attr)))
    monkeypatch.setattr(measure, "select", counting("select", measure.select))
    plans = []
    monkeypatch.setattr(measure, "plan", lambda *a: plans.append(estimate.plan(*a)) or plans[-1])
    lines, snapshots = [], []

    def log(message):
        lines.append(message)
        snapshots.append(dict(calls))

    opts = Options(seconds=[3.0, 5.0], keep=[1.0, 0.5, 0.25], methods=["segmentwise", "topk"], repeats=2)
    opts.baseline_seconds, opts.decode_tokens, opts.selection_n, opts.selection_repeats = [5.0], 3, [300, 500], 3
    measure.run(lm, opts, log)
    [phases] = plans
    start = next(i for i, line in enumerate(lines) if line.startswith("estimated run time"))
    assert lines[start + 1].startswith("3 s: encoder x2") and lines[-1].startswith("measured in")
    assert "5 s: encoder x2 interleaved with the output_attentions baseline" in lines[start + 3]
    for i, phase in enumerate(phases):
        before, after = snapshots[start + 1 + i], snapshots[start + 2 + i]
        done = {name: after[name] - before[name] for name in calls}
        assert done == {name: phase.passes.get(name, 0) for name in calls}, (phase.name, done, phase.passes)


def test_selection_rows_price_the_options_they_ran_with():
    """VisionZip's work is a product only where it searches every target: its row says which it ran."""
    from segprune.bench.measure import Options, synthetic_embeddings, time_selections

    scores, emb = synthetic_embeddings(3000, 16, "cpu", torch.float32)  # keep 0.25: K_c = 114 > 2W
    for options, product in [({}, False), ({"context_window": 0}, True)]:
        opts = Options(options=options, selection_repeats=1)
        [row] = time_selections(scores, emb, 0.25, ["visionzip"], opts, "synthetic", "cpu")
        assert (row.multiply_adds > 0) == product == (row.floor_ms is not None)
        assert row.multiply_adds == (114 * (3000 - 750) * 16 if product else 0)
