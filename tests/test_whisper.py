"""Whisper, the encoder-decoder family: pruning drops encoder frames before the decoder's
cross-attention. The generic exactness and count tests look for audio placeholders in a decoder
prompt; these check the same properties on the decoder's cross-attention input."""

import numpy as np
import pytest
import torch

import segprune
from segprune import METHODS, Setting, compare, keep_count, load_audio
from tests.conftest import scene

PROMPT = "ignored: Whisper transcribes"


class CrossAttentionSpy:
    """Records what the decoder's first cross-attention actually reads (its key_value_states)."""

    def __init__(self, lm):
        self.module = lm.language_model.layers[0].encoder_attn
        self.calls = []

    def __enter__(self):
        def grab(module, args, kwargs):
            if kwargs.get("key_value_states") is not None:
                self.calls.append(kwargs["key_value_states"].detach().clone())

        self.handle = self.module.register_forward_pre_hook(grab, with_kwargs=True)
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def native(lm, inputs, n):
    with torch.inference_mode():
        return lm.model.generate(**inputs, max_new_tokens=n, do_sample=False, num_beams=1)[0].tolist()


def test_keep_one_reproduces_whisper_for_every_method(tiny_models):
    lm = tiny_models["tiny-whisper"]
    audio = load_audio(scene(8.0))
    inputs = lm.inputs(audio, PROMPT)
    want = native(lm, inputs, 10)
    with CrossAttentionSpy(lm) as spy:
        c = compare(lm, audio, PROMPT, [Setting(m, 1.0) for m in METHODS], max_new_tokens=10, repeats=1)
    assert c.tokens.n == 1500 and c.full.token_ids == want
    assert all(p.run.token_ids == want for p in c.pruned), [p.setting.method for p in c.pruned]
    # the cross-attention reads exactly the encoder's own output, all 1500 frames
    with torch.inference_mode():
        encoder = lm.audio_encoder(inputs["input_features"]).last_hidden_state
    assert all(torch.equal(call, encoder) for call in spy.calls)
    # prefill (decoder prompt + cross-attention over the frames) predicts the first generated token
    x = lm.assemble(inputs, [c.tokens.embeddings])
    assert int(lm.prefill(x)[0, -1].argmax()) == want[0]
    assert x.prompt_tokens == x.input_ids.shape[1] + 1500 == c.full.prompt_tokens


@pytest.mark.parametrize("method", ["segmentwise", "visionzip", "random"])
def test_cross_attention_reads_exactly_k_kept_frames_in_order(tiny_models, method):
    lm = tiny_models["tiny-whisper"]
    audio = load_audio(scene(8.0))
    with CrossAttentionSpy(lm) as spy:
        c = compare(lm, audio, PROMPT, [Setting(method, 0.25)], max_new_tokens=3, repeats=1)
    p, k = c.pruned[0], keep_count(1500, 0.25)
    assert p.selection.k == k == p.run.audio_tokens and np.all(np.diff(p.selection.indices) > 0)
    pruned = [call for call in spy.calls if call.shape[1] == k]
    assert pruned and all(call.shape[1] in (1500, k) for call in spy.calls)
    expected = p.selection.embeddings if METHODS[method].merges else c.tokens.embeddings[p.selection.indices]
    assert torch.equal(pruned[-1][0], expected)
    assert c.full.prompt_tokens - p.run.prompt_tokens == 1500 - k


def test_whisper_scores_cover_all_1500_frames_of_the_window(tiny_models):
    """The decoder also reads the padding frames, so they are scored and selectable."""
    lm = tiny_models["tiny-whisper"]
    tokens = lm.encode(lm.inputs(load_audio(scene(5.0)), PROMPT))[0]
    assert tokens.n == 1500 and tokens.token_seconds[-1] == pytest.approx(29.98)
    assert tokens.scores.mean() == pytest.approx(1.0, abs=1e-4)


def test_pruner_context_prunes_whisper_encoder_frames(tiny_models):
    lm = tiny_models["tiny-whisper"]
    inputs = lm.inputs(load_audio(scene(6.0)), PROMPT)
    pruning = segprune.prune(lm.model, method="topk", keep_ratio=0.25)
    with CrossAttentionSpy(lm) as spy, pruning as pruner, torch.inference_mode():
        out = lm.model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert pruner.new_tokens_start == 0 and out.shape[1] == 4  # Whisper returns only the new tokens
    assert pruner.selections[0].k == keep_count(1500, 0.25)
    assert spy.calls and all(call.shape[1] == keep_count(1500, 0.25) for call in spy.calls)
    assert "generate" not in vars(lm.model)


def test_whisper_truncates_at_30_seconds(tiny_models):
    lm = tiny_models["tiny-whisper"]
    c = compare(lm, load_audio(scene(31.0)), PROMPT, [Setting("uniform", 0.5)], max_new_tokens=2, repeats=1)
    assert c.tokens.n == 1500 and c.truncated_seconds == pytest.approx(1.0)
