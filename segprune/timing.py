"""Honest timers: device synchronisation around each measurement, warm-up first, interleaved
repeats, medians.

A speedup is only ever the ratio of two medians measured in the same process by
`interleaved`, so that drift in clock speed or load hits both sides alike.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch


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

    def __init__(self, device: torch.device | str | None = None):
        self.device = device
        self.ms = float("nan")

    def __enter__(self) -> Stopwatch:
        synchronize(self.device)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        synchronize(self.device)
        self.ms = (time.perf_counter() - self._start) * 1e3


@dataclass
class Samples:
    """Repeated measurements of one quantity, in ms."""

    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    @property
    def min(self) -> float:
        return min(self.values) if self.values else float("nan")


def interleaved(
    fns: dict[str, Callable[[], object]],
    repeats: int,
    device: torch.device | str | None = None,
    warmup: int = 1,
) -> dict[str, Samples]:
    """Time each function `repeats` times, round robin (a, b, c, a, b, c, ...), after `warmup`
    untimed rounds. Returns name -> Samples in ms."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}.")
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    out = {name: Samples() for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            with Stopwatch(device) as sw:
                fn()
            out[name].values.append(sw.ms)
    return out
