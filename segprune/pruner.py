"""A context manager that prunes audio tokens inside an unchanged `model.generate(**inputs)` call.

    model = Qwen2AudioForConditionalGeneration.from_pretrained(...)
    inputs = processor(text=..., audio=..., return_tensors="pt")
    with segprune.prune(model, method="segmentwise", keep_ratio=0.25) as pruner:
        out = model.generate(**inputs, max_new_tokens=64)
    answer = processor.batch_decode(out[:, pruner.prompt_length:], skip_special_tokens=True)

Inside the context, this model instance's `generate` runs the audio path once (with the scoring
hook), keeps K tokens per clip, shrinks each placeholder run to K and hands `input_ids`,
`attention_mask` and `inputs_embeds` to the original `generate`. The returned sequences therefore
start with the PRUNED prompt (`pruner.prompt_length` tokens; 0 for Whisper, whose `generate` returns
only the new tokens, and whose encoder output is pruned before the decoder's cross-attention
instead of a placeholder run). Only this instance is patched, and
the patch is undone on exit, also after an exception. Calls without `input_features` pass through.
Contexts on one model instance in several threads take turns (a per-model lock held for the
`with` block), so each thread's `generate` is pruned with its own settings.
"""

from __future__ import annotations

import threading
import weakref

from torch import nn

from .compare import Setting, prune_tokens
from .methods import DEFAULT_METHOD, DEFAULT_SEGMENTS, Selection, get_method, keep_count
from .models import family_for

_PASSED_THROUGH = ("input_ids", "attention_mask", "inputs_embeds")
_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> RLock of its patch
_LOCKS_GUARD = threading.Lock()


def _patch_lock(model: nn.Module) -> threading.RLock:
    """The lock that one model instance's `generate` patch is held under (re-entrant: a thread may nest)."""
    with _LOCKS_GUARD:
        if model not in _LOCKS:
            _LOCKS[model] = threading.RLock()
        return _LOCKS[model]


class Pruner:
    """Context manager; see the module docstring. After a call, `selections` holds one
    `Selection` per batch row and `prompt_length` the length of the pruned (padded) prompts."""

    def __init__(
        self,
        model: nn.Module,
        method: str = DEFAULT_METHOD,
        keep_ratio: float = 0.25,
        segments: int = DEFAULT_SEGMENTS,
        seed: int = 0,
    ):
        get_method(method)  # fail early on unknown names
        keep_count(1, keep_ratio)  # and on bad ratios
        self.model = model
        self.setting = Setting(method, keep_ratio, segments, seed)
        self.lm = family_for(model.config.model_type)(model, processor=None)
        self.selections: list[Selection] = []
        self.prompt_length = 0
        self._saved = None
        self._lock = _patch_lock(model)

    def __enter__(self) -> Pruner:
        self._lock.acquire()  # another thread's context on this model ends first
        if "generate" in vars(self.model):
            self._saved = vars(self.model)["generate"]
        original = self.model.generate

        def generate(*args, **kwargs):
            if "input_features" not in kwargs:
                return original(*args, **kwargs)
            return original(*args, **self._pruned_kwargs(kwargs))

        self.model.generate = generate
        return self

    def __exit__(self, *exc) -> None:
        try:
            del self.model.generate
            if self._saved is not None:
                self.model.generate = self._saved
                self._saved = None
        finally:
            self._lock.release()

    def _pruned_kwargs(self, kwargs: dict) -> dict:
        kwargs = dict(kwargs)
        rows = self.lm.encode(kwargs)
        chosen = [prune_tokens(tokens, self.setting) for tokens in rows]
        x = self.lm.assemble(kwargs, [kept for _, kept, _ in chosen])
        self.selections = [selection for selection, _, _ in chosen]
        self.prompt_length = x.sequence_offset
        for key in ("input_features", self.lm.feature_mask_key, *_PASSED_THROUGH):
            kwargs.pop(key, None)
        return {**kwargs, **x.generate_kwargs()}


prune = Pruner
