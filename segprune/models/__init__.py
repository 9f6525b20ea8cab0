"""Model families and how to load them by registry key, hub id or local folder.

    load_model("tiny-qwen2-audio")              offline, random weights, seconds
    load_model("qwen2-audio")                   Qwen/Qwen2-Audio-7B-Instruct from the hub
    load_model("nvidia/audio-flamingo-3-hf")    any hub id of a supported family
    load_model("/path/saved_with_save_pretrained")

A family is one adapter file (see `base.AudioLM`) and one `Family` line in `FAMILIES` below. The
table is plain data, so listing the models (`registry()`, `--help`) imports no model code; an
adapter module (and the transformers classes it uses) is imported when a model is loaded.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the adapter contract, imported lazily at run time (it imports torch)
    import torch

    from .base import AudioLM

DEFAULT_MODEL = "qwen2-audio"
RANDOM_WEIGHTS_NOTE = "random weights: the generated text is meaningless; token selection, counts and timings are real"


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message is one sentence meant for a person."""


@dataclass(frozen=True)
class Family:
    """One adapter class, by where it lives, the `config.model_type`s it loads and its hub ids."""

    key: str  # the adapter's key; its tiny variant is "tiny-<key>"
    module: str  # module under segprune.models
    adapter: str  # class name in that module
    model_types: tuple[str, ...]
    hub_ids: dict[str, str] = field(default_factory=dict)  # registry key -> hub id

    def load(self) -> type[AudioLM]:
        """The adapter class (imports its module and the transformers classes it uses)."""
        return getattr(importlib.import_module(f".{self.module}", __name__), self.adapter)


WHISPER_SIZES = ("tiny", "base", "small", "medium", "large-v3", "large-v3-turbo")

FAMILIES: tuple[Family, ...] = (
    Family(
        "qwen2-audio", "qwen2_audio", "Qwen2AudioLM", ("qwen2_audio",), {"qwen2-audio": "Qwen/Qwen2-Audio-7B-Instruct"}
    ),
    Family(
        "audio-flamingo-3",
        "audioflamingo3",
        "AudioFlamingo3LM",
        ("audioflamingo3",),
        {"audio-flamingo-3": "nvidia/audio-flamingo-3-hf"},
    ),
    Family(
        "music-flamingo",
        "musicflamingo",
        "MusicFlamingoLM",
        ("musicflamingo",),
        {"music-flamingo": "nvidia/music-flamingo-2601-hf"},
    ),
    Family(
        "audio-flamingo-next",
        "musicflamingo",
        "AudioFlamingoNextLM",
        ("musicflamingo",),  # MusicFlamingo's classes: a hub folder loads as `music-flamingo`, its processor's limit
        {
            "audio-flamingo-next": "nvidia/audio-flamingo-next-hf",
            "audio-flamingo-next-think": "nvidia/audio-flamingo-next-think-hf",
            "audio-flamingo-next-captioner": "nvidia/audio-flamingo-next-captioner-hf",
        },
    ),
    Family("glm-asr", "glmasr", "GlmAsrLM", ("glmasr",), {"glm-asr": "zai-org/GLM-ASR-Nano-2512"}),
    Family(
        "voxtral-mini",
        "voxtral",
        "VoxtralLM",
        ("voxtral",),
        {"voxtral-mini": "mistralai/Voxtral-Mini-3B-2507", "voxtral-small": "mistralai/Voxtral-Small-24B-2507"},
    ),
    Family(
        "qwen2.5-omni",
        "qwen2_5_omni",
        "Qwen25OmniLM",
        ("qwen2_5_omni_thinker", "qwen2_5_omni"),  # the full checkpoint: its thinker is loaded
        {"qwen2.5-omni": "Qwen/Qwen2.5-Omni-3B", "qwen2.5-omni-7b": "Qwen/Qwen2.5-Omni-7B"},
    ),
    Family(
        "qwen3-omni",
        "qwen3_omni",
        "Qwen3OmniLM",
        ("qwen3_omni_moe_thinker", "qwen3_omni_moe"),  # the full checkpoint: its thinker is loaded
        {
            "qwen3-omni": "Qwen/Qwen3-Omni-30B-A3B-Instruct",
            "qwen3-omni-thinking": "Qwen/Qwen3-Omni-30B-A3B-Thinking",
            "qwen3-omni-captioner": "Qwen/Qwen3-Omni-30B-A3B-Captioner",
        },
    ),
    Family(
        "phi-4-multimodal",
        "phi4_multimodal",
        "Phi4MultimodalLM",
        ("phi4_multimodal",),
        {"phi-4-multimodal": "microsoft/Phi-4-multimodal-instruct"},
    ),
    Family(
        "whisper",
        "whisper",
        "WhisperLM",
        ("whisper",),
        {f"whisper-{size}": f"openai/whisper-{size}" for size in WHISPER_SIZES},
    ),
)


@dataclass(frozen=True)
class ModelSpec:
    """A registry entry: `key` loads `family` from `hub_id`, or builds it offline if `tiny`
    (then `hub_id` is None)."""

    key: str
    family: Family
    tiny: bool
    hub_id: str | None = None


def registry() -> dict[str, ModelSpec]:
    """Every registry key: the real model(s) of each family and its tiny random-weight twin."""
    specs = {}
    for family in FAMILIES:
        for key, hub_id in family.hub_ids.items():
            specs[key] = ModelSpec(key, family, tiny=False, hub_id=hub_id)
        specs[f"tiny-{family.key}"] = ModelSpec(f"tiny-{family.key}", family, tiny=True)
    return specs


def tiny_keys() -> list[str]:
    return [key for key, spec in registry().items() if spec.tiny]


def family_of_type(model_type: str) -> Family:
    """The family that loads a transformers `config.model_type`; ModelLoadError naming the supported ones."""
    for family in FAMILIES:
        if model_type in family.model_types:
            return family
    supported = ", ".join(f"{f.model_types[0]} ({f.key})" for f in FAMILIES)
    raise ModelLoadError(f"Model type '{model_type}' is not supported; supported model types: {supported}.")


def family_of_config(config) -> Family:
    """The family that loads a transformers config: the one the config names in
    ``segprune_adapter`` (written by segprune's builders where two adapters share a model type:
    MusicFlamingo and Audio Flamingo Next), else the first by `config.model_type`."""
    named = getattr(config, "segprune_adapter", None)
    for family in FAMILIES:
        if family.key == named and config.model_type in family.model_types:
            return family
    return family_of_type(config.model_type)


def family_for(model_type: str) -> type[AudioLM]:
    """The adapter class for a transformers `config.model_type`."""
    return family_of_type(model_type).load()


def default_dtype(device: torch.device, random_weights: bool = False) -> torch.dtype:
    """float32 on the CPU (bfloat16 changes real transcripts there and is rarely faster); bfloat16
    on accelerators."""
    import torch

    return torch.float32 if torch.device(device).type == "cpu" else torch.bfloat16


def default_device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_model(name: str, device=None, dtype=None) -> AudioLM:
    """Load a model by registry key (see `registry()`), hub id or local folder.

    Raises ModelLoadError with one plain sentence when it cannot (unknown key, hub unreachable,
    unsupported family).
    """
    import torch

    from .tiny import tiny_model

    device = torch.device(device) if device is not None else default_device()
    spec = registry().get(name)
    if spec is not None and spec.tiny:
        lm = tiny_model(spec.family.load())
        lm.model.to(device=device, dtype=dtype or default_dtype(device, True))
        return lm
    source = spec.hub_id if spec is not None else name
    family = spec.family if spec is not None else _family_of(source)
    return _from_pretrained(family.load(), source, device, dtype)


def _family_of(source: str) -> Family:
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as err:
        raise ModelLoadError(_unreachable(source, err)) from None
    return family_of_config(config)


def _from_pretrained(adapter: type[AudioLM], source: str, device, dtype) -> AudioLM:
    from transformers import AutoConfig

    is_local = Path(source).is_dir()
    try:
        config = AutoConfig.from_pretrained(source)
        random_weights = bool(getattr(config, "segprune_random_weights", False))
        model = adapter.load_pretrained(source, dtype or default_dtype(device, random_weights), device)
        processor = adapter.load_processor(source)
    except ImportError as err:  # e.g. Voxtral's processor without mistral-common
        raise ModelLoadError(f"Loading '{source}' needs a package that is not installed: {first_line(err)}") from None
    except (OSError, ValueError) as err:
        if is_local:
            raise ModelLoadError(f"Could not load the model saved in {source}: {first_line(err)}") from None
        raise ModelLoadError(_unreachable(source, err)) from None
    return adapter(model.eval(), processor, name=source)


def _unreachable(source: str, err: Exception) -> str:
    tiny = " or ".join(tiny_keys())
    return (
        f"Could not load '{source}': it is not a local folder and the Hugging Face Hub is unreachable "
        f"or has no such model ({first_line(err)}); offline, use a tiny random-weight model: --model {tiny}."
    )


def first_line(err: Exception) -> str:
    """The first line of an exception's message, at most 200 characters (its type name if empty)."""
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__


__all__ = [
    "DEFAULT_MODEL",
    "FAMILIES",
    "RANDOM_WEIGHTS_NOTE",
    "Family",
    "ModelLoadError",
    "ModelSpec",
    "default_device",
    "default_dtype",
    "family_for",
    "family_of_config",
    "family_of_type",
    "first_line",
    "load_model",
    "registry",
    "tiny_keys",
]
