"""Qwen3-Omni's thinker (audio in, text out) on transformers' native Qwen3OmniMoe classes.

Audio path (the AuT encoder): 128-bin log-mel features at 100 frames per second, cut into chunks of
`2 * n_window` = 100 frames (1 s), each chunk through three stride-2 convolutions on its own: 13
tokens per full second, ((((r - 1)//2 + 1 - 1)//2 + 1) - 1)//2 + 1 for a last chunk of r frames.
There is no pooling after the encoder: one encoder frame is one language-model token (its own
`proj1`/`proj2` map it to the thinker's width). The encoder's attention is BLOCK-DIAGONAL over the
packed valid frames of the batch: windows of `n_window_infer // (2 * n_window)` chunks (8 s, 104
tokens with the default 50 / 800), the last window of a clip shorter. The scoring hook takes one
span per window (softmax within it, as the model), and these windows are the windows of
`AudioTokens`; every window's scores then sum to its length, so a uniform attention scores 1.

The processor does not truncate (`truncation=False`, padding to the longest clip) and the encoder
has no position limit (its sinusoidal positions restart in every 1 s chunk); the limit is the
thinker's context. `max_seconds` is 40 min (31,200 tokens): what fits in 32,768 positions with a
prompt, the input limit Qwen's own API states for these checkpoints.

The thinker merges audio features into the prompt WITHOUT checking their count (`get_placeholder_mask`
checks images and videos only): `AudioLM._split_rows` and `DecoderOnlyLM.assemble` check it. With
audio only, its 3-D rotary positions are plain 1-D positions from the attention mask (the vision
branch of `get_rope_index` is not taken), so K kept tokens at contiguous positions need nothing else.

Processor: `Qwen3OmniMoeProcessor` cannot be built without torchvision (its video processor's base
class is a torchvision dummy here). `Qwen3OmniAudioProcessor` below is that class without its image
and video processors: the same `__call__` and `_process_audio` (Whisper features, the mask renamed
`feature_attention_mask`, `<|audio_pad|>` repeated per token), inherited, not copied. The tiny
variant uses it; a real model uses `AutoProcessor` where torchvision is installed and falls back to
it otherwise.

Checkpoints: Qwen/Qwen3-Omni-30B-A3B-Instruct (thinker + talker; only the thinker is loaded),
-Thinking and -Captioner (thinker only; the Captioner describes audio and needs no prompt text).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import (
    Qwen3OmniMoeProcessor,
    Qwen3OmniMoeThinkerConfig,
    Qwen3OmniMoeThinkerForConditionalGeneration,
)
from transformers.processing_utils import ProcessorMixin

from ..scoring import Span, packed_qk
from .base import audio_only_processor
from .decoder_only import DecoderOnlyLM
from .tiny import TINY_INIT_STD, TINY_TEXT, byte_tokenizer, seeded_init, text_config, whisper_features

TOKENS = dict(
    audio_token="<|audio_pad|>",
    audio_bos_token="<|audio_start|>",
    audio_eos_token="<|audio_end|>",
    image_token="<|image_pad|>",
    video_token="<|video_pad|>",
    vision_bos_token="<|vision_start|>",
    vision_eos_token="<|vision_end|>",
)
# ChatML as Qwen3's templates write it (no default system turn); each audio part is one placeholder.
TINY_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'audio' %}<|audio_start|><|audio_pad|><|audio_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
TINY_VISION = dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, deepstack_visual_indexes=[0])


class Qwen3OmniAudioProcessor(Qwen3OmniMoeProcessor):
    """`Qwen3OmniMoeProcessor` without its image and video processors (they need torchvision): the
    same audio path and chat template, for audio-only prompts."""

    def __init__(self, feature_extractor=None, tokenizer=None, chat_template=None):
        ProcessorMixin.__init__(self, feature_extractor, tokenizer, chat_template=chat_template)
        for name in TOKENS:  # what Qwen3OmniMoeProcessor.__init__ reads from its tokenizer
            setattr(self, name, getattr(self.tokenizer, name))
        for name in ("audio_token", "image_token", "video_token"):
            setattr(self, f"{name}_id", getattr(self.tokenizer, f"{name}_id"))

    def validate_inputs(self, images=None, text=None, **kwargs):
        """As the base class, but marked control tokens (a prompt's escaped text, see
        `segprune.models.prompts`) are not counted as placeholders: transformers' omni processor path
        counts them before it unmarks them, where its other processors do not."""
        if kwargs.get("sanitize_control_tokens") and text is not None:
            from transformers.processing_utils import _MARKED_RE

            text = [_MARKED_RE.sub("", sample) for sample in (text if isinstance(text, list) else [text])]
        super().validate_inputs(images=images, text=text, **kwargs)

    @property
    def model_input_names(self):
        names = self.tokenizer.model_input_names + self.feature_extractor.model_input_names
        return list(dict.fromkeys([*names, "feature_attention_mask"]))


def conv_frames(mel_frames):
    """Encoder frames of `mel_frames` mel frames of ONE chunk: three stride-2 convolutions (kernel 3,
    padding 1). Works on ints and tensors."""
    for _ in range(3):
        mel_frames = (mel_frames - 1) // 2 + 1
    return mel_frames


class Qwen3OmniLM(DecoderOnlyLM):
    key = "qwen3-omni"
    model_class = Qwen3OmniMoeThinkerForConditionalGeneration
    max_seconds = 2400.0
    window_seconds = 8.0  # n_window_infer / 100 with the config defaults; set from the config in __init__
    token_duration = 1 / 13  # 13 tokens per 1 s chunk
    frames_per_token = 1  # no pooling: one encoder frame is one token
    feature_mask_key = "feature_attention_mask"
    tiny_audio = dict(d_model=64, encoder_layers=2, encoder_attention_heads=4, encoder_ffn_dim=128)
    tiny_text = dict(TINY_TEXT, moe_intermediate_size=32, num_experts=4, num_experts_per_tok=2)
    scoring_qk = staticmethod(packed_qk)

    def __init__(self, model: nn.Module, processor, name: str | None = None):
        super().__init__(model, processor, name)
        audio = model.config.audio_config
        self.chunk_frames = 2 * audio.n_window  # mel frames per convolution chunk (1 s)
        chunks = audio.n_window_infer // self.chunk_frames  # chunks per attention window
        self.window_tokens = chunks * conv_frames(self.chunk_frames)
        self.window_seconds = chunks * self.chunk_frames / 100  # mel frames are 10 ms

    @classmethod
    def load_pretrained(cls, source: str, dtype: torch.dtype, device: torch.device) -> nn.Module:
        from transformers import AutoConfig, Qwen3OmniMoeForConditionalGeneration

        if AutoConfig.from_pretrained(source).model_type == "qwen3_omni_moe_thinker":
            return super().load_pretrained(source, dtype, device)
        full = Qwen3OmniMoeForConditionalGeneration.from_pretrained(
            source, dtype=dtype, device_map=str(device), enable_audio_output=False
        )
        return full.thinker

    @classmethod
    def load_processor(cls, source: str):
        return audio_only_processor(source, Qwen3OmniMoeProcessor, Qwen3OmniAudioProcessor, "feature_extractor")

    def frame_lengths(self, mel_lengths):
        """Encoder frames (= tokens) of clips of `mel_lengths` mel frames: 13 per full 1 s chunk plus
        the last chunk's (the processor's and the model's `_get_feat_extract_output_lengths`)."""
        chunk = self.chunk_frames
        return (mel_lengths // chunk) * conv_frames(chunk) + conv_frames(mel_lengths % chunk)

    def audio_embeddings(self, features: torch.Tensor, feature_mask: torch.Tensor, input_ids=None) -> torch.Tensor:
        return self.model.model.get_audio_features(features, feature_mask, return_dict=True).last_hidden_state

    def scoring_rows(self, frame_lengths: torch.Tensor, window_frames: int) -> list[list[Span]]:
        """One packed row: every clip's frames in attention windows of `window_tokens` (the last shorter)."""
        spans, start = [], 0
        for n in frame_lengths.tolist():
            full, rest = divmod(n, self.window_tokens)
            for size in [self.window_tokens] * full + ([rest] if rest else []):
                spans.append(Span(start, size, size))
                start += size
        return [spans]

    def window_scores(self, frame_scores: list[torch.Tensor], frame_lengths: torch.Tensor) -> list[torch.Tensor]:
        """Each clip's token scores cut into its attention windows (each already sums to its length:
        the softmax ran within the window)."""
        windows = []
        for scores in frame_scores[0].split(frame_lengths.tolist()):
            windows += scores.split(self.window_tokens)
        return windows

    def no_eager_reason(self) -> str:
        return (
            "Qwen3-Omni's encoder attention returns no weights (each attention window is attended separately and "
            "only the outputs are kept), so output_attentions cannot give its scores."
        )

    @classmethod
    def random_init(cls, audio: dict, text: dict, name: str, init_std: float = TINY_INIT_STD) -> Qwen3OmniLM:
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *TOKENS.values()]
        tokenizer = byte_tokenizer(specials, eos="<|im_end|>", pad="<|endoftext|>", extra_special_tokens=TOKENS)
        processor = Qwen3OmniAudioProcessor(
            feature_extractor=whisper_features(), tokenizer=tokenizer, chat_template=TINY_TEMPLATE
        )
        head = text["hidden_size"] // text["num_attention_heads"]
        section = [head // 2 - 2 * (head // 6)] + [head // 6] * 2  # time, height, width halves of the rotary
        rope = dict(rope_type="default", rope_theta=1e6, mrope_section=section, interleaved=True)
        ids = {k: tokenizer.convert_tokens_to_ids(v) for k, v in TOKENS.items()}
        hidden = text["hidden_size"]
        config = Qwen3OmniMoeThinkerConfig(
            audio_config=dict(
                num_mel_bins=128, output_dim=hidden, downsample_hidden_size=16, initializer_range=init_std, **audio
            ),
            vision_config=dict(out_hidden_size=hidden, initializer_range=init_std, **TINY_VISION),
            text_config=text_config("qwen3_omni_moe_text", tokenizer, init_std, rope_parameters=rope, **text),
            audio_token_id=ids["audio_token"],
            image_token_id=ids["image_token"],
            video_token_id=ids["video_token"],
            audio_start_token_id=ids["audio_bos_token"],
            vision_start_token_id=ids["vision_bos_token"],  # get_rope_index reads it, audio only too
            position_id_per_seconds=13,
            initializer_range=init_std,
            segprune_random_weights=True,
        )
        return cls(seeded_init(cls.model_class, config), processor, name=name)
