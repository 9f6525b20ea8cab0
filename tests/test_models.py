"""The core correctness tests on the tiny real model classes, for every family and method.

keep 1.0 must reproduce the unpruned model exactly; at keep 0.25 the language model must receive
exactly K audio embeddings, the encoder's own embeddings at the kept indices, in temporal order.
"""

import numpy as np
import pytest
import torch

from segprune import METHODS, Setting, compare, keep_count, load_audio, load_model, prune_tokens
from segprune.models import ModelLoadError, registry
from tests.conftest import (
    LLM_KEYS,
    SECONDS,
    TINY_KEYS,
    expected_tokens,
    expected_windows,
    n_audio,
    new_tokens,
    scene,
)

PROMPT = "What happens in this recording?"


def native_generate(lm, inputs, max_new_tokens):
    """The family's own unpruned path: model.generate on the processor output."""
    with torch.inference_mode():
        out = lm.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1)
    return new_tokens(out, inputs)[0]


def native_logits(lm, inputs):
    """Next-token logits of the family's own forward on the processor output."""
    with torch.inference_mode():
        return lm.model(**inputs).logits[:, -1]


class LLMInputSpy:
    """Records the input of the language model's first decoder layer on every call: the LLM's ACTUAL
    input, also where the model merges the audio into the embeddings itself (Phi-4)."""

    def __init__(self, lm):
        self.module = lm.language_model.layers[0]
        self.calls = []

    def __enter__(self):
        def grab(module, args, kwargs):
            self.calls.append((args[0] if args else kwargs["hidden_states"]).detach().clone())

        self.handle = self.module.register_forward_pre_hook(grab, with_kwargs=True)
        return self

    def __exit__(self, *exc):
        self.handle.remove()


@pytest.mark.parametrize("key", LLM_KEYS)
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
    for key in LLM_KEYS:
        lm = tiny_models[key]
        inputs = lm.inputs(load_audio(scene(SECONDS[key])), PROMPT)
        out[key] = (inputs, lm.encode(inputs)[0])
    return out


@pytest.mark.parametrize("key", LLM_KEYS)
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
    if METHODS[method].merges:  # merged rows as defined; rows that merged nothing untouched
        assert torch.equal(received, selection.embeddings)
        alone = torch.from_numpy(~selection.merged)
        assert torch.equal(received[alone], originals[alone])
        if method == "visionzip":  # its dominant (top-score) rows are never merges
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
    reloaded = again.inputs(audio, PROMPT)
    assert set(reloaded.keys()) == set(inputs.keys())
    assert all(torch.equal(reloaded[k], inputs[k]) for k in inputs)
    assert native_generate(again, inputs, 6) == native_generate(lm, inputs, 6)


def test_unreachable_hub_names_the_tiny_models():
    with pytest.raises(ModelLoadError) as err:
        load_model("qwen2-audio", device="cpu")
    message = str(err.value)
    assert "Qwen/Qwen2-Audio-7B-Instruct" in message and "tiny-qwen2-audio" in message
    assert "\n" not in message


def test_registry_lists_real_and_tiny_models():
    keys = registry()
    assert set(TINY_KEYS) <= set(keys) and all(keys[k].tiny and keys[k].hub_id is None for k in TINY_KEYS)
    assert keys["qwen2-audio"].hub_id == "Qwen/Qwen2-Audio-7B-Instruct"
    assert keys["audio-flamingo-3"].hub_id == "nvidia/audio-flamingo-3-hf"
    assert keys["music-flamingo"].hub_id == "nvidia/music-flamingo-2601-hf"
    assert keys["glm-asr"].hub_id == "zai-org/GLM-ASR-Nano-2512"
    assert keys["voxtral-mini"].hub_id == "mistralai/Voxtral-Mini-3B-2507"
    assert keys["qwen2.5-omni"].hub_id == "Qwen/Qwen2.5-Omni-3B"
    assert keys["whisper-tiny"].hub_id == "openai/whisper-tiny"
    assert keys["whisper-large-v3"].hub_id == "openai/whisper-large-v3"
    assert keys["whisper-large-v3"].family is keys["tiny-whisper"].family


@pytest.mark.parametrize("key", TINY_KEYS)
def test_token_arithmetic_matches_the_processor(tiny_models, key):
    """N, the windows and the token times follow the family's frames -> tokens arithmetic."""
    lm = tiny_models[key]
    seconds = SECONDS[key]
    inputs = lm.inputs(load_audio(scene(seconds)), PROMPT)
    tokens = lm.encode(inputs)[0]
    assert tokens.n == expected_tokens(lm, seconds) == lm.audio_counts(inputs)[0]
    assert len(tokens.window_starts) == expected_windows(lm, seconds)
    assert tokens.token_seconds[0] == 0.0 and np.all(np.diff(tokens.token_seconds) > 0)
    if lm.feature_mask_key is not None:  # valid audio only: the last token starts within the clip
        assert seconds - 2 * lm.token_duration < tokens.token_seconds[-1] + lm.token_duration
        assert tokens.token_seconds[-1] < seconds  # (Phi-4 rounds up: its last token may run past the end)


@pytest.mark.parametrize("key", LLM_KEYS)
def test_a_placeholder_count_that_does_not_match_is_rejected(tiny_models, key):
    """Qwen2.5-Omni's merge does not check the count (it would silently use the first K features):
    every adapter checks it before anything reaches the language model."""
    lm = tiny_models[key]
    inputs = dict(lm.inputs(load_audio(scene(3.0)), PROMPT))
    ids = inputs["input_ids"]
    where = int(torch.nonzero(ids[0] == lm.audio_token_id)[0])
    inputs["input_ids"] = torch.cat([ids[:, :where], ids[:, where + 1 :]], dim=1)  # one placeholder fewer
    inputs["attention_mask"] = inputs["attention_mask"][:, 1:]
    with pytest.raises((RuntimeError, ValueError), match="do not match"):  # MusicFlamingo's own check comes first
        lm.encode(inputs)


@pytest.mark.parametrize("key", ["tiny-audio-flamingo-3", "tiny-voxtral-mini"])
def test_a_95_second_clip_spans_windows_is_exact_at_one_and_feeds_k_at_a_quarter(tiny_models, key):
    """Long audio: four 30 s windows, keep 1.0 reproduces the native ids, keep 0.25 feeds K tokens."""
    lm = tiny_models[key]
    audio = load_audio(scene(95.0, seed=4))
    inputs = lm.inputs(audio, PROMPT)
    n = int((inputs["input_ids"] == lm.audio_token_id).sum())
    native = native_generate(lm, inputs, 6)
    settings = [Setting("segmentwise", 1.0), Setting("topk", 1.0), Setting("segmentwise", 0.25)]
    with LLMInputSpy(lm) as spy:
        c = compare(lm, audio, PROMPT, settings, max_new_tokens=6, repeats=1)
    assert c.tokens.n == n == expected_tokens(lm, 95.0) and c.truncated_seconds == 0.0
    assert len(c.tokens.window_starts) == 4 and c.tokens.token_seconds[c.tokens.window_starts[3]] == 90.0
    assert c.full.token_ids == native
    assert [p.run.token_ids for p in c.pruned[:2]] == [native, native]
    p, k = c.pruned[2], keep_count(n, 0.25)
    assert p.selection.k == k == p.run.audio_tokens
    assert c.tokens.token_seconds[p.selection.indices].max() >= 60.0  # segments cover the late windows
    start = int(torch.nonzero(inputs["input_ids"][0] == lm.audio_token_id)[0])
    prefill = [e for e in spy.calls if e.shape[1] == inputs["input_ids"].shape[1] - n + k]
    kept = c.tokens.embeddings[torch.as_tensor(p.selection.indices)]
    assert prefill and torch.equal(prefill[-1][0, start : start + k], kept)


def test_max_seconds_is_what_the_processor_keeps(tiny_models):
    """Each family's limit is the processor's own (so segprune truncates, with a warning, exactly
    where the processor would otherwise cut silently)."""
    for key in ("tiny-audio-flamingo-3", "tiny-music-flamingo", "tiny-glm-asr"):
        lm = tiny_models[key]  # these processors keep whole 30 s windows of max_audio_len
        window = lm.processor.feature_extractor.chunk_length
        assert lm.max_seconds == int(lm.processor.max_audio_len // window) * window, key
    for key in ("tiny-qwen2-audio", "tiny-qwen2.5-omni", "tiny-whisper"):
        features = tiny_models[key].processor.feature_extractor  # truncates at n_samples
        assert tiny_models[key].max_seconds == features.n_samples / features.sampling_rate, key
    assert tiny_models["tiny-glm-asr"].max_seconds == 630.0  # not the 655 s the processor's doc names


def test_music_flamingo_embeds_each_token_time(tiny_models):
    """MusicFlamingo's rotary time embedding runs inside the audio path, on the ORIGINAL placeholder
    runs: two identical 30 s windows get identical attention scores but different embeddings, so a
    kept token carries its own time into the language model."""
    lm = tiny_models["tiny-music-flamingo"]
    clip = np.concatenate([scene(30.0, seed=3), scene(30.0, seed=3)])
    tokens = lm.encode(lm.inputs(load_audio(clip), PROMPT))[0]
    np.testing.assert_allclose(tokens.scores[:750], tokens.scores[750:], atol=1e-5)
    assert not torch.allclose(tokens.embeddings[:750], tokens.embeddings[750:], atol=1e-3)


def test_qwen2_5_omni_inputs_are_what_its_processor_builds(tiny_models):
    """Qwen2_5OmniProcessor needs torchvision (for video) and cannot be built here; its own audio
    step, run on our processor, gives exactly the features and placeholders our processor gives."""
    from transformers import Qwen2_5OmniProcessor

    lm = tiny_models["tiny-qwen2.5-omni"]
    samples = scene(7.3)
    ours = lm.inputs(load_audio(samples), PROMPT)
    theirs, replacements = Qwen2_5OmniProcessor._process_audio(
        lm.processor, [samples], sampling_rate=16000, return_attention_mask=True, return_tensors="pt"
    )
    assert torch.equal(ours["input_features"], theirs["input_features"])
    assert torch.equal(ours["feature_attention_mask"], theirs["feature_attention_mask"])
    assert replacements == ["<|AUDIO|>" * n_audio(lm, ours)]
    assert ours["input_features"].shape[-1] == 30000  # padded to the 300 s the model takes


def test_qwen2_5_omni_scores_respect_its_attention_blocks(tiny_models):
    """Block-diagonal encoder attention: every 2 s block's token scores average 1 on their own."""
    lm = tiny_models["tiny-qwen2.5-omni"]
    tokens = lm.encode(lm.inputs(load_audio(scene(9.0)), PROMPT))[0]
    assert tokens.window_starts.tolist() == [0, 50, 100, 150, 200]
    for block in np.split(tokens.scores, tokens.window_starts[1:]):
        assert block.mean() == pytest.approx(1.0, abs=0.02)


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


def test_whisper_drops_only_its_expected_logs_and_only_while_it_runs(tiny_models, wav_factory):
    """The filter that hides transformers' expected Whisper messages is the call's own and is gone
    afterwards; any other message passes through it."""
    import logging

    from segprune.models.whisper import EXPECTED_LOGGERS, expected_logs_dropped

    loggers = [logging.getLogger(name) for name in EXPECTED_LOGGERS]
    before = [list(logger.filters) for logger in loggers]
    compare(tiny_models["tiny-whisper"], wav_factory(2.0), "Hi.", [Setting("topk", 0.5)], max_new_tokens=2, repeats=1)
    assert [list(logger.filters) for logger in loggers] == before
    seen = []
    handler = logging.Handler()
    handler.emit = seen.append
    loggers[0].addHandler(handler)
    try:
        with expected_logs_dropped():
            loggers[0].warning("Both `max_new_tokens` (=2) and `max_length`(=448) seem to have been set.")
            loggers[0].warning("Something the adapter does not expect.")
        loggers[0].warning("Both `max_new_tokens` (=2) and `max_length`(=448) seem to have been set.")
    finally:
        loggers[0].removeHandler(handler)
    assert [r.getMessage()[:9] for r in seen] == ["Something", "Both `max"]
