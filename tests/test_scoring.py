"""The scoring hook against eager attention weights of the same layer, and its clean removal."""

import numpy as np
import pytest
import torch
from transformers.masking_utils import create_bidirectional_mask

from segprune.audio import load_audio
from segprune.scoring import ReceivedAttention, pool_scores
from tests.conftest import TINY_KEYS, scene


def capture_layer_input(lm, inputs):
    """Run the audio path once and capture the last attention layer's input hidden states."""
    seen = {}

    def grab(module, args, kwargs):
        seen["hidden"] = (args[0] if args else kwargs["hidden_states"]).detach().clone()

    attn = lm._scoring_attention()
    handle = attn.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        lm.encode(inputs)
    finally:
        handle.remove()
    return attn, seen["hidden"]


def eager_received(lm, attn, hidden, frame_lengths):
    """Received attention from the layer's own eager attention weights [B, heads, T, T]."""
    config = lm.model.model.audio_tower.config
    saved = config._attn_implementation
    config._attn_implementation = "eager"
    try:
        t = hidden.shape[1]
        valid = torch.arange(t)[None, :] < frame_lengths[:, None]
        mask = create_bidirectional_mask(config=config, inputs_embeds=hidden, attention_mask=valid.long())
        with torch.no_grad():
            _, weights = attn(hidden_states=hidden, attention_mask=mask)
    finally:
        config._attn_implementation = saved
    out = []
    for b, n in enumerate(frame_lengths.tolist()):
        out.append(weights[b, :, :n, :n].sum(dim=1).mean(dim=0))  # sum over valid queries, mean over heads
    return out


@pytest.mark.parametrize("key", TINY_KEYS)
def test_hook_matches_eager_attention_of_last_layer(tiny_models, key):
    lm = tiny_models[key]
    seconds = 45.0 if "flamingo" in key else 12.3  # AF3: a full window and a partial one
    inputs = lm.inputs(load_audio(scene(seconds)), "Describe the sound.")
    attn, hidden = capture_layer_input(lm, inputs)
    frame_lengths = lm._frame_lengths(inputs[lm.feature_mask_key].sum(-1))
    expected = eager_received(lm, attn, hidden, frame_lengths)
    with ReceivedAttention(attn, frame_lengths.tolist(), lm.scoring_qk, chunk_size=100) as hook, torch.no_grad():
        attn(hidden_states=hidden, attention_mask=None)
    assert len(hook.scores) == len(expected)
    for got, want in zip(hook.scores, expected):
        assert got.shape == want.shape
        assert torch.max(torch.abs(got - want)).item() < 1e-5
        assert got.sum().item() == pytest.approx(len(got), rel=1e-4)  # each valid query spends 1


@pytest.mark.parametrize("key", TINY_KEYS)
def test_token_scores_pool_frames_like_the_encoder(tiny_models, key):
    lm = tiny_models[key]
    inputs = lm.inputs(load_audio(scene(7.0)), "Describe.")
    attn, hidden = capture_layer_input(lm, inputs)
    frame_lengths = lm._frame_lengths(inputs[lm.feature_mask_key].sum(-1))
    with ReceivedAttention(attn, frame_lengths.tolist(), lm.scoring_qk) as hook, torch.no_grad():
        attn(hidden_states=hidden, attention_mask=None)
    tokens = lm.encode(inputs)[0]
    frames = hook.scores[0]
    assert tokens.n == 175  # 25 tokens per second
    want = (frames[0 : 2 * tokens.n : 2] + frames[1 : 2 * tokens.n : 2]) / 2
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
    attn = lm._scoring_attention()
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
        lm._audio_embeddings(inputs["input_features"], inputs["feature_attention_mask"])
    assert dict(attn._forward_pre_hooks) == before


def test_scoring_path_never_asks_for_output_attentions():
    """Only the benchmark's peer baseline may use output_attentions; the library's path never does."""
    import pathlib

    import segprune

    root = pathlib.Path(segprune.__file__).parent
    path = [root / "scoring.py", root / "compare.py", root / "pruner.py", *(root / "models").rglob("*.py")]
    offenders = [p.name for p in path if "output_attentions=" in p.read_text()]
    assert offenders == []
