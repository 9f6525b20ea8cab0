"""Peak memory of one phase, attributed honestly.

A process's peak RSS only ever grows, so "peak RSS" after a run says nothing about which phase
needed the memory. `PeakMemory` measures what ONE phase adds on top of what was resident when it
started:

- CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, minus the
  allocated bytes at the start (tensors only; the caching allocator's reserve is not counted).
- CPU on Linux: the kernel's resident high-water mark (VmHWM) is reset to the current RSS by
  writing "5" to /proc/self/clear_refs; after the phase, VmHWM - the RSS at the start is exact.
  Freed heap memory is first handed back to the system (``malloc_trim``), so memory an earlier
  phase left cached does not hide this phase's need.
- Elsewhere: a thread samples the RSS every millisecond (psutil); short spikes can be missed.

    with PeakMemory("cpu") as mem:
        run_phase()
    mem.mb    # MiB the phase added at its peak
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import re
import threading
from pathlib import Path

import psutil
import torch

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
MIB = 2**20


def _status_kib(field: str) -> int:
    return int(re.search(rf"^{field}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE).group(1))


def _can_reset_hwm() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
        return _status_kib("VmHWM") > 0
    except (OSError, AttributeError):
        return False


def _trim_heap() -> None:
    """Return freed heap pages to the system (glibc); nothing elsewhere."""
    name = ctypes.util.find_library("c")
    try:
        ctypes.CDLL(name).malloc_trim(0)
    except (OSError, AttributeError, TypeError):
        pass


def method(device) -> str:
    """How `PeakMemory` measures on `device` (recorded in the results)."""
    if torch.device(device).type == "cuda":
        return "cuda max_memory_allocated above the allocated bytes at the phase's start"
    if _can_reset_hwm():
        return "process RSS high-water mark (VmHWM, reset per phase) above the RSS at the phase's start"
    return "process RSS sampled every 1 ms (psutil) above the RSS at the phase's start"


class PeakMemory:
    """Context manager: `mb` is the memory (MiB) the phase added at its peak on `device`."""

    def __init__(self, device):
        self.device = torch.device(device)
        self.mb = float("nan")

    def __enter__(self) -> PeakMemory:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
            return self
        _trim_heap()
        self._start = psutil.Process().memory_info().rss
        self._hwm = _can_reset_hwm()
        if not self._hwm:
            self._peak, self._stop = self._start, threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        process = psutil.Process()
        while not self._stop.wait(0.001):
            self._peak = max(self._peak, process.memory_info().rss)

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        elif self._hwm:
            peak = _status_kib("VmHWM") * 1024
        else:
            self._stop.set()
            self._thread.join()
            peak = self._peak
        self.mb = max(0.0, (peak - self._start) / MIB)
