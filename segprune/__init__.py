"""segprune: attention-based audio token pruning for audio-language models.

After "Segmentwise Pruning in Audio-Language Models" (Gibier et al., arXiv 2511.14293): score each
audio token by the attention it receives in the audio encoder's last layer, keep K of them
(Segmentwise Top-K keeps the best floor(K/S) of each of S segments), and let the language model
prefill only those.

    import segprune
    lm = segprune.load_model("tiny-qwen2-audio")        # or "qwen2-audio", "audio-flamingo-3"
    c = segprune.compare(lm, "clip.wav", "Describe the sound.", [segprune.Setting("segmentwise", 0.25)])
    print(c.full.text, c.pruned[0].run.text, c.speedup(c.pruned[0]))
"""

from .audio import Audio, AudioError, load_audio
from .compare import Comparison, PrunedRun, Run, Setting, compare, prune_tokens
from .methods import DEFAULT_METHOD, DEFAULT_SEGMENTS, METHODS, Selection, get_method, keep_count, select
from .models import ModelLoadError, load_model, registry
from .pruner import Pruner, prune

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_METHOD",
    "DEFAULT_SEGMENTS",
    "METHODS",
    "Audio",
    "AudioError",
    "Comparison",
    "ModelLoadError",
    "PrunedRun",
    "Pruner",
    "Run",
    "Selection",
    "Setting",
    "compare",
    "get_method",
    "keep_count",
    "load_audio",
    "load_model",
    "prune",
    "prune_tokens",
    "registry",
    "select",
]
