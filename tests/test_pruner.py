"""The context-managed pruner: model.generate(**processor_outputs) unchanged inside `with prune(model)`."""

import pytest
import torch

import segprune
from segprune import keep_count, load_audio
from tests.conftest import LLM_KEYS, TINY_KEYS, n_audio, new_tokens, scene

PROMPT = "Describe the sound."


def plain_generate(model, inputs, n=8):
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=n, do_sample=False)
    return new_tokens(out, inputs)


@pytest.mark.parametrize("key", TINY_KEYS)
def test_keep_one_inside_the_context_is_the_plain_model(tiny_models, key):
    lm = tiny_models[key]
    inputs = lm.inputs(load_audio(scene(8.0)), PROMPT)
    plain = plain_generate(lm.model, inputs)
    with segprune.prune(lm.model, method="segmentwise", keep_ratio=1.0) as pruner, torch.inference_mode():
        out = lm.model.generate(**inputs, max_new_tokens=8, do_sample=False)
    assert out[:, pruner.new_tokens_start :].tolist() == plain
    assert pruner.selections[0].k == n_audio(lm, inputs)


@pytest.mark.parametrize("key", LLM_KEYS)
def test_pruned_generate_feeds_k_tokens_and_undoes_the_patch(tiny_models, key):
    lm = tiny_models[key]
    inputs = lm.inputs(load_audio(scene(8.0)), PROMPT)
    n = int((inputs["input_ids"] == lm.audio_token_id).sum())
    assert "generate" not in vars(lm.model)
    with segprune.prune(lm.model, method="topk", keep_ratio=0.25) as pruner:
        assert "generate" in vars(lm.model)
        with torch.inference_mode():
            out = lm.model.generate(**inputs, max_new_tokens=4, do_sample=False)
    k = keep_count(n, 0.25)
    assert pruner.new_tokens_start == inputs["input_ids"].shape[1] - n + k
    assert (out[0, : pruner.new_tokens_start] == lm.audio_token_id).sum() == k
    assert pruner.selections[0].k == k
    assert "generate" not in vars(lm.model)  # the class method is back


def test_batch_of_two_clips_is_pruned_per_row(tiny_models):
    lm = tiny_models["tiny-qwen2-audio"]
    a, b = scene(6.0, seed=1), scene(3.0, seed=2)
    inputs = lm.processor(text=[lm.chat_text(PROMPT)] * 2, audio=[a, b], return_tensors="pt", padding=True)
    single = [plain_generate(lm.model, lm.inputs(load_audio(x), PROMPT), 5)[0] for x in (a, b)]
    with segprune.prune(lm.model, keep_ratio=1.0) as pruner, torch.inference_mode():
        out = lm.model.generate(**inputs, max_new_tokens=5, do_sample=False)
    assert [s.k for s in pruner.selections] == [150, 75]
    got = out[:, pruner.new_tokens_start :].tolist()
    eos = lm.model.generation_config.eos_token_id
    for row, want in zip(got, single):
        assert row[: len(want)] == want and all(t in (eos, lm.pad_token_id) for t in row[len(want) :])


def test_patch_is_undone_after_an_exception(tiny_models):
    lm = tiny_models["tiny-qwen2-audio"]
    with pytest.raises(RuntimeError, match="inside"), segprune.prune(lm.model, keep_ratio=0.5):
        raise RuntimeError("inside")
    assert "generate" not in vars(lm.model)
    inputs = lm.inputs(load_audio(scene(2.0)), PROMPT)
    bad = dict(inputs)
    bad["input_ids"] = bad["input_ids"][:, :5]  # no placeholders: pruning must fail cleanly
    with pytest.raises((ValueError, RuntimeError)), segprune.prune(lm.model, keep_ratio=0.5):
        lm.model.generate(**bad, max_new_tokens=2)
    assert "generate" not in vars(lm.model)


def test_bad_settings_fail_before_patching(tiny_models):
    lm = tiny_models["tiny-qwen2-audio"]
    with pytest.raises(ValueError, match=r"Unknown|available"):
        segprune.prune(lm.model, method="nope")
    with pytest.raises(ValueError):
        segprune.prune(lm.model, keep_ratio=0)
    assert "generate" not in vars(lm.model)
    with pytest.raises(ValueError, match="segments"):
        segprune.prune(lm.model, method="segmentwise", segmnts=4)  # a misspelled option names the real ones


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_the_models_mode_is_restored_on_exit(tiny_models, mode):
    lm = tiny_models["tiny-qwen2-audio"]
    model = lm.model
    model.train(mode == "train")
    try:
        inputs = lm.inputs(load_audio(scene(2.0)), PROMPT)
        with segprune.prune(model, keep_ratio=0.5):
            assert not model.training  # pruned generation runs without dropout
            with torch.inference_mode():
                model.generate(**inputs, max_new_tokens=2, do_sample=False)
        assert model.training is (mode == "train")
        assert all(m.training is (mode == "train") for m in model.modules())
    finally:
        model.eval()


@pytest.mark.parametrize("key", LLM_KEYS)
@pytest.mark.parametrize("method", ["segmentwise", "bottomk", "visionzip"])
def test_the_language_model_receives_the_selected_embeddings(tiny_models, key, method):
    """Spy on the language model's input inside `segprune.prune`: its audio rows are exactly the
    selected embeddings (the encoder's own rows at the kept indices, or the merged rows), in order.
    Feeding the first K encoder embeddings instead of the selected K fails here."""
    lm = tiny_models[key]
    inputs = lm.inputs(load_audio(scene(8.0, seed=3)), PROMPT)
    tokens = lm.encode(inputs)[0]
    calls = []
    handle = lm.language_model.layers[0].register_forward_pre_hook(  # the first decoder layer's input
        lambda module, args, kwargs: calls.append((args[0] if args else kwargs["hidden_states"]).detach().clone()),
        with_kwargs=True,
    )
    try:
        with segprune.prune(lm.model, method=method, keep_ratio=0.25) as pruner, torch.inference_mode():
            out = lm.model.generate(**inputs, max_new_tokens=2, do_sample=False)
    finally:
        handle.remove()
    selection = pruner.selections[0]
    want = selection.embeddings if selection.embeddings is not None else tokens.embeddings[selection.indices]
    prompt = out[0, : pruner.new_tokens_start]
    got = calls[0][0][prompt == lm.audio_token_id]  # the prefill's rows at the audio placeholders
    assert got.shape == want.shape and selection.k == keep_count(tokens.n, 0.25)
    torch.testing.assert_close(got, want.to(got.dtype), rtol=0, atol=0)
    assert not torch.equal(got, tokens.embeddings[: selection.k])  # not simply the first K
