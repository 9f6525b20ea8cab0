"""GLM-ASR-Nano on transformers' native GlmAsr classes.

Audio path: the processor cuts the clip into 30 s windows (at most `int(655 // 30)` = 21 of them:
630 s), each padded to 3000 mel frames; a Llama-style encoder (partial rotary, grouped key/value
heads) -> 4 frames concatenated per token -> MLP projector: 375 tokens per full window, 12.5 per
second. The encoder has NO attention mask: every frame, the padding of a short last window too,
attends to all 1500 frames of its window; the model then drops the padding tokens. So the scoring
hook uses valid frames only as queries and candidates, with the softmax over all 1500 keys as in
the model, and each window's scores are rescaled to mean 1.
"""

from __future__ import annotations

import torch
from transformers import GlmAsrConfig, GlmAsrForConditionalGeneration, GlmAsrProcessor

from ..scoring import rotary_gqa_qk
from .decoder_only import DecoderOnlyLM
from .tiny import TINY_INIT_STD, byte_tokenizer, seeded_init, text_config, whisper_features

# GLM-4 style turns; the audio of a user turn sits between <|begin_of_audio|> and <|end_of_audio|>.
TINY_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'audio' %}<|begin_of_audio|><|pad|><|end_of_audio|>\n"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


class GlmAsrLM(DecoderOnlyLM):
    key = "glm-asr"
    model_class = GlmAsrForConditionalGeneration
    max_seconds = 630.0  # the processor keeps int(max_audio_len // 30) = 21 whole windows of its 655 s
    token_duration = 0.08
    frames_per_token = 4
    attends_padding = True
    audio_first = True
    feature_mask_key = "input_features_mask"
    tiny_audio = dict(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=256
    )
    scoring_qk = staticmethod(rotary_gqa_qk)

    def audio_embeddings(self, features: torch.Tensor, feature_mask: torch.Tensor, input_ids=None) -> torch.Tensor:
        return self.model.model.get_audio_features(features, feature_mask, return_dict=True).pooler_output

    @classmethod
    def random_init(cls, audio: dict, text: dict, name: str, init_std: float = TINY_INIT_STD) -> GlmAsrLM:
        specials = ["<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|begin_of_audio|>"]
        specials += ["<|end_of_audio|>", "<|pad|>"]
        tokenizer = byte_tokenizer(specials, eos="<|endoftext|>", pad="<|endoftext|>")
        processor = GlmAsrProcessor(
            feature_extractor=whisper_features(), tokenizer=tokenizer, chat_template=TINY_TEMPLATE
        )
        config = GlmAsrConfig(
            audio_config=dict(num_mel_bins=128, initializer_range=init_std, **audio),
            text_config=text_config("llama", tokenizer, init_std, **text),
            audio_token_id=tokenizer.convert_tokens_to_ids("<|pad|>"),
            segprune_random_weights=True,
        )
        return cls(seeded_init(cls.model_class, config), processor, name=name)
