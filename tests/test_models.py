"""The core correctness tests on the tiny real model classes, for every family and method.

keep 1.0 must reproduce the unpruned model exactly; at keep 0.25 the language model must receive
exactly K audio embeddings, the encoder's own embeddings at the kept indices, in temporal order.
"""

import numpy as np
import pytest
import torch

from segprune import METHODS, Setting, compare, keep_count, load_audio, load_model, prune_tokens
from segprune.models import ModelLoadError, registry
from tests.conftest import TINY_KEYS, scene

SECONDS = {"tiny-qwen2-audio": 10.0, "tiny-audio-flamingo-3": 45.0}
PROMPT = "What happens in this recording?"


def native_generate(lm, inputs, max_new_tokens):
    """The family's own unpruned path: model.generate on the processor output."""
    with torch.inference_mode():
        out = lm.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1)
    return out[0, inputs["input_ids"].shape[1] :].tolist()


def native_logits(lm, inputs):
    """Next-token logits of the family's own forward on the processor output."""
    with torch.inference_mode():
        return lm.model(**inputs).logits[:, -1]


class LLMInputSpy:
    """Records the inputs_embeds of every language-model call (the LLM's ACTUAL input)."""

    def __init__(self, lm):
        self.module = lm.language_model
        self.calls = []

    def __enter__(self):
        def grab(module, args, kwargs):
            self.calls.append(kwargs["inputs_embeds"].detach().clone())

        self.handle = self.module.register_forward_pre_hook(grab, with_kwargs=True)
        return self

    def __exit__(self, *exc):
        self.handle.remove()


@pytest.mark.parametrize("key", TINY_KEYS)
def test_keep_one_reproduces_the_unpruned_model_for_every_method(tiny_models, key):
    lm = tiny_models[key]
    audio = load_audio(scene(SECONDS[key]))
    inputs = lm.inputs(audio, PROMPT)
    native = native_generate(lm, inputs, 12)
    c = compare(lm, audio, PROMPT, [Setting(m, 1.0) for m in METHODS], max_new_tokens=12, repeats=1)
    assert c.full.token_ids == native
    for p in c.pruned:
        assert p.selection.k == c.tokens.n
        assert p.run.token_ids == native, p.setting.method
        assert p.run.prompt_tokens == c.full.prompt_tokens == inputs["input_ids"].shape[1]
    # stronger than ids: the language model's actual input is bit-identical to the native path's
    tokens = lm.encode(inputs)[0]
    ours = lm.assemble(inputs, [tokens.embeddings])
    with LLMInputSpy(lm) as spy:
        logits = native_logits(lm, inputs)
    assert torch.equal(spy.calls[0], ours.inputs_embeds)
    assert torch.allclose(lm.prefill(ours)[:, -1], logits, atol=1e-5)


@pytest.mark.parametrize("key", TINY_KEYS)
def test_pruning_changes_what_the_model_sees(tiny_models, key):
    """The exactness test above could not pass by accident: fewer tokens give other logits."""
    lm = tiny_models[key]
    inputs = lm.inputs(load_audio(scene(SECONDS[key])), PROMPT)
    tokens = lm.encode(inputs)[0]
    full = lm.prefill(lm.assemble(inputs, [tokens.embeddings]))
    half = lm.prefill(lm.assemble(inputs, [tokens.embeddings[::4]]))
    assert not torch.allclose(full, half)


@pytest.fixture(scope="module")
def encoded(tiny_models):
    """One encoding per family, shared by the per-method tests (as in the app: encode once)."""
    out = {}
    for key in TINY_KEYS:
        lm = tiny_models[key]
        inputs = lm.inputs(load_audio(scene(SECONDS[key])), PROMPT)
        out[key] = (inputs, lm.encode(inputs)[0])
    return out


@pytest.mark.parametrize("key", TINY_KEYS)
@pytest.mark.parametrize("method", list(METHODS))
def test_llm_receives_exactly_k_kept_embeddings_in_order(tiny_models, encoded, key, method):
    lm = tiny_models[key]
    inputs, tokens = encoded[key]
    ids = inputs["input_ids"][0]
    audio_pos = torch.nonzero(ids == lm.audio_token_id).flatten()
    n, start = len(audio_pos), int(audio_pos[0])
    selection, kept, _ = prune_tokens(tokens, Setting(method, 0.25))
    x = lm.assemble(inputs, [kept])
    with LLMInputSpy(lm) as spy:
        lm.generate(x, max_new_tokens=2)
    k = keep_count(n, 0.25)
    assert tokens.n == n and selection.k == k == len(selection.indices)
    assert np.all(np.diff(selection.indices) > 0)
    prefill = spy.calls[0]  # generate's first language-model call: the whole pruned prompt
    pruned_len = ids.shape[0] - n + k
    assert prefill.shape[1] == pruned_len == x.prompt_tokens
    received = prefill[0, start : start + k]
    originals = tokens.embeddings[torch.from_numpy(selection.indices)]
    if METHODS[method].merges:  # merged rows as defined; dominant (top-score) rows untouched
        assert torch.equal(received, selection.embeddings)
        k_d = k - round(k * 0.18 / 1.18)
        dominant = torch.from_numpy(np.isin(selection.indices, np.argsort(-tokens.scores, kind="stable")[:k_d]))
        assert int(dominant.sum()) == k_d
        assert torch.equal(received[dominant], originals[dominant])
    else:
        assert torch.equal(received, originals)
    # the text around the audio is untouched
    full_embeds = lm.model.get_input_embeddings()(ids)
    assert torch.equal(prefill[0, :start], full_embeds[:start])
    assert torch.equal(prefill[0, start + k :], full_embeds[start + n :])
    assert x.audio_tokens == [k]


def test_long_audio_flamingo_windows(tiny_models):
    lm = tiny_models["tiny-audio-flamingo-3"]
    tokens = lm.encode(lm.inputs(load_audio(scene(45.0)), PROMPT))[0]
    assert tokens.n == 750 + 375
    assert tokens.window_starts.tolist() == [0, 750]
    assert tokens.token_seconds[0] == 0.0 and tokens.token_seconds[-1] == pytest.approx(44.96)


def test_qwen2_audio_truncates_at_30_seconds(tiny_models):
    lm = tiny_models["tiny-qwen2-audio"]
    c = compare(lm, load_audio(scene(33.0)), PROMPT, [Setting("topk", 0.5)], max_new_tokens=2, repeats=1)
    assert c.tokens.n == 750
    assert c.audio_seconds == pytest.approx(30.0) and c.truncated_seconds == pytest.approx(3.0)


@pytest.mark.parametrize("key", TINY_KEYS)
def test_local_folder_round_trip_picks_the_family(tiny_models, key, tmp_path):
    lm = tiny_models[key]
    lm.model.save_pretrained(tmp_path)
    lm.processor.save_pretrained(tmp_path)
    again = load_model(str(tmp_path), device="cpu")
    assert type(again) is type(lm)
    assert again.random_weights  # the marker survives the round trip
    audio = load_audio(scene(4.0))
    inputs = lm.inputs(audio, PROMPT)
    assert torch.equal(again.inputs(audio, PROMPT)["input_ids"], inputs["input_ids"])
    assert native_generate(again, inputs, 6) == native_generate(lm, inputs, 6)


def test_unreachable_hub_names_the_tiny_models():
    with pytest.raises(ModelLoadError) as err:
        load_model("qwen2-audio", device="cpu")
    message = str(err.value)
    assert "Qwen/Qwen2-Audio-7B-Instruct" in message and "tiny-qwen2-audio" in message
    assert "\n" not in message


def test_registry_lists_real_and_tiny_models():
    keys = registry()
    assert {"qwen2-audio", "audio-flamingo-3", "tiny-qwen2-audio", "tiny-audio-flamingo-3"} <= set(keys)
    assert keys["qwen2-audio"].hub_id == "Qwen/Qwen2-Audio-7B-Instruct"
    assert keys["audio-flamingo-3"].hub_id == "nvidia/audio-flamingo-3-hf"


@pytest.mark.parametrize("method", ["segmentwise", "topk", "visionzip", "adaptive-segmentwise"])
def test_drop_silent_keeps_no_silent_token_while_sound_remains(tiny_models, method):
    lm = tiny_models["tiny-qwen2-audio"]
    clip = scene(10.0)
    clip[16000 * 3 : 16000 * 7] = 0.0  # four seconds of digital silence
    c = compare(
        lm,
        load_audio(clip),
        PROMPT,
        [Setting(method, 0.25, drop_silent=True), Setting(method, 1.0, drop_silent=True)],
        max_new_tokens=3,
        repeats=1,
    )
    silent = c.tokens.silent
    assert silent[3 * 25 + 1 : 7 * 25 - 1].all() and silent.sum() < 0.5 * c.tokens.n
    pruned, identity = c.pruned
    assert not silent[pruned.selection.indices].any()
    assert identity.run.token_ids == c.full.token_ids  # keep 1.0 is still exact
