"""One benchmark run: the machine, the model and every measurement of `Options` -> a `Result`."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

from ..models.base import AudioLM
from . import measure, report
from .measure import Options
from .memory import method as memory_method
from .result import RANDOM_WEIGHTS_NOTE, SCHEMA, Result


def machine_info(device: torch.device) -> dict:
    import transformers

    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {
        "platform": platform.platform(),
        "processor": cpu_name(),
        "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "gpu": gpu,
        "load_before": load_average(),
        "load_after": None,
        "memory": memory_method(device),
    }


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> str | None:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return None


def model_info(lm: AudioLM, preset: str | None) -> dict:
    """What was timed: the adapter's key and name, weights, device, dtype, parameter counts and sizes."""
    return {
        "key": lm.key,
        "name": lm.name,
        "preset": preset,
        "random_weights": lm.random_weights,
        "device": str(lm.device),
        "dtype": str(lm.dtype).removeprefix("torch."),
        "params": lm.parameter_counts(),
        **lm.architecture(),
    }


def check_lengths(lm: AudioLM | type[AudioLM], seconds: list[float]) -> None:
    """ValueError (one sentence) for an audio length the model (or its adapter class) does not take."""
    for s in seconds:
        if not 0 < s <= lm.max_seconds:
            raise ValueError(f"{lm.key} takes 0 to {lm.max_seconds:g} s of audio; {s:g} s is out of range.")


def benchmark(lm: AudioLM, opts: Options, preset: str | None = None, log=measure.log_progress) -> Result:
    """Run every measurement of `opts` on `lm` and return the `Result` (fits and targets included)."""
    check_lengths(lm, opts.seconds)
    machine = machine_info(lm.device)
    rows = measure.run(lm, opts, log)
    machine["load_after"] = load_average()
    result = Result(
        schema=SCHEMA,
        note=RANDOM_WEIGHTS_NOTE if lm.random_weights else "",
        model=model_info(lm, preset),
        machine=machine,
        options=dict(vars(opts)),
        **rows,
    )
    result.scaling = report.scaling(result.prefill)
    result.targets = report.targets(result, result.model["encoder_layers"])
    return result
