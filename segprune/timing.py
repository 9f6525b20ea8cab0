"""Honest timers: device synchronisation around each measurement, warm-up first, interleaved
repeats (a fixed count, or adaptively until enough time was measured), medians with their
spread, and a verdict for every speedup.

A speedup is only ever the ratio of two medians measured in the same process by `interleaved`,
so that drift in clock speed or load hits both sides alike, and it comes with an interval and a
verdict (see `Speedup`): a timing the noise cannot resolve is said to be within noise.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

MIN_SAMPLES_FOR_VERDICT = 3  # fewer timed runs give no interval: the verdict is "within noise"
# A prefill costs a*L + b*L^2 for a prompt of L tokens, so pruning L_full to L_pruned speeds it up at
# most (L_full / L_pruned)^2, the square of the token-count bound: a measured ratio above that is noise.
VERDICTS = ("no pruning", "within noise", "faster", "slower")


def synchronize(device: torch.device | str | None) -> None:
    """Wait for queued GPU work on `device` (no-op on CPU)."""
    device = torch.device(device) if device is not None else None
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device is not None and device.type == "mps":
        torch.mps.synchronize()


class Stopwatch:
    """Context manager measuring wall time in ms, synchronising `device` at start and end.

    >>> with Stopwatch("cpu") as sw:
    ...     pass
    >>> sw.ms >= 0
    True
    """

    clock: Callable[[], float] = staticmethod(time.perf_counter)  # seconds; replaceable in tests

    def __init__(self, device: torch.device | str | None = None):
        self.device = device
        self.ms = float("nan")

    def __enter__(self) -> Stopwatch:
        synchronize(self.device)
        self._start = self.clock()
        return self

    def __exit__(self, *exc) -> None:
        synchronize(self.device)
        self.ms = (self.clock() - self._start) * 1e3


@dataclass
class Samples:
    """Repeated measurements of one quantity, in ms (in the order they were taken)."""

    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    @property
    def min(self) -> float:
        return min(self.values) if self.values else float("nan")

    @property
    def quartiles(self) -> tuple[float, float]:
        """(q1, q3): the 25th and 75th percentiles (linear interpolation), the spread reported
        beside every median; NaN when there are no values."""
        if not self.values:
            return float("nan"), float("nan")
        q1, q3 = np.percentile(self.values, [25, 75])
        return float(q1), float(q3)

    @property
    def total(self) -> float:
        return float(sum(self.values))


@dataclass(frozen=True)
class Repeats:
    """How many interleaved rounds to time: at least `min_rounds`, then more until every function
    has `target_ms` of measured time in total, but never more than `max_rounds`; `warmup` untimed
    rounds first. `Repeats.fixed(n)` is exactly n rounds."""

    min_rounds: int = 5
    max_rounds: int = 30
    target_ms: float = 500.0
    warmup: int = 1

    def __post_init__(self):
        if not (isinstance(self.min_rounds, int) and 1 <= self.min_rounds <= self.max_rounds):
            raise ValueError(f"Timing needs 1 <= min_rounds <= max_rounds, got {self.min_rounds}, {self.max_rounds}.")
        if self.warmup < 0:
            raise ValueError(f"Warm-up rounds must be at least 0, got {self.warmup}.")

    @classmethod
    def fixed(cls, rounds: int, warmup: int = 1) -> Repeats:
        return cls(min_rounds=rounds, max_rounds=rounds, target_ms=0.0, warmup=warmup)

    def done(self, rounds: int, samples: dict[str, Samples]) -> bool:
        if rounds < self.min_rounds:
            return False
        return rounds >= self.max_rounds or all(s.total >= self.target_ms for s in samples.values())


def as_repeats(repeats: int | Repeats | None) -> Repeats:
    """An int means exactly that many rounds; None the adaptive default."""
    if repeats is None:
        return Repeats()
    if isinstance(repeats, Repeats):
        return repeats
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a whole number of at least 1, got {repeats!r}.")
    return Repeats.fixed(repeats)


def interleaved(
    fns: dict[str, Callable[[], object]],
    repeats: int | Repeats | None = None,
    device: torch.device | str | None = None,
    warmup: int | None = None,
) -> dict[str, Samples]:
    """Time each function round robin (a, b, c, a, b, c, ...) after the warm-up rounds (untimed),
    for as many rounds as `repeats` says (an int: exactly that many; a `Repeats`; None: adaptive).
    Returns name -> Samples in ms. `warmup` overrides the policy's warm-up rounds."""
    policy = as_repeats(repeats)
    rounds_of_warmup = policy.warmup if warmup is None else warmup
    for _ in range(rounds_of_warmup):
        for fn in fns.values():
            fn()
    out = {name: Samples() for name in fns}
    rounds = 0
    while not policy.done(rounds, out):
        for name, fn in fns.items():
            with Stopwatch(device) as sw:
                fn()
            out[name].values.append(sw.ms)
        rounds += 1
    return out


@dataclass(frozen=True)
class Speedup:
    """full / pruned, with its interval and verdict.

    ratio: median(full) / median(pruned). interval: [q1(full) / q3(pruned), q3(full) / q1(pruned)],
    the range of ratios between the middle halves of the two timings (it always contains `ratio`);
    (0, inf) with fewer than 3 timed runs a side. bound: the token-count bound, full prompt length /
    pruned prompt length. verdict: "no pruning" (same prompt length), "within noise" (the interval
    contains 1), "faster" or "slower" (it does not). suspect: the ratio is above the square of its
    bound (prefill cost grows at most quadratically with the prompt length, so no real speedup gets
    there: such a number is noise or a measuring error, not a result).
    """

    ratio: float
    low: float
    high: float
    bound: float
    verdict: str
    suspect: bool
    runs: int = 0  # timed runs of the side with fewer

    @property
    def interval(self) -> tuple[float, float]:
        return self.low, self.high


def speedup(full: Samples, pruned: Samples, full_tokens: int, pruned_tokens: int) -> Speedup:
    """The `Speedup` of a pruned prefill against the full one (both timed by one `interleaved`)."""
    ratio = full.median / pruned.median
    bound = full_tokens / pruned_tokens
    runs = min(len(full.values), len(pruned.values))
    if runs < MIN_SAMPLES_FOR_VERDICT:
        low, high = 0.0, math.inf
    else:
        (f1, f3), (p1, p3) = full.quartiles, pruned.quartiles
        low, high = f1 / p3, f3 / p1
    if full_tokens == pruned_tokens:
        verdict = "no pruning"
    elif low <= 1.0 <= high:
        verdict = "within noise"
    else:
        verdict = "faster" if low > 1.0 else "slower"
    return Speedup(ratio, low, high, bound, verdict, suspect=ratio > bound**2, runs=runs)


__all__ = [
    "MIN_SAMPLES_FOR_VERDICT",
    "VERDICTS",
    "Repeats",
    "Samples",
    "Speedup",
    "Stopwatch",
    "as_repeats",
    "interleaved",
    "speedup",
    "synchronize",
]
