"""The scoring hook against eager attention weights of the same layer, and its clean removal."""

import re
import sys

import numpy as np
import pytest
import torch
from transformers import AttentionInterface
from transformers.masking_utils import AttentionMaskInterface, eager_mask

from segprune.audio import load_audio
from segprune.scoring import ReceivedAttention, normalise, pool_scores
from tests.conftest import SECONDS, TINY_KEYS, expected_tokens, scene

CAPTURE = "segprune_test_eager_capture"


def audio_path_with_hook(lm, inputs, chunk_size=256, eager=True):
    """Run the family's audio path on `inputs` with the scoring hook on its last attention layer,
    and with EAGER attention in the encoder through a capturing attention function (registered
    under its own name through transformers' public AttentionInterface, with the eager mask
    format), which records the attention weights of the scoring layer as the model computes them,
    with the model's own masks, blocks and rotary embeddings.

    Returns (hook, spans per row, weights: one [rows, heads, q, k] tensor per attention call).
    With eager=False the encoder runs as configured (SDPA) and nothing is captured."""
    target, captured = lm.scoring_attentions(1)[0], []

    def capture(module, query, key, value, attention_mask, **kwargs):
        modeling = sys.modules[type(module).__module__]  # Phi-4's audio encoder: its own eager function
        eager = getattr(modeling, "simple_eager_attention_forward", None) or modeling.eager_attention_forward
        out, weights = eager(module, query, key, value, attention_mask, **kwargs)
        if module is target:
            captured.append(weights.detach().clone())
        return out, weights

    AttentionInterface.register(CAPTURE, capture)
    AttentionMaskInterface.register(CAPTURE, eager_mask)
    features, mask, _, rows, _ = lm.audio_inputs(inputs)
    config = lm.audio_encoder.config
    saved = config._attn_implementation
    config._attn_implementation = CAPTURE if eager else saved
    try:
        with ReceivedAttention(target, rows, lm.scoring_qk, chunk_size=chunk_size) as hook, torch.no_grad():
            lm.audio_embeddings(features, mask, inputs.get("input_ids"))
    finally:
        config._attn_implementation = saved
    return hook, rows, captured


def eager_received(rows, captured):
    """Per row, per span: the eager weights summed over the span's queries, averaged over heads,
    for the span's keys (one captured call per span for a block-diagonal encoder, else one call
    holding every row)."""
    spans = [span for row in rows for span in row]
    blocks = len(captured) == len(spans) > 1
    out = []
    for b, row in enumerate(rows):
        parts = []
        for span in row:
            w = captured.pop(0)[0] if blocks else captured[0][b, :, span.start :, span.start :]
            parts.append(w[:, : span.length, : span.length].sum(dim=1).mean(dim=0))
        out.append(torch.cat(parts))
    return out


@pytest.mark.parametrize("key", TINY_KEYS)
def test_hook_matches_eager_attention_of_last_layer(tiny_models, key):
    lm = tiny_models[key]
    seconds = SECONDS[key] + 2.3  # windowed families: a full window and a partial one
    inputs = lm.inputs(load_audio(scene(seconds)), "Describe the sound.")
    hook, rows, captured = audio_path_with_hook(lm, inputs, chunk_size=100)
    expected = eager_received(rows, captured)
    assert len(hook.scores) == len(expected) and sum(len(s) for s in expected) > 0
    for got, want, row in zip(hook.scores, expected, rows):
        assert got.shape == want.shape
        assert torch.max(torch.abs(got - want)).item() < 1e-5
        for span, part in zip(row, got.split([s.length for s in row])):
            if span.keys == span.length:  # each query spends 1 on the scored frames
                assert part.sum().item() == pytest.approx(span.length, rel=1e-4)
            else:  # GLM-ASR: valid queries also attend to the padding, which is not a candidate
                assert part.sum().item() < span.length


@pytest.mark.parametrize("key", TINY_KEYS)
def test_token_scores_pool_frames_like_the_encoder(tiny_models, key):
    lm = tiny_models[key]
    inputs = lm.inputs(load_audio(scene(7.0)), "Describe.")
    hook, _, _ = audio_path_with_hook(lm, inputs, eager=False)
    tokens = lm.encode(inputs)[0]
    frames = normalise(hook.scores[0])
    assert tokens.n == expected_tokens(lm, 7.0)  # e.g. 25 tokens per second, 12.5 for GLM-ASR
    per = lm.frames_per_token  # 2 frames averaged into a token, 4 concatenated (GLM-ASR, Voxtral), 1 (Whisper)
    want = frames[: per * tokens.n].view(tokens.n, per).mean(dim=1)
    np.testing.assert_allclose(tokens.scores, want.double().numpy(), atol=1e-6)
    assert abs(tokens.scores.mean() - 1.0) < 0.05  # mean 1 = uniform share


def test_scores_are_comparable_across_windows(tiny_models):
    """Two windows of the same sound get the same score scale (mean ~1 per window)."""
    lm = tiny_models["tiny-audio-flamingo-3"]
    clip = np.concatenate([scene(30.0, seed=3), scene(30.0, seed=3)])
    tokens = lm.encode(lm.inputs(load_audio(clip), "Describe."))[0]
    assert list(tokens.window_starts) == [0, 750]
    first, second = tokens.scores[:750], tokens.scores[750:]
    np.testing.assert_allclose(first, second, atol=1e-5)
    assert tokens.token_seconds[750] == pytest.approx(30.0)


def test_pool_scores_means_pairs():
    frames = torch.tensor([1.0, 3.0, 2.0, 2.0, 9.0])
    assert pool_scores(frames, 2).tolist() == [2.0, 2.0]


def test_hook_is_removed_on_exit_and_after_an_exception(tiny_models):
    lm = tiny_models["tiny-qwen2-audio"]
    attn = lm.scoring_attentions(1)[0]
    before = dict(attn._forward_pre_hooks)
    with ReceivedAttention(attn, [10]) as hook:
        assert hook.active and len(attn._forward_pre_hooks) == len(before) + 1
    assert not hook.active and dict(attn._forward_pre_hooks) == before
    with pytest.raises(RuntimeError, match="boom"), ReceivedAttention(attn, [10]):
        raise RuntimeError("boom")
    assert dict(attn._forward_pre_hooks) == before
    # an exception inside the forward pass itself (wrong batch size) also leaves no hook behind
    inputs = lm.inputs(load_audio(scene(2.0)), "Describe.")
    with pytest.raises(ValueError, match="batch rows"), ReceivedAttention(attn, [10, 10]):
        lm.audio_embeddings(inputs["input_features"], inputs["feature_attention_mask"])
    assert dict(attn._forward_pre_hooks) == before


def test_scoring_path_never_asks_for_output_attentions():
    """Only the benchmark's peer baseline may use output_attentions; the library's path never does."""
    import pathlib

    import segprune

    root = pathlib.Path(segprune.__file__).parent
    models = [p for p in (root / "models").rglob("*.py") if p.name != "eager.py"]  # eager.py: the baseline
    path = [root / "scoring.py", root / "comparison.py", root / "pruner.py", *models]
    offenders = [p.name for p in path if re.search(r"output_attentions\s*=|set_attn_implementation", p.read_text())]
    assert offenders == []


@pytest.mark.parametrize("key", TINY_KEYS)
def test_score_layers_average_the_last_layers(tiny_models, key):
    """score_layers=2 is the mean of the last two layers' received attention; 1 is the last layer."""
    lm = tiny_models[key]
    inputs = lm.inputs(load_audio(scene(6.0)), "Describe.")
    _, _, frame_lengths, rows, _ = lm.audio_inputs(inputs)
    second_last, last = lm.scoring_attentions(2)
    assert last is lm.scoring_attentions(1)[0]
    with ReceivedAttention(second_last, rows, lm.scoring_qk) as a, ReceivedAttention(last, rows, lm.scoring_qk) as b:
        one = lm.encode(inputs)[0]
    mean = [(x + y) / 2 for x, y in zip(a.scores, b.scores)]
    expected = torch.cat(lm.window_scores(mean, frame_lengths)).double().numpy()
    two = lm.encode(inputs, score_layers=2)[0]
    assert two.scores.shape == expected.shape == (two.n,)
    np.testing.assert_allclose(two.scores, expected, atol=1e-6)
    assert not np.allclose(one.scores, two.scores)
    assert torch.equal(one.embeddings, two.embeddings)  # the hooks never change the forward pass
    assert two.scoring_ms > 0
    with pytest.raises(ValueError, match="last 1 to"):
        lm.encode(inputs, score_layers=99)


def test_a_hook_removed_while_a_forward_dispatches_it_does_not_fail(tiny_models):
    """torch reads a module's pre-hooks from a snapshot and then asks whether each one takes kwargs;
    a hook removed in between (another request's scoring context closing while this thread runs
    the same layer) is called without kwargs. Reproduced deterministically: an earlier pre-hook
    closes the scoring context during dispatch. Before the fix this raised a TypeError."""
    lm = tiny_models["tiny-qwen2-audio"]
    inputs = lm.inputs(load_audio(scene(2.0)), "Describe.")
    attention = lm.scoring_attentions(1)[0]
    features, mask = inputs["input_features"], inputs["feature_attention_mask"]
    frames = lm.frame_lengths(mask.sum(-1))
    rows = lm.scoring_rows(frames, int(lm.frame_lengths(torch.tensor(features.shape[-1]))))
    hook = ReceivedAttention(attention, rows)
    closer = attention.register_forward_pre_hook(lambda module, args: hook.__exit__(None, None, None))
    # the closer must run first: move it to the front of the module's ordered hook dict
    hooks = attention._forward_pre_hooks
    with hook:
        hooks.move_to_end(hook._handle.id)
        try:
            with torch.inference_mode():
                lm.audio_embeddings(features, mask, None)
        finally:
            closer.remove()
    assert hook.scores is None and not hook.active  # it recorded nothing, and failed nothing
    assert dict(attention._forward_pre_hooks) == {}
