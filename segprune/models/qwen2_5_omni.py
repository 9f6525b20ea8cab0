"""Qwen2.5-Omni's thinker (audio in, text out) on transformers' native Qwen2_5Omni classes.

Audio path: 128-bin log-mel features of up to 300 s (the feature extractor's `chunk_length`), a
Whisper-style encoder whose attention is BLOCK-DIAGONAL: the valid frames of a clip are packed
into one sequence and attend only within 2 s blocks (`n_window` = 100 encoder frames); then 2x
average pooling and a projection: 25 tokens per second, 50 per block. The scoring hook therefore
takes one span per block (softmax within the block, as the model), and the blocks are the
windows of `AudioTokens` (2 s each).

The thinker merges audio features into the prompt WITHOUT checking their count (a wrong count
silently uses the first K features): `AudioLM._split_rows` and `AudioLM.assemble` check it.

Processor: `Qwen2_5OmniProcessor` insists on a video processor, which needs torchvision (not
installable beside torch 2.13 on this project's machines). Its audio path is `Qwen2AudioProcessor`'s
line for line (features padded to `max_length` with the mask renamed `feature_attention_mask`, and
((L - 1) // 2 + 1 - 2) // 2 + 1 copies of <|AUDIO|>; `tests/test_models.py` checks it), so the tiny
variant uses `Qwen2AudioProcessor` with Qwen2.5-Omni's feature extractor settings, and a real
model falls back to it when `AutoProcessor` cannot load the Omni processor.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import (
    Qwen2_5OmniThinkerConfig,
    Qwen2_5OmniThinkerForConditionalGeneration,
    Qwen2AudioProcessor,
    WhisperFeatureExtractor,
)

from ..scoring import Span, packed_qk, pool_scores
from .decoder_only import DecoderOnlyLM
from .tiny import TINY_INIT_STD, byte_tokenizer, chatml_template, seeded_init, text_config

TOKENS = dict(
    audio_token="<|AUDIO|>",
    audio_bos_token="<|audio_bos|>",
    audio_eos_token="<|audio_eos|>",
    image_token="<|IMAGE|>",
    video_token="<|VIDEO|>",
    vision_bos_token="<|vision_bos|>",
    vision_eos_token="<|vision_eos|>",
)
TINY_VISION = dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, fullatt_block_indexes=[0])


def omni_features() -> WhisperFeatureExtractor:
    """Qwen2.5-Omni's feature extractor: Whisper-v3 mel features of clips up to 300 s."""
    return WhisperFeatureExtractor(
        feature_size=128, sampling_rate=16000, hop_length=160, chunk_length=300, n_fft=400, return_attention_mask=True
    )


class Qwen25OmniLM(DecoderOnlyLM):
    key = "qwen2.5-omni"
    model_class = Qwen2_5OmniThinkerForConditionalGeneration
    max_seconds = 300.0
    window_seconds = 2.0  # the encoder's attention blocks
    feature_mask_key = "feature_attention_mask"
    tiny_audio = dict(d_model=64, encoder_layers=2, encoder_attention_heads=4, encoder_ffn_dim=128)
    scoring_qk = staticmethod(packed_qk)

    @classmethod
    def load_pretrained(cls, source: str, dtype: torch.dtype, device: torch.device) -> nn.Module:
        from transformers import AutoConfig, Qwen2_5OmniForConditionalGeneration

        if AutoConfig.from_pretrained(source).model_type == "qwen2_5_omni_thinker":
            return super().load_pretrained(source, dtype, device)
        full = Qwen2_5OmniForConditionalGeneration.from_pretrained(
            source, dtype=dtype, device_map=str(device), enable_audio_output=False
        )
        return full.thinker

    @classmethod
    def load_processor(cls, source: str):
        try:
            return super().load_processor(source)
        except ImportError:  # the video processor needs torchvision; the audio path does not
            return Qwen2AudioProcessor.from_pretrained(source)

    def audio_embeddings(self, features: torch.Tensor, feature_mask: torch.Tensor, input_ids=None) -> torch.Tensor:
        return self.model.model.get_audio_features(features, feature_mask, return_dict=True).last_hidden_state

    def scoring_rows(self, frame_lengths: torch.Tensor, window_frames: int) -> list[list[Span]]:
        """One packed row: every clip's valid frames in blocks of `n_window` frames (the last shorter)."""
        block, spans, start = self.audio_encoder.n_window, [], 0
        for n in frame_lengths.tolist():
            full = (n - 1) // block
            for size in [block] * full + [n - block * full]:
                spans.append(Span(start, size, size))
                start += size
        return [spans]

    def no_eager_reason(self) -> str:
        return (
            "Qwen2.5-Omni's encoder attention returns no weights (each 2 s block is attended separately and only "
            "the outputs are kept), so output_attentions cannot give its scores."
        )

    def window_scores(self, frame_scores: list[torch.Tensor], frame_lengths: torch.Tensor) -> list[torch.Tensor]:
        """Each clip's frames pooled in pairs, then cut into its 2 s blocks (each block's scores
        already sum to its length: the softmax ran within the block)."""
        per_block = self.audio_encoder.n_window // self.frames_per_token
        windows = []
        for scores, n in zip(frame_scores[0].split(frame_lengths.tolist()), frame_lengths):
            windows += pool_scores(scores, int(self.token_lengths(n)), self.frames_per_token).split(per_block)
        return windows

    @classmethod
    def random_init(cls, audio: dict, text: dict, name: str, init_std: float = TINY_INIT_STD) -> Qwen25OmniLM:
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *TOKENS.values()]
        tokenizer = byte_tokenizer(specials, eos="<|im_end|>", pad="<|endoftext|>", extra_special_tokens=TOKENS)
        processor = Qwen2AudioProcessor(
            feature_extractor=omni_features(),
            tokenizer=tokenizer,
            chat_template=chatml_template("<|audio_bos|><|AUDIO|><|audio_eos|>"),
        )
        half_head = text["hidden_size"] // text["num_attention_heads"] // 2
        rope = dict(
            rope_type="default", rope_theta=1e6, mrope_section=[half_head - 2 * (half_head // 3)] + [half_head // 3] * 2
        )
        ids = {k: tokenizer.convert_tokens_to_ids(v) for k, v in TOKENS.items()}
        config = Qwen2_5OmniThinkerConfig(
            audio_config=dict(num_mel_bins=128, output_dim=text["hidden_size"], initializer_range=init_std, **audio),
            vision_config=dict(out_hidden_size=text["hidden_size"], initializer_range=init_std, **TINY_VISION),
            text_config=text_config("qwen2_5_omni_text", tokenizer, init_std, rope_parameters=rope, **text),
            audio_token_index=ids["audio_token"],
            image_token_index=ids["image_token"],
            video_token_index=ids["video_token"],
            audio_start_token_id=ids["audio_bos_token"],
            audio_end_token_id=ids["audio_eos_token"],
            vision_start_token_id=ids["vision_bos_token"],  # read by the rope index (the real config has it)
            vision_end_token_id=ids["vision_eos_token"],
            initializer_range=init_std,
            segprune_random_weights=True,
        )
        return cls(seeded_init(cls.model_class, config), processor, name=name)
