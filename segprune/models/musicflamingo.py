"""Music Flamingo on transformers' native MusicFlamingo classes.

Audio path: the Audio Flamingo 3 encoder on 30 s windows (at most 40: 20 minutes) -> 2x average
pooling -> a rotary TIME embedding -> MLP projector, 750 tokens per full window, 25 per second.
The rotary time embedding needs the placeholder runs of the ORIGINAL `input_ids` (they tell which
windows belong to which clip, hence each token's absolute time), so the audio path always runs on
the processor's unpruned ids; the time of each token is then baked into its embedding, and a kept
token carries its real time into the language model whatever was dropped around it.
"""

from __future__ import annotations

import torch
from transformers import MusicFlamingoConfig, MusicFlamingoForConditionalGeneration, MusicFlamingoProcessor

from .audioflamingo3 import AudioFlamingo3LM
from .tiny import TINY_INIT_STD, byte_tokenizer, seeded_init, text_config, whisper_features


class MusicFlamingoLM(AudioFlamingo3LM):
    key = "music-flamingo"
    model_class = MusicFlamingoForConditionalGeneration
    max_seconds = 1200.0  # the processor's max_audio_len: 40 windows of 30 s
    audio_first = False

    def audio_embeddings(self, features: torch.Tensor, feature_mask: torch.Tensor, input_ids: torch.Tensor):
        return self.model.model.get_audio_features(features, feature_mask, input_ids, return_dict=True).pooler_output

    @classmethod
    def random_init(cls, audio: dict, text: dict, name: str, init_std: float = TINY_INIT_STD) -> MusicFlamingoLM:
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<sound>", "<|sound_bos|>", "<|sound_eos|>"]
        tokenizer = byte_tokenizer(specials, eos="<|im_end|>", pad="<|endoftext|>")
        processor = MusicFlamingoProcessor(
            feature_extractor=whisper_features(), tokenizer=tokenizer, chat_template=cls.tiny_template()
        )
        config = MusicFlamingoConfig(
            audio_config=dict(
                model_type="audioflamingo3_encoder", num_mel_bins=128, initializer_range=init_std, **audio
            ),
            text_config=text_config("qwen2", tokenizer, init_std, **text),
            audio_token_id=tokenizer.convert_tokens_to_ids("<sound>"),
            audio_bos_token_id=tokenizer.convert_tokens_to_ids("<|sound_bos|>"),
            audio_eos_token_id=tokenizer.convert_tokens_to_ids("<|sound_eos|>"),
            segprune_random_weights=True,
        )
        return cls(seeded_init(cls.model_class, config), processor, name=name)
