"""Model-size presets: a family's real architecture with random weights, built without a download.

Presets are JSON files in `segprune/presets/`: ``<preset>-<family key>.json`` for one family
(``full-qwen2-audio.json`` is Qwen2-Audio-7B-Instruct's architecture) or ``<preset>.json`` for
every family (``mid.json``, sized for a CPU). Each holds the encoder config fields (``audio``),
the LLM config fields (``text``) and where the numbers come from (``sources``). The preset
``tiny`` is each family's built-in tiny variant.

    lm = build(Qwen2AudioLM, "full", device="cuda", dtype=torch.bfloat16)

builds directly on the device in the target dtype (the default dtype and device are set while
the model is constructed), so a 7B model never exists in float32 on the host.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import psutil
import torch

from ..models.base import AudioLM
from ..models.tiny import tiny_model

PRESETS_DIR = Path(__file__).resolve().parent.parent / "presets"
TINY = "tiny"
INIT_STD = 0.02  # transformers' default initializer_range: activations stay finite over many layers


# The generic presets (mid, quick) describe a Whisper encoder and a Qwen2-style LLM; Whisper's own
# decoder is no such LLM, so Whisper has the tiny preset only (its real checkpoints load by id).
NO_GENERIC_PRESETS = frozenset({"whisper"})


def preset_names(key: str) -> list[str]:
    """Presets available for the family `key` (e.g. "qwen2-audio")."""
    names = {TINY}
    for path in PRESETS_DIR.glob("*.json"):
        name, _, family = path.stem.partition("-")
        if family == key or (not family and key not in NO_GENERIC_PRESETS):
            names.add(name)
    return sorted(names)


def load_preset(key: str, name: str) -> dict:
    """The preset `name` for family `key` as a dict with "audio", "text", "description", "sources"."""
    generic = () if key in NO_GENERIC_PRESETS else (PRESETS_DIR / f"{name}.json",)
    for path in (PRESETS_DIR / f"{name}-{key}.json", *generic):
        if path.is_file():
            return json.loads(path.read_text())
    raise ValueError(f"No preset {name!r} for {key}; available: {', '.join(preset_names(key))}.")


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def _construct(family: type[AudioLM], name: str, device, dtype: torch.dtype) -> AudioLM:
    if name == TINY:
        lm = tiny_model(family)
        lm.model.to(device=device, dtype=dtype)
        return lm
    spec = load_preset(family.key, name)
    with torch.device(device), default_dtype(dtype):
        return family.random_init(spec["audio"], spec["text"], name=f"{family.key} [{name} preset]", init_std=INIT_STD)


def parameter_count(family: type[AudioLM], name: str) -> dict:
    """Parameters of the preset, counted on the meta device (nothing is allocated)."""
    return _construct(family, name, "meta", torch.float32).parameter_counts()


def build(family: type[AudioLM], name: str, device, dtype: torch.dtype) -> AudioLM:
    """The family at preset `name`, random weights, on `device` in `dtype`.

    Raises ValueError (one sentence) when the weights would not fit in the free memory.
    """
    device = torch.device(device)
    need = parameter_count(family, name)["total"] * torch.empty((), dtype=dtype).element_size()
    free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else psutil.virtual_memory().available
    if need > 0.9 * free:
        raise ValueError(
            f"The {name} preset of {family.key} needs {need / 2**30:.1f} GiB for its weights in "
            f"{str(dtype).removeprefix('torch.')} but only "
            f"{free / 2**30:.1f} GiB are free on {device}; use a GPU or a smaller preset "
            f"({', '.join(preset_names(family.key))})."
        )
    lm = _construct(family, name, device, dtype)
    lm.model.eval()
    return lm
