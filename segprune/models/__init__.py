"""Model families and how to load them by registry key, hub id or local folder.

    load_model("tiny-qwen2-audio")              offline, random weights, seconds
    load_model("qwen2-audio")                   Qwen/Qwen2-Audio-7B-Instruct from the hub
    load_model("nvidia/audio-flamingo-3-hf")    any hub id of a supported family
    load_model("/path/saved_with_save_pretrained")

A family is one adapter class (see `base.AudioLM`); adding one means adding it to `FAMILIES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .audioflamingo3 import AudioFlamingo3LM
from .base import AudioLM, AudioTokens, Generation, LLMInputs
from .glmasr import GlmAsrLM
from .musicflamingo import MusicFlamingoLM
from .qwen2_5_omni import Qwen25OmniLM
from .qwen2_audio import Qwen2AudioLM
from .tiny import RANDOM_WEIGHTS_NOTE
from .voxtral import VoxtralLM
from .whisper import WhisperLM

FAMILIES: tuple[type[AudioLM], ...] = (
    Qwen2AudioLM,
    AudioFlamingo3LM,
    MusicFlamingoLM,
    GlmAsrLM,
    VoxtralLM,
    Qwen25OmniLM,
    WhisperLM,
)
DEFAULT_MODEL = "qwen2-audio"


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message is one sentence meant for a person."""


@dataclass(frozen=True)
class ModelSpec:
    """A registry entry: `key` loads `family` from `hub_id`, or builds it offline if `tiny`
    (then `hub_id` is None)."""

    key: str
    family: type[AudioLM]
    tiny: bool
    hub_id: str | None = None


def registry() -> dict[str, ModelSpec]:
    """Every registry key: the real model(s) of each family and its tiny random-weight twin."""
    specs = {}
    for family in FAMILIES:
        for key, hub_id in family.registry_keys().items():
            specs[key] = ModelSpec(key, family, tiny=False, hub_id=hub_id)
        specs[f"tiny-{family.key}"] = ModelSpec(f"tiny-{family.key}", family, tiny=True)
    return specs


def tiny_keys() -> list[str]:
    return [key for key, spec in registry().items() if spec.tiny]


def family_for(model_type: str) -> type[AudioLM]:
    """The adapter class for a transformers `config.model_type`."""
    for family in FAMILIES:
        if model_type == family.model_type or model_type in family.model_type_aliases:
            return family
    supported = ", ".join(f"{f.model_type} ({f.key})" for f in FAMILIES)
    raise ModelLoadError(f"Model type '{model_type}' is not supported; supported model types: {supported}.")


def default_dtype(device: torch.device, random_weights: bool) -> torch.dtype:
    """float32 on the CPU (real and random weights: bfloat16 there is slow and changes real
    models' transcripts against float32); bfloat16 on accelerators. `random_weights` is unused."""
    return torch.float32 if device.type == "cpu" else torch.bfloat16


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_model(name: str, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> AudioLM:
    """Load a model by registry key (see `registry()`), hub id or local folder.

    Raises ModelLoadError with one plain sentence when it cannot (unknown key, hub unreachable,
    unsupported family).
    """
    device = torch.device(device) if device is not None else default_device()
    spec = registry().get(name)
    if spec is not None and spec.tiny:
        lm = spec.family.tiny()
        lm.model.to(device=device, dtype=dtype or default_dtype(device, True))
        return lm
    source = spec.hub_id if spec is not None else name
    family = spec.family if spec is not None else _family_of(source)
    return _from_pretrained(family, source, device, dtype)


def _family_of(source: str) -> type[AudioLM]:
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as err:
        raise ModelLoadError(_unreachable(source, err)) from None
    return family_for(config.model_type)


def _from_pretrained(family: type[AudioLM], source: str, device: torch.device, dtype) -> AudioLM:
    from transformers import AutoConfig

    is_local = Path(source).is_dir()
    try:
        config = AutoConfig.from_pretrained(source)
        random_weights = bool(getattr(config, "segprune_random_weights", False))
        model = family.load_pretrained(source, dtype or default_dtype(device, random_weights), device)
        processor = family.load_processor(source)
    except ImportError as err:  # e.g. Voxtral's processor without mistral-common
        raise ModelLoadError(f"Loading '{source}' needs a package that is not installed: {_first_line(err)}") from None
    except (OSError, ValueError) as err:
        if is_local:
            raise ModelLoadError(f"Could not load the model saved in {source}: {_first_line(err)}") from None
        raise ModelLoadError(_unreachable(source, err)) from None
    return family(model, processor, name=source)


def _unreachable(source: str, err: Exception) -> str:
    tiny = " or ".join(tiny_keys())
    return (
        f"Could not load '{source}': it is not a local folder and the Hugging Face Hub is unreachable "
        f"or has no such model ({_first_line(err)}); offline, use a tiny random-weight model: --model {tiny}."
    )


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__


__all__ = [
    "DEFAULT_MODEL",
    "FAMILIES",
    "RANDOM_WEIGHTS_NOTE",
    "AudioLM",
    "AudioTokens",
    "Generation",
    "LLMInputs",
    "ModelLoadError",
    "ModelSpec",
    "family_for",
    "load_model",
    "registry",
    "tiny_keys",
]
