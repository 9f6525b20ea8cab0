"""Qwen3-Omni's thinker and Voxtral Small: what is special about them, on top of the family matrix
that tests/test_models.py, test_scoring.py, test_pruner.py, test_cli.py and test_bench.py run on
every tiny model (their keys are in conftest.TINY_KEYS)."""

import numpy as np
import pytest
import torch
from transformers.models.qwen3_omni_moe import modeling_qwen3_omni_moe as modeling
from transformers.models.qwen3_omni_moe import processing_qwen3_omni_moe as processing

from segprune import load_audio, load_model
from segprune.models import ModelLoadError, registry
from segprune.models.qwen3_omni import Qwen3OmniAudioProcessor, Qwen3OmniLM
from segprune.models.voxtral import VoxtralLM
from tests.conftest import scene
from tests.test_scoring import audio_path_with_hook, eager_received

PROMPT = "What happens in this recording?"
KEY = "tiny-qwen3-omni"


def test_registry_has_the_new_checkpoints():
    keys = registry()
    assert keys["qwen3-omni"].hub_id == "Qwen/Qwen3-Omni-30B-A3B-Instruct"
    assert keys["qwen3-omni-thinking"].hub_id == "Qwen/Qwen3-Omni-30B-A3B-Thinking"
    assert keys["qwen3-omni-captioner"].hub_id == "Qwen/Qwen3-Omni-30B-A3B-Captioner"
    assert keys["qwen3-omni"].family.load() is Qwen3OmniLM
    assert set(keys["qwen3-omni"].family.model_types) == {"qwen3_omni_moe_thinker", "qwen3_omni_moe"}
    # Voxtral Small is the Voxtral Mini class with another checkpoint: the same family and tiny twin
    assert keys["voxtral-small"].hub_id == "mistralai/Voxtral-Small-24B-2507"
    assert keys["voxtral-small"].family is keys["tiny-voxtral-mini"].family
    assert keys["voxtral-small"].family.load() is VoxtralLM


@pytest.mark.parametrize("key, hub_id", [("voxtral-small", "mistralai/Voxtral-Small-24B-2507"), ("qwen3-omni", None)])
def test_offline_loading_of_a_real_checkpoint_is_one_sentence(key, hub_id):
    with pytest.raises(ModelLoadError) as err:
        load_model(key, device="cpu")
    message = str(err.value)
    assert (hub_id or registry()[key].hub_id) in message and "tiny-qwen3-omni" in message and "\n" not in message


def test_token_count_is_the_models_own_arithmetic(tiny_models):
    """13 tokens per 1 s chunk plus the last chunk's: our count equals the model's and the processor's
    `_get_feat_extract_output_lengths` for every mel length up to 50 s, whole seconds included."""
    lm = tiny_models[KEY]
    mel = torch.arange(0, 5001)
    ours = lm.frame_lengths(mel)
    assert torch.equal(ours, modeling._get_feat_extract_output_lengths(mel, 50))
    assert torch.equal(ours, processing._get_feat_extract_output_lengths(mel, 50))
    assert ours[100].item() == 13 and ours[1000].item() == 130 and ours[1050].item() == 137
    assert [lm.frame_lengths(n) for n in (0, 1, 99, 100)] == [0, 1, 13, 13]  # ints too


@pytest.mark.parametrize("seconds, n", [(0.7, 9), (1.0, 13), (8.0, 104), (8.3, 108), (33.0, 429)])
def test_scoring_windows_are_the_models_attention_windows(tiny_models, seconds, n):
    """The hook's spans are the encoder's own `cu_seqlens` (8 s windows of 104 tokens, the last one
    shorter, a clip under 1 s in one window), and the scores match the eager weights in each. The
    processor does not truncate: 33 s are 429 tokens although its feature extractor says 30 s."""
    lm = tiny_models[KEY]
    inputs = lm.inputs(load_audio(scene(seconds)), PROMPT)
    mel = inputs["feature_attention_mask"].sum(-1)
    assert int(mel) == round(seconds * 100) and lm.audio_counts(inputs) == [n] == lm.frame_lengths(mel).tolist()
    _, chunk_lengths = modeling.chunk_and_pad_features(inputs["input_features"][0][:, : int(mel)], mel, 50)
    cu_seqlens = modeling.get_audio_cu_seqlens(chunk_lengths, mel, 800, 50)
    (spans,) = lm.scoring_rows(lm.frame_lengths(mel), 0)
    assert [s.start for s in spans] + [spans[-1].start + spans[-1].length] == cu_seqlens.tolist()
    assert all(s.keys == s.length for s in spans)
    hook, rows, captured = audio_path_with_hook(lm, inputs, chunk_size=64)
    assert len(captured) == len(spans)  # one eager attention call per window
    (want,) = eager_received(rows, captured)
    assert torch.max(torch.abs(hook.scores[0] - want)).item() < 1e-5
    tokens = lm.encode(inputs)[0]
    assert tokens.n == n
    assert tokens.window_starts.tolist() == [s.start for s in spans]
    for window in np.split(tokens.scores, tokens.window_starts[1:]):
        assert window.mean() == pytest.approx(1.0, abs=1e-5)  # softmax within the window: uniform is 1


def test_a_batch_of_clips_restarts_windows_per_clip(tiny_models):
    """Two clips of different lengths in one batch (padded features, left-padded prompts): each row
    gets the N, windows, scores and embeddings it gets alone (the encoder packs the clips and
    restarts its attention windows at each clip). "Alone" runs on the batch's own features of the
    clip: padding changes the last mel frame of a shorter clip (the STFT sees zeros instead of its
    reflection), which is the feature extractor's doing, not the encoder's."""
    lm = tiny_models[KEY]
    clips = [scene(10.0, seed=1), scene(4.5, seed=2)]
    text = lm.chat_text(PROMPT)
    batch = lm.processor(text=[text, text], audio=clips, sampling_rate=16000, return_tensors="pt", padding=True)
    lengths = batch["feature_attention_mask"].sum(-1).tolist()
    assert lengths == [1000, 450]
    rows = lm.encode(batch)
    for i, (row, clip) in enumerate(zip(rows, clips)):
        single = dict(lm.inputs(load_audio(clip), PROMPT))
        single["input_features"] = batch["input_features"][i : i + 1, :, : lengths[i]]
        alone = lm.encode(single)[0]
        assert row.n == alone.n and row.window_starts.tolist() == alone.window_starts.tolist()
        np.testing.assert_allclose(row.scores, alone.scores, atol=1e-5)
        torch.testing.assert_close(row.embeddings, alone.embeddings, atol=1e-5, rtol=1e-5)
    assert [r.n for r in rows] == [130, 59] == lm.audio_counts(batch)


def test_the_thinker_itself_does_not_check_the_placeholder_count(tiny_models):
    """Why segprune checks: the native forward accepts one placeholder fewer than audio tokens
    (masked_scatter silently drops the last feature); `encode` refuses it."""
    lm = tiny_models[KEY]
    inputs = dict(lm.inputs(load_audio(scene(3.0)), PROMPT))
    ids = inputs["input_ids"]
    where = int(torch.nonzero(ids[0] == lm.audio_token_id)[0])
    inputs["input_ids"] = torch.cat([ids[:, :where], ids[:, where + 1 :]], dim=1)
    inputs["attention_mask"] = inputs["attention_mask"][:, 1:]
    with torch.inference_mode():
        lm.model(**inputs)  # no error
    with pytest.raises(RuntimeError, match="do not match"):
        lm.encode(inputs)


def test_the_audio_only_processor_is_the_omni_processors_audio_path(tiny_models, tmp_path):
    """`Qwen3OmniAudioProcessor` keeps Qwen3OmniMoeProcessor's own `__call__` and `_process_audio`
    (only the torchvision-bound image/video processors are gone) and survives a save/load round trip."""
    lm = tiny_models[KEY]
    assert isinstance(lm.processor, processing.Qwen3OmniMoeProcessor)
    for name in ("__call__", "_process_audio", "replace_audio_token", "apply_chat_template"):
        assert getattr(Qwen3OmniAudioProcessor, name) is getattr(processing.Qwen3OmniMoeProcessor, name), name
    inputs = lm.inputs(load_audio(scene(2.5)), PROMPT)
    assert "num_audio_tokens" not in inputs  # dropped by the processor, as the model's forward does not take it
    lm.processor.save_pretrained(tmp_path)
    again = Qwen3OmniLM.load_processor(str(tmp_path))
    assert type(again) is Qwen3OmniAudioProcessor and again.chat_template == lm.processor.chat_template
    reloaded = again(text=lm.chat_text(PROMPT), audio=scene(2.5), sampling_rate=16000, return_tensors="pt")
    assert all(torch.equal(reloaded[k], inputs[k]) for k in inputs)
