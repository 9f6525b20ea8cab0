"""Offline pieces for tiny random-weight models: an in-memory tokenizer and a feature extractor.

Tiny models use the real model classes and real processor classes with small configs, so every
code path (processor, encoder, scoring hook, placeholder expansion, generation) is the real one.
Their weights are random: the text they generate is meaningless. Token selection and timings
are real. Configs built here carry ``segprune_random_weights=True`` so that the UI and the CLI
can say so, also after a save_pretrained / from_pretrained round trip.
"""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast, WhisperFeatureExtractor

TINY_SEED = 0
# Wider than the usual 0.02 so that random attention is peaked and input-dependent: the scores,
# the kept tokens and the (meaningless) text then differ from clip to clip, as with real weights.
TINY_INIT_STD = 0.3

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'audio' %}{{ AUDIO }}{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def chatml_template(audio_markup: str) -> str:
    """A ChatML chat template (Qwen2 style) rendering each audio part as `audio_markup`."""
    return CHATML_TEMPLATE.replace("{{ AUDIO }}", audio_markup)


def byte_tokenizer(
    special_tokens: list[str], eos: str, pad: str, specials_first: bool = False, **extra
) -> PreTrainedTokenizerFast:
    """Byte-level BPE over the 256 byte symbols (no merges) plus `special_tokens`, built offline.

    The special tokens get the ids after the 256 byte symbols, or the ids 0, 1, ... in their order
    with `specials_first` (for families whose processor hard-codes a special id, e.g. Voxtral's 24).
    `extra` goes to the tokenizer (e.g. ``extra_special_tokens``).
    """
    symbols = sorted(pre_tokenizers.ByteLevel.alphabet())
    ordered = special_tokens + symbols if specials_first else symbols
    tok = Tokenizer(models.BPE(vocab={symbol: i for i, symbol in enumerate(ordered)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(special_tokens)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=eos, pad_token=pad, **extra)


def whisper_features() -> WhisperFeatureExtractor:
    """The 128-bin, 16 kHz, 30 s Whisper-v3 feature extractor that these families use."""
    return WhisperFeatureExtractor(
        feature_size=128, sampling_rate=16000, hop_length=160, chunk_length=30, n_fft=400, return_attention_mask=True
    )


# Head size 32 (64 wide, 2 query heads, 1 key/value head): the smallest that vLLM's CPU attention runs.
TINY_TEXT = dict(
    hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1
)


def tiny_model(family):
    """The tiny random-weight variant of an adapter class (registry key ``tiny-<key>``), built in
    well under a second: the family's own `random_init` with its `tiny_audio` and its `tiny_text`
    (or the shared TINY_TEXT) config fields."""
    return family.random_init(family.tiny_audio, family.tiny_text or TINY_TEXT, name=f"tiny-{family.key}")


def text_config(model_type: str, tokenizer: PreTrainedTokenizerFast, init_std: float, **fields) -> dict:
    """A decoder LLM config dict whose vocabulary covers the tokenizer's ids and whose special
    ids are the tokenizer's. `fields` set the sizes (hidden_size, num_hidden_layers, ...)."""
    config = {"max_position_embeddings": 32768, **fields}
    config.update(
        model_type=model_type,
        vocab_size=max(len(tokenizer), int(fields.get("vocab_size", 0))),
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        initializer_range=init_std,
    )
    return config


def seeded_init(model_class, config):
    """Instantiate `model_class(config)` with a fixed seed (same weights every time), in eval mode."""
    state = torch.random.get_rng_state()
    torch.manual_seed(TINY_SEED)
    try:
        model = model_class(config)
    finally:
        torch.random.set_rng_state(state)
    text = config.get_text_config()
    model.generation_config.eos_token_id = text.eos_token_id
    model.generation_config.pad_token_id = text.pad_token_id
    return model.eval()
