"""How long a `segprune bench` run will take, from a first measurement, and its progress lines.

Before the long parts, `measure.first_look` times on the first clip: one encoder pass (the one the run
needs anyway), one prefill of the full prompt and one of the shortest pruned prompt, one greedy
decoding step, and one selection of every registry method on synthetic scores and embeddings at
the smallest synthetic N. `plan` then counts what the
run will do (every pass of `measure.run`: warm-up, timed repeats, the memory passes) and prices it:

- encoder passes in proportion to the number of encoder windows (every window is padded to 30 s);
- the peers' `output_attentions` baseline at ``PEERS_FACTOR`` (1.2) times our pass: measured
  1.15-1.18 on the `mid` and `quick` presets (benchmarks/RESULTS.md);
- prefills on the straight line through the two measured prefills (fixed cost + cost per prompt
  token): attention grows faster than that, so long clips take longer than estimated;
- each greedy generation as one prefill plus its decoding steps;
- selections in proportion to their multiply-adds (`methods.selection_multiply_adds`: DivPrune
  and a VisionZip whose window holds every target grow with N * K) or else to N; one first untimed call each, then
  `selection_repeats` timed runs (SELECTION_SLOW_REPEATS for one slower than SELECTION_SLOW_MS), plus
  as many runs of the arithmetic floor for a method whose work is a product's.

`Progress` prints each phase to stderr with the time elapsed and what is left (the plan, scaled by
the pace of the phases done so far: a machine that got busier slows them all), and at the end the
total beside the first estimate.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..methods import METHODS, keep_count, selection_multiply_adds
from .result import SELECTION_SLOW_MS, SELECTION_SLOW_REPEATS

PEERS_FACTOR = 1.2  # the output_attentions baseline's pass / ours (measured 1.15-1.18)


@dataclass
class FirstLook:
    """The first measurements, in ms, on the first clip (`windows` encoder windows)."""

    encode_ms: float  # one encoder pass with the scoring hook
    windows: int
    prefill_points: list[tuple[int, float]]  # (prompt tokens, ms): the full and the shortest prompt
    step_ms: float  # one greedy decoding step
    select_ms: dict[str, float]  # one selection of each registry method at N = `select_n`
    select_n: int
    hidden: int = 896  # H of those synthetic embeddings
    select_keep: float = 0.25  # and their keep ratio
    options: dict = field(default_factory=dict)  # the method options they ran with (each method reads its own)

    def multiply_adds(self, method: str, n: int, keep: float) -> int:
        """`methods.selection_multiply_adds` of `method` at N = n, keep ratio `keep`, width `hidden`."""
        return selection_multiply_adds(method, n, keep_count(n, keep), self.hidden, self.options)

    def selection_ms(self, method: str, n: int, keep: float) -> float:
        """One selection of `method` at N = n, keep ratio `keep`: the measured one, scaled by the
        multiply-adds where the method's work is a product's, else by N."""
        work = self.multiply_adds(method, self.select_n, self.select_keep)
        if work:
            return self.select_ms[method] * self.multiply_adds(method, n, keep) / work
        return self.select_ms[method] * n / self.select_n

    def prefill_ms(self, tokens: int) -> float:
        """A prefill of `tokens` prompt tokens, on the line through the two measured ones."""
        (t0, ms0), (t1, ms1) = self.prefill_points
        if t0 == t1:
            return ms1 * tokens / t1
        slope = max((ms1 - ms0) / (t1 - t0), 0.0)
        return max(ms0 + slope * (tokens - t0), 0.0)

    def summary(self) -> str:
        (t0, ms0), (t1, ms1) = self.prefill_points
        select = ", ".join(f"{m} {ms:.3g} ms" for m, ms in self.select_ms.items())
        return (
            f"first measurement: encoder pass {_duration(self.encode_ms)} ({self.windows} window"
            f"{'s' * (self.windows > 1)}), prefill {_duration(ms1)} at {t1} tokens and {_duration(ms0)} at "
            f"{t0}, decoding step {_duration(self.step_ms)}, selection at N = {self.select_n:,}: {select}"
        )


@dataclass
class Phase:
    """One progress line of the run, what it will do (`passes`: encoder passes with the hook,
    "encode", and with the peers' eager attention, "peers"; language-model "prefill"s; greedy
    "generate" calls; "select" calls) and its estimated cost in ms."""

    name: str
    ms: float
    passes: dict[str, int]


def plan(opts, look: FirstLook, clips: dict[float, tuple[int, int, int]]) -> list[Phase]:
    """The run's phases in the order `measure.run` does them, after `measure.first_look`.
    clips: seconds -> (N, prompt tokens of the full prompt, encoder windows)."""
    rounds = opts.warmup + opts.repeats
    ratios = sorted({r for r in opts.keep if r < 1.0}, reverse=True)
    phases = []
    for i, seconds in enumerate(opts.seconds):
        n, full_tokens, windows = clips[seconds]
        encode_ms = look.encode_ms * windows / look.windows
        baseline = opts.score_layers == 1 and any(abs(seconds - b) < 1e-9 for b in opts.baseline_seconds)
        # the clip's own encoding (but the first's, done before the estimate), the timed rounds, one memory pass
        encode = (i > 0) + rounds + 1
        peers = rounds + 3 if baseline else 0  # a first check, the timed rounds, a memory pass, the score check
        what = " interleaved with the output_attentions baseline" if baseline else ""
        ms = encode_ms * (encode + PEERS_FACTOR * peers)
        phases.append(Phase(f"{seconds:g} s: encoder x{opts.repeats}{what}", ms, {"encode": encode, "peers": peers}))

        prompts = [full_tokens] + [full_tokens - n + keep_count(n, r) for r in ratios]
        ms = sum(look.prefill_ms(p) for p in prompts) * (rounds + 1)  # the timed rounds, one memory pass
        generate = len(prompts) if opts.decode_tokens > 1 else 0
        if generate:
            ms += sum(look.prefill_ms(p) + (opts.decode_tokens - 1) * look.step_ms for p in prompts)
        select_ms, calls = _selections(look, opts.methods, n, ratios, opts.selection_repeats)  # the clip's own
        ms += select_ms
        passes = {"prefill": len(prompts) * (rounds + 1), "generate": generate, "select": calls}
        keeps = sorted(opts.keep, reverse=True)
        phases.append(Phase(f"{seconds:g} s: N = {n}, prefill full and keep {keeps} x{opts.repeats}", ms, passes))
    for n in opts.selection_n:
        ms, calls = _selections(look, list(METHODS), n, [opts.selection_keep], opts.selection_repeats)
        name = f"selection of every method on N = {n:,} synthetic tokens, keep {opts.selection_keep:g}"
        phases.append(Phase(name, ms, {"select": calls}))
    return phases


def _selections(look: FirstLook, methods: list[str], n: int, ratios: list[float], repeats: int) -> tuple[float, int]:
    """(ms, select calls) of `measure.time_selections` for each of `ratios`: one untimed call per
    method, then `repeats` timed ones (SELECTION_SLOW_REPEATS if slower than SELECTION_SLOW_MS), and
    as many runs of the arithmetic floor (priced as the method) for a method whose work is a product's."""
    ms, calls = 0.0, 0
    for r in ratios:
        for m in methods:
            one = look.selection_ms(m, n, r)
            timed = repeats if one <= SELECTION_SLOW_MS else SELECTION_SLOW_REPEATS
            floor = timed if look.multiply_adds(m, n, r) else 0
            ms += one * (1 + timed + floor)
            calls += 1 + timed
    return ms, calls


@dataclass
class Progress:
    """Progress lines: the estimate, then each phase with the time elapsed and what is left, then
    the total beside the first estimate. What is left is the plan's cost of the phases to come,
    scaled by how fast the phases done so far went against their plan (a machine that got busier
    after the first measurement slows every later phase alike)."""

    log: Callable[[str], None]
    clock: Callable[[], float] = time.perf_counter  # seconds; replaceable in tests
    start: float | None = None
    phases: list[Phase] = field(default_factory=list)
    done: int = 0  # phases started so far
    total_ms: float = 0.0  # the first estimate of the whole run
    planned_at_ms: float = 0.0  # elapsed when the plan was made

    def __post_init__(self):
        if self.start is None:
            self.start = self.clock()

    @property
    def elapsed_ms(self) -> float:
        return (self.clock() - self.start) * 1e3

    def estimate(self, phases: list[Phase]) -> None:
        self.phases = phases
        self.planned_at_ms = self.elapsed_ms
        self.total_ms = self.planned_at_ms + sum(p.ms for p in phases)
        self.log(
            f"estimated run time: about {_duration(self.total_ms)} (encoder passes scaled by windows, prefills "
            "by prompt length, which underestimates long clips; see segprune/bench/estimate.py)"
        )

    def pace(self) -> float:
        """Time taken by the phases done so far / their planned cost (1.0 before any is done)."""
        planned = sum(p.ms for p in self.phases[: max(self.done - 1, 0)])
        spent = self.phase_started_ms - self.planned_at_ms if self.done > 1 else 0.0
        return spent / planned if planned > 0 and spent > 0 else 1.0

    def next(self) -> None:
        """Log the next phase with the time elapsed and the estimate of what is left."""
        self.phase_started_ms = self.elapsed_ms
        self.done += 1
        pace = self.pace()
        left = pace * sum(p.ms for p in self.phases[self.done - 1 :])
        slower = f", at {pace:.1f}x the first measurement's pace" if abs(pace - 1) > 0.25 else ""
        name = self.phases[self.done - 1].name
        self.log(f"{name} ({_duration(self.phase_started_ms)} elapsed, about {_duration(left)} left{slower})")

    def finish(self) -> None:
        self.log(f"measured in {_duration(self.elapsed_ms)} (first estimate {_duration(self.total_ms)})")


def _duration(ms: float) -> str:
    """2.3 ms, 840 ms, 12.4 s, 3 min 05 s, 1 h 02 min."""
    if ms < 10:
        return f"{ms:.1f} ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    s = ms / 1000
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


__all__ = ["PEERS_FACTOR", "FirstLook", "Phase", "Progress", "plan"]
