"""Audio Flamingo 3 (the paper's second model) on transformers' native AudioFlamingo3 classes.

Audio path: the processor cuts the clip into 30 s windows (at most 20: 10 minutes), each padded
to 3000 mel frames; a Whisper-large-v3-style encoder -> 2x average pooling -> LayerNorm -> MLP
projector gives 750 tokens per full window, 25 per second. `get_audio_features` is the native seam.
"""

from __future__ import annotations

import torch
from transformers import AudioFlamingo3Config, AudioFlamingo3ForConditionalGeneration, AudioFlamingo3Processor

from .decoder_only import DecoderOnlyLM
from .tiny import TINY_INIT_STD, byte_tokenizer, chatml_template, seeded_init, text_config, whisper_features


class AudioFlamingo3LM(DecoderOnlyLM):
    key = "audio-flamingo-3"
    model_class = AudioFlamingo3ForConditionalGeneration
    max_seconds = 600.0
    audio_first = False  # the model card puts the text before the audio; the template moves <sound> first
    feature_mask_key = "input_features_mask"
    tiny_audio = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128)

    def audio_embeddings(self, features: torch.Tensor, feature_mask: torch.Tensor, input_ids=None) -> torch.Tensor:
        return self.model.model.get_audio_features(features, feature_mask, return_dict=True).pooler_output

    @staticmethod
    def tiny_template() -> str:
        """ChatML with each clip's <sound> placeholder first in its user turn, as the real template does."""
        return chatml_template("").replace(
            "<|im_start|>{{ message['role'] }}\n",
            "<|im_start|>{{ message['role'] }}\n{% if message['content'] is not string %}"
            "{% for part in message['content'] %}{% if part['type'] == 'audio' %}<sound>{% endif %}{% endfor %}"
            "{% endif %}",
        )

    @classmethod
    def random_init(cls, audio: dict, text: dict, name: str, init_std: float = TINY_INIT_STD) -> AudioFlamingo3LM:
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<sound>"]
        tokenizer = byte_tokenizer(specials, eos="<|im_end|>", pad="<|endoftext|>")
        processor = AudioFlamingo3Processor(
            feature_extractor=whisper_features(), tokenizer=tokenizer, chat_template=cls.tiny_template()
        )
        config = AudioFlamingo3Config(
            audio_config=dict(num_mel_bins=128, initializer_range=init_std, **audio),
            text_config=text_config("qwen2", tokenizer, init_std, **text),
            audio_token_id=tokenizer.convert_tokens_to_ids("<sound>"),
            segprune_random_weights=True,
        )
        return cls(seeded_init(cls.model_class, config), processor, name=name)
