"""The timers with a fake clock: warm-up not counted, round-robin order, medians and spreads,
adaptive repeats, verdicts; and, on a tiny model, that each variant is timed on its own prompt."""

import math

import pytest

from segprune.comparison import InProcess, Setting, compare, encode_clip, prepare, run_variants
from segprune.models.base import StepClock
from segprune.timing import Repeats, Samples, Stopwatch, interleaved, speedup
from tests.conftest import scene


class FakeClock:
    """A clock that only moves when a timed function says so."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def spend(self, ms: float) -> None:
        self.now += ms / 1e3


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(Stopwatch, "clock", staticmethod(fake))
    return fake


def timed(clock, log, name, durations):
    """A function that logs its name and takes the next of `durations` ms (the last one repeats)."""
    calls = iter(durations)
    last = [durations[-1]]

    def fn():
        log.append(name)
        ms = next(calls, last[0])
        clock.spend(ms)

    return fn


def test_warmup_is_untimed_and_the_order_is_round_robin(clock):
    log = []
    fns = {"a": timed(clock, log, "a", [1000.0, 10.0, 12.0, 11.0]), "b": timed(clock, log, "b", [900.0, 5.0, 6.0, 4.0])}
    out = interleaved(fns, Repeats.fixed(3, warmup=1))
    assert log == ["a", "b"] * 4  # one warm-up round, then three timed rounds, a b a b ...
    assert out["a"].values == pytest.approx([10.0, 12.0, 11.0]) and out["b"].values == pytest.approx([5.0, 6.0, 4.0])
    assert out["a"].median == pytest.approx(11.0) and out["b"].median == pytest.approx(5.0)
    assert out["b"].min == pytest.approx(4.0) and out["a"].quartiles == pytest.approx((10.5, 11.5))


def test_adaptive_rounds_stop_at_the_target_or_the_maximum(clock):
    log = []
    fast = interleaved({"x": timed(clock, log, "x", [1.0])}, Repeats(min_rounds=5, max_rounds=30, target_ms=20.0))
    assert len(fast["x"].values) == 20  # 20 x 1 ms reaches the 20 ms target
    slow = interleaved({"x": timed(clock, log, "x", [100.0])}, Repeats(min_rounds=5, max_rounds=30, target_ms=20.0))
    assert len(slow["x"].values) == 5  # the minimum, although one run alone passes the target
    capped = interleaved({"x": timed(clock, log, "x", [0.01])}, Repeats(min_rounds=2, max_rounds=7, target_ms=1e9))
    assert len(capped["x"].values) == 7
    with pytest.raises(ValueError):
        Repeats(min_rounds=0)


def samples(*values):
    return Samples(list(values))


def test_verdicts_intervals_and_suspects():
    full, pruned = samples(40, 41, 39, 40, 42), samples(10, 11, 9, 10, 10)
    s = speedup(full, pruned, 329, 179)
    assert s.ratio == 4.0 and s.verdict == "faster" and s.low > 1 and s.low <= s.ratio <= s.high
    assert s.bound == pytest.approx(329 / 179) and s.suspect  # 4.0 > 1.84 ** 2 = 3.38: flagged, not celebrated
    assert speedup(pruned, full, 179, 329).verdict == "slower"
    noisy = speedup(samples(10, 30, 12, 28, 20), samples(15, 25, 11, 29, 19), 329, 179)
    assert noisy.verdict == "within noise" and noisy.low <= 1 <= noisy.high
    same = speedup(full, samples(30, 31, 29, 30, 30), 329, 329)
    assert same.verdict == "no pruning"  # same prompt length: whatever the clock says
    few = speedup(samples(40, 40), samples(10, 10), 329, 179)
    assert few.verdict == "within noise" and math.isinf(few.high) and few.runs == 2


def test_decode_time_per_token_leaves_out_the_first_token():
    clock = StepClock("cpu")
    clock.times = [100.0, 100.010, 100.030, 100.060]  # steps after the first token: 10, 20, 30 ms
    assert clock.ms_per_token() == pytest.approx(20.0)
    clock.times = [5.0]  # one new token: no decoding step to time
    assert math.isnan(clock.ms_per_token())


def test_each_variant_is_timed_on_its_own_prompt(tiny_models):
    """Spy on what the language model receives while the prefills are timed: every variant's own
    prompt, warm-up + repeats times, interleaved; then the full prefill takes longer in CPU work."""
    lm = tiny_models["tiny-qwen2-audio"]
    clip = encode_clip(lm, _audio(8.0), "Describe.", 2)
    settings = [Setting("segmentwise", 0.5), Setting("topk", 0.1)]
    variants = prepare(lm, clip, settings)
    seen = []
    handle = lm.language_model.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(int(kwargs["attention_mask"][0].sum())), with_kwargs=True
    )
    try:
        runs = run_variants(variants, InProcess(lm), 0, Repeats.fixed(3, warmup=1), lm.device)
    finally:
        handle.remove()
    lengths = [v.inputs.prompt_tokens for v in variants]
    assert lengths[0] > lengths[1] > lengths[2]
    assert seen == lengths * 4  # round robin, 1 warm-up + 3 timed rounds, each on its own prompt
    assert [r.prompt_tokens for r in runs] == lengths and all(r.prefill_repeats == 3 for r in runs)


def test_compare_reports_the_verdict_its_numbers_give(tiny_models):
    lm = tiny_models["tiny-qwen2-audio"]
    c = compare(lm, _audio(6.0), "Describe.", [Setting("topk", 1.0), Setting("topk", 0.25)], 2, repeats=5)
    assert c.speedup(c.pruned[0]).verdict == "no pruning"
    record = c.to_dict(1)
    low, high = record["speedup_interval"]
    assert low <= record["speedup"] <= high
    assert record["speedup_verdict"] in ("within noise", "faster", "slower")
    assert (record["speedup_verdict"] == "faster") == (low > 1)
    q1, q3 = record["pruned"]["prefill_ms_spread"]
    assert q1 <= record["pruned"]["prefill_ms"] <= q3 and record["pruned"]["prefill_repeats"] == 5


def _audio(seconds):
    from segprune.audio import load_audio

    return load_audio((16000, scene(seconds)))


def test_interleaved_rejects_bad_repeats():
    with pytest.raises(ValueError):
        interleaved({"x": lambda: None}, 0)
