"""Music Flamingo on transformers' native MusicFlamingo classes.

Audio path: the Audio Flamingo 3 encoder on 30 s windows (at most 40: 20 minutes) -> 2x average
pooling -> a rotary TIME embedding -> MLP projector, 750 tokens per full window, 25 per second.
The rotary time embedding needs the placeholder runs of the ORIGINAL `input_ids` (they tell which
windows belong to which clip, hence each token's absolute time), so the audio path always runs on
the processor's unpruned ids; the time of each token is then baked into its embedding, and a kept
token carries its real time into the language model whatever was dropped around it.

Audio Flamingo Next (`AudioFlamingoNextLM`, nvidia/audio-flamingo-next-hf and its -think and
-captioner variants) runs on these same classes and takes up to 30 minutes: 60 windows, 45,000
tokens. Nothing in the audio path caps the window count: the rotary time embedding's table
(`rope_theta` = 1200 positions) is indexed by the frame WITHIN a window (750 per window), and the
window axis and the time modulation are computed from each window's start in seconds. The limits
are the processor's `max_audio_len` (1800 for AF-Next, by its model card's 30 minutes) and the
language model's context (45,000 audio tokens + the text: more than Qwen2.5-7B's 32,768; the paper
trains with 128K). Verified here on the tiny variant only: no machine of this project reaches the
Hub, so the real processor and config files of AF-Next were not read (see its full preset).
"""

from __future__ import annotations

import torch
from transformers import MusicFlamingoConfig, MusicFlamingoForConditionalGeneration, MusicFlamingoProcessor

from .audioflamingo3 import AudioFlamingo3LM
from .tiny import TINY_INIT_STD, TINY_TEXT, byte_tokenizer, seeded_init, text_config, whisper_features


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
            feature_extractor=whisper_features(),
            tokenizer=tokenizer,
            chat_template=cls.tiny_template(),
            max_audio_len=int(cls.max_seconds),
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
            segprune_adapter=cls.key,  # a saved folder loads this adapter (the model type is MusicFlamingo's for both)
        )
        return cls(seeded_init(cls.model_class, config), processor, name=name)


class AudioFlamingoNextLM(MusicFlamingoLM):
    """Audio Flamingo Next: MusicFlamingo's classes with 30 minutes of audio (60 windows, N = 45,000)."""

    key = "audio-flamingo-next"
    max_seconds = 1800.0  # the model card: up to 30 minutes (the processor's max_audio_len)
    # the context must hold 45,000 audio tokens and the text: 128K, the context the paper trains with
    tiny_text = dict(TINY_TEXT, max_position_embeddings=131072)
