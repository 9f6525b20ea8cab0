"""segprune: attention-based audio token pruning for audio-language models.

After "Segmentwise Pruning in Audio-Language Models" (Gibier et al., arXiv 2511.14293): score each
audio token by the attention it receives in the audio encoder's last layer, keep K of them
(Segmentwise Top-K keeps the best floor(K/S) of each of S segments), and let the language model
prefill only those.

    import segprune
    lm = segprune.load_model("tiny-qwen2-audio")        # or "qwen2-audio", "audio-flamingo-3"
    c = segprune.compare(lm, "assets/scene.flac", "Describe the sound.", [segprune.Setting("segmentwise", 0.25)])
    print(c.full.text, c.pruned[0].run.text, c.speedup(c.pruned[0]).verdict)

The names below are imported on first use, so `import segprune.methods` (or `segprune.audio`)
loads no model code.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "Audio": "audio",
    "AudioError": "audio",
    "load_audio": "audio",
    "Comparison": "comparison",
    "PrunedRun": "comparison",
    "Run": "comparison",
    "Setting": "comparison",
    "compare": "comparison",
    "prune_tokens": "comparison",
    "DEFAULT_METHOD": "methods",
    "DEFAULT_SEGMENTS": "methods",
    "METHODS": "methods",
    "Selection": "methods",
    "get_method": "methods",
    "keep_count": "methods",
    "make_method": "methods",
    "select": "methods",
    "ModelLoadError": "models",
    "load_model": "models",
    "registry": "models",
    "Pruner": "pruner",
    "prune": "pruner",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'segprune' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
