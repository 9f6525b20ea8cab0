"""Qwen2-Audio-7B-Instruct (the paper's model) on transformers' native Qwen2Audio classes.

Audio path: Whisper-large-v3-style encoder (32 layers, 1280 wide) on one 30 s window of 128-bin
log-mel features padded to 3000 frames -> 1500 frames -> 2x average pooling -> 750 tokens ->
linear projector. 25 tokens per second; audio over 30 s is truncated. The audio path lives
inline in `Qwen2AudioModel.forward` (no `get_audio_features`), so `audio_embeddings` repeats it
step by step, with the same padded-key mask.
"""

from __future__ import annotations

import torch
from transformers import Qwen2AudioConfig, Qwen2AudioForConditionalGeneration, Qwen2AudioProcessor
from transformers.masking_utils import create_bidirectional_mask

from .decoder_only import DecoderOnlyLM
from .tiny import TINY_INIT_STD, byte_tokenizer, chatml_template, seeded_init, text_config, whisper_features


class Qwen2AudioLM(DecoderOnlyLM):
    key = "qwen2-audio"
    model_class = Qwen2AudioForConditionalGeneration
    max_seconds = 30.0
    audio_first = True
    feature_mask_key = "feature_attention_mask"
    tiny_audio = dict(d_model=64, encoder_layers=2, encoder_attention_heads=4, encoder_ffn_dim=128)

    def audio_embeddings(self, features: torch.Tensor, feature_mask: torch.Tensor, input_ids=None) -> torch.Tensor:
        tower = self.model.model.audio_tower
        frame_lengths, token_lengths = tower._get_feat_extract_output_lengths(feature_mask.sum(-1))
        frames = (features.shape[-1] - 2) // 2 + 1
        valid = torch.arange(frames, device=features.device)[None, :] < frame_lengths[:, None]
        mask = create_bidirectional_mask(
            config=tower.config,
            inputs_embeds=torch.zeros(features.shape[0], frames, 1, dtype=self.dtype, device=features.device),
            attention_mask=valid.long(),
        )
        hidden = tower(features, attention_mask=mask).last_hidden_state
        embeddings = self.model.model.multi_modal_projector(hidden)
        keep = torch.arange(embeddings.shape[1], device=features.device)[None, :] < token_lengths[:, None]
        return embeddings[keep]

    @classmethod
    def random_init(cls, audio: dict, text: dict, name: str, init_std: float = TINY_INIT_STD) -> Qwen2AudioLM:
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"]
        tokenizer = byte_tokenizer(specials, eos="<|im_end|>", pad="<|endoftext|>")
        processor = Qwen2AudioProcessor(
            feature_extractor=whisper_features(),
            tokenizer=tokenizer,
            chat_template=chatml_template("Audio 1: <|audio_bos|><|AUDIO|><|audio_eos|>\n"),
        )
        config = Qwen2AudioConfig(
            audio_config=dict(num_mel_bins=128, initializer_range=init_std, **audio),
            text_config=text_config("qwen2", tokenizer, init_std, **text),
            audio_token_index=tokenizer.convert_tokens_to_ids("<|AUDIO|>"),
            segprune_random_weights=True,
        )
        return cls(seeded_init(cls.model_class, config), processor, name=name)
