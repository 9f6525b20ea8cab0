"""A context manager that prunes audio tokens inside an unchanged `model.generate(**inputs)` call.

    model = Qwen2AudioForConditionalGeneration.from_pretrained(...)
    inputs = processor(text=..., audio=..., return_tensors="pt")
    with segprune.prune(model, method="segmentwise", keep_ratio=0.25) as pruner:
        out = model.generate(**inputs, max_new_tokens=64)
    answer = processor.batch_decode(out[:, pruner.new_tokens_start:], skip_special_tokens=True)

Inside the context, this model instance's `generate` runs the audio path once (with the scoring
hook), keeps K tokens per clip, shrinks each placeholder run to K and hands `input_ids`,
`attention_mask` and `inputs_embeds` to the original `generate`. The returned sequences therefore
start with the PRUNED prompt (`pruner.new_tokens_start` tokens; 0 for Whisper, whose `generate`
returns only the new tokens, and whose encoder output is pruned before the decoder's
cross-attention instead of a placeholder run). Only this instance is patched, the patch is undone
on exit, also after an exception, and the model's train/eval mode is what it was (it runs in eval
mode inside). Calls without audio features (`input_features`; Phi-4: `audio_input_features`) pass
through. Contexts on one model instance in several threads take turns (a per-model lock held for
the `with` block), so each thread's `generate` is pruned with its own settings.
"""

from __future__ import annotations

import threading
import weakref

from torch import nn

from .comparison import Setting, prune_tokens
from .methods import DEFAULT_METHOD, Selection
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
    """Context manager; see the module docstring. `options` are the method's own (e.g.
    ``segments=10``; a method's unknown option is an error naming its options). After a call,
    `selections` holds one `Selection` per batch row and `new_tokens_start` the length of the
    pruned (padded) prompts, where the new tokens start."""

    def __init__(
        self,
        model: nn.Module,
        method: str = DEFAULT_METHOD,
        keep_ratio: float = 0.25,
        **options,
    ):
        self.setting = Setting(method, keep_ratio, **options)  # fails early on bad names and values
        self.model = model
        self.lm = family_for(model.config.model_type)(model, processor=None)
        self.selections: list[Selection] = []
        self.new_tokens_start = 0
        self._saved = None
        self._training = None
        self._lock = _patch_lock(model)

    def __enter__(self) -> Pruner:
        self._lock.acquire()  # another thread's context on this model ends first
        self._training = self.model.training
        self.model.eval()
        if "generate" in vars(self.model):
            self._saved = vars(self.model)["generate"]
        original = self.model.generate

        def generate(*args, **kwargs):
            if self.lm.audio_keys[0] not in kwargs:
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
            self.model.train(self._training)
        finally:
            self._lock.release()

    def _pruned_kwargs(self, kwargs: dict) -> dict:
        kwargs = dict(kwargs)
        rows = self.lm.encode(kwargs)
        chosen = [prune_tokens(tokens, self.setting) for tokens in rows]
        x = self.lm.assemble(kwargs, [kept for _, kept, _ in chosen])
        self.selections = [selection for selection, _, _ in chosen]
        self.new_tokens_start = x.new_tokens_start
        for key in (*self.lm.audio_keys, self.lm.feature_mask_key, *_PASSED_THROUGH):
            kwargs.pop(key, None)
        return {**kwargs, **x.generate_kwargs()}


prune = Pruner
