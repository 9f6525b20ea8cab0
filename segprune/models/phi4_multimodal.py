"""Phi-4-multimodal-instruct (audio in, text out) on transformers' native Phi4Multimodal classes.

Audio path: Phi-4's own 80-bin log-mel features at 100 frames per second, time first ([B, T, 80]);
a NeMo convolutional subsampling (three stride-2 convolutions: 8x, 80 ms per frame); a conformer of
24 blocks whose self-attention is GLOBAL over its input, with a learned T5-style relative-position
bias added to the logits; then a two-layer MLP per frame. One encoder frame is one language-model
token: ceil(mel frames / 8) of them, 12.5 per second. A clip longer than 500 frames (40 s) is cut
into 500-frame chunks that the conformer runs separately (the last padded with zero frames): these
chunks are the windows of `AudioTokens` (`window_seconds` 40).

Scoring: the logits of the encoder's attention are q . k * scale + the mask tensor it is called
with, which is the relative-position bias PLUS the boolean validity of each key: a valid key gets
+1, a padded key +0, and no key is excluded (a lone clip's last chunk has no mask at all: its
zero padding counts as valid). The hook takes that very tensor (`phi4_qk`), so it scores what the
model computes; the valid frames are the queries and candidates, every frame of the chunk is a
key (as for GLM-ASR), and each window's scores are rescaled to mean 1. The attention module
discards its weights (`attn_output, _ = ...`), so there is no `output_attentions` baseline.
A batch of several clips needs left padding for generation (as every family here). transformers'
own encoder fails on a batch of several clips when one is over 40 s (`unfold_tensor` views a
non-contiguous tensor), with or without segprune; one clip at a time works at any length.

Language model: a Phi-3-style decoder (`Phi4MultimodalModel`) whose forward puts the audio
embeddings at the placeholders itself when it is given `input_ids`; given `inputs_embeds` (the kept
tokens, `DecoderOnlyLM.assemble`) it runs the decoder on them as they are. Positions are 0, 1, ...
along the row.

Processor: `Phi4MultimodalProcessor` needs torchvision for its image processor; `Phi4AudioProcessor`
below is that class without it (the same `__call__`: the audio placeholder repeated per token). A
real checkpoint uses `AutoProcessor` where torchvision is installed and falls back to it otherwise.

Checkpoint: microsoft/Phi-4-multimodal-instruct in transformers' own format. Its speech ability is
a LoRA adapter of the language model in the checkpoint's `speech-lora` folder: `load_pretrained`
loads it (through peft) and makes it the active adapter, as transformers' documentation does.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn
from transformers import (
    Phi4MultimodalConfig,
    Phi4MultimodalFeatureExtractor,
    Phi4MultimodalForCausalLM,
    Phi4MultimodalProcessor,
)
from transformers.processing_utils import ProcessorMixin

from ..scoring import Span, normalise
from .base import audio_only_processor
from .decoder_only import DecoderOnlyLM
from .tiny import TINY_INIT_STD, byte_tokenizer, seeded_init, text_config

CHUNK_FRAMES = 500  # the conformer's longest input ("maximum position for absolute positional encoding")
SPEECH_ADAPTER = "speech-lora"  # the checkpoint's folder holding the speech LoRA
# Phi-4's turns; each audio part is one placeholder, which the processor repeats per token.
TINY_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'audio' %}<|audio|>{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
TINY_VISION = dict(
    hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=28, patch_size=14
)


class Phi4AudioProcessor(Phi4MultimodalProcessor):
    """`Phi4MultimodalProcessor` without its image processor (it needs torchvision): the same audio
    path and chat template, for audio-only prompts."""

    def __init__(self, audio_processor=None, tokenizer=None, chat_template=None):
        for name in ("image_token", "image_token_id", "audio_token", "audio_token_id"):
            setattr(self, name, getattr(tokenizer, name))  # what Phi4MultimodalProcessor.__init__ reads
        ProcessorMixin.__init__(self, audio_processor, tokenizer, chat_template=chat_template)


def phi4_qk(module: nn.Module, hidden_states: torch.Tensor, kwargs: dict) -> tuple[torch.Tensor, ...]:
    """Queries (scaled), keys [B, heads, T, head_dim] and the additive logits term [B, heads, T, T] of
    Phi-4's conformer attention: the mask it is called with (relative-position bias + key validity)."""
    shape = (*hidden_states.shape[:-1], -1, module.head_dim)
    q = module.q_proj(hidden_states).view(shape).transpose(1, 2)
    k = module.k_proj(hidden_states).view(shape).transpose(1, 2)
    return q * module.scaling, k, kwargs["attention_mask"]


class Phi4MultimodalLM(DecoderOnlyLM):
    key = "phi-4-multimodal"
    model_class = Phi4MultimodalForCausalLM
    max_seconds = 1800.0  # segprune's cap, 30 min (22,500 tokens): neither the processor nor the encoder truncates
    window_seconds = CHUNK_FRAMES * 0.08  # the conformer's 500-frame chunks: 40 s
    token_duration = 0.08
    frames_per_token = 1  # the projector maps each encoder frame to one token
    attends_padding = True
    audio_first = True
    feature_mask_key = "audio_attention_mask"  # only in a batch of several clips
    audio_keys = ("audio_input_features", "audio_embed_sizes", "audio_attention_mask")
    tiny_audio = dict(
        hidden_size=64,
        intermediate_size=128,
        num_blocks=2,
        num_attention_heads=4,
        ext_pw_out_channel=64,
        depthwise_separable_out_channel=64,
        nemo_conv_channels=32,
    )
    scoring_qk = staticmethod(phi4_qk)

    @property
    def audio_token_id(self) -> int:
        return int(self.model.config.audio_config.audio_token_id)

    @property
    def audio_encoder(self) -> nn.Module:
        return self.model.model.embed_tokens_extend.audio_embed.encoder

    @property
    def language_model(self) -> nn.Module:
        return self.model.model

    def architecture(self) -> dict:
        audio, text = self.model.config.audio_config, self.model.config
        return {
            "encoder_layers": audio.num_blocks,
            "encoder_hidden": audio.hidden_size,
            "llm_layers": text.num_hidden_layers,
            "llm_hidden": text.hidden_size,
            "llm_heads": text.num_attention_heads,
            "llm_kv_heads": text.num_key_value_heads,
            "vocab": text.vocab_size,
        }

    def scoring_attentions(self, layers: int = 1) -> list[nn.Module]:
        blocks = self.audio_encoder.encoders
        if not isinstance(layers, int) or isinstance(layers, bool) or not 1 <= layers <= len(blocks):
            raise ValueError(f"Scores can average the last 1 to {len(blocks)} encoder layers, got {layers!r}.")
        return [block.self_attn for block in blocks[-layers:]]

    @classmethod
    def load_pretrained(cls, source: str, dtype: torch.dtype, device: torch.device) -> nn.Module:
        """The model, with its speech LoRA active: from a hub id, or from a local folder that has the
        `speech-lora` folder (a folder saved without it, a tiny model's, loads as it is)."""
        model = super().load_pretrained(source, dtype, device)
        if not Path(source).is_dir() or (Path(source) / SPEECH_ADAPTER).is_dir():
            model.load_adapter(source, adapter_name="speech", adapter_kwargs={"subfolder": SPEECH_ADAPTER})
            model.set_adapter("speech")
        return model

    @classmethod
    def load_processor(cls, source: str):
        return audio_only_processor(source, Phi4MultimodalProcessor, Phi4AudioProcessor, "audio_processor")

    # ------------------------------------------------------------------ frames and tokens
    def feature_mask(self, inputs) -> torch.Tensor:
        """[B, mel frames]: the processor's mask (it gives one for a batch of several clips), else all valid."""
        if self.feature_mask_key in inputs:
            return inputs[self.feature_mask_key].long()
        features = inputs["audio_input_features"]
        return torch.ones(features.shape[0], features.shape[1], dtype=torch.long, device=features.device)

    @staticmethod
    def frame_lengths(mel_lengths):
        """Encoder frames (= tokens) of `mel_lengths` valid mel frames: ceil(mel / 8), as the
        processor's `audio_embed_sizes` and the encoder's own padding mask count them."""
        return -(-mel_lengths // 8)

    @classmethod
    def token_lengths(cls, frame_lengths):
        return frame_lengths

    def audio_inputs(self, inputs):
        features = inputs["audio_input_features"].to(self.device, self.audio_encoder.dtype)  # [B, T, 80]
        feature_mask = self.feature_mask(inputs).to(self.device)
        frame_lengths = self.frame_lengths(feature_mask.sum(-1))
        rows = self.scoring_rows(frame_lengths, int(self.frame_lengths(torch.tensor(features.shape[1]))))
        input_ids = inputs["input_ids"].to(self.device) if "input_ids" in inputs else None
        return features, feature_mask, frame_lengths, rows, input_ids

    def scoring_rows(self, frame_lengths: torch.Tensor, window_frames: int) -> list[list[Span]]:
        """What the conformer's input holds: each clip as it is (all clips padded to the longest), or,
        past 500 frames, every clip cut into 500-frame chunks, one input row each (the clips' rows in
        order). In each row the clip's valid frames attend to every frame of the row."""
        if window_frames <= CHUNK_FRAMES:
            return [[Span(0, n, window_frames)] for n in frame_lengths.tolist()]
        chunks = math.ceil(window_frames / CHUNK_FRAMES)
        return [
            [Span(0, min(max(n - c * CHUNK_FRAMES, 0), CHUNK_FRAMES), CHUNK_FRAMES)]
            for n in frame_lengths.tolist()
            for c in range(chunks)
        ]

    def window_scores(self, frame_scores: list[torch.Tensor], frame_lengths: torch.Tensor) -> list[torch.Tensor]:
        """One window per conformer input row (a clip, or one of its 40 s chunks), each rescaled to mean 1."""
        return [normalise(s) for s in frame_scores]

    def no_eager_reason(self) -> str:
        return (
            "Phi-4-multimodal's encoder attention returns no weights (its attention call keeps only the output), "
            "so output_attentions cannot give its scores."
        )

    def audio_embeddings(self, features: torch.Tensor, feature_mask: torch.Tensor, input_ids=None) -> torch.Tensor:
        """The embeddings `Phi4MultimodalAudioEmbedding.forward` puts at the placeholders (speech mode):
        encoder, up projection, GELU, down projection, each clip's first ceil(mel / 8) frames."""
        embed = self.model.model.embed_tokens_extend.audio_embed
        lengths = feature_mask.sum(-1)
        mask = feature_mask.bool() if features.shape[0] > 1 else None  # the processor masks batches only
        hidden = embed.encoder(features, mask)
        hidden = embed.down_proj_for_speech(nn.functional.gelu(embed.up_proj_for_speech(hidden)))
        sizes = self.frame_lengths(lengths).tolist()
        return torch.cat([hidden[i, :n] for i, n in enumerate(sizes)])

    @classmethod
    def random_init(cls, audio: dict, text: dict, name: str, init_std: float = TINY_INIT_STD) -> Phi4MultimodalLM:
        specials = ["<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<|audio|>", "<|image|>"]
        tokens = {"audio_token": "<|audio|>", "image_token": "<|image|>"}
        tokenizer = byte_tokenizer(specials, eos="<|end|>", pad="<|endoftext|>", extra_special_tokens=tokens)
        processor = Phi4AudioProcessor(Phi4MultimodalFeatureExtractor(), tokenizer, chat_template=TINY_TEMPLATE)
        fields = text_config("phi4_multimodal", tokenizer, init_std, **text)
        del fields["model_type"]
        config = Phi4MultimodalConfig(
            **fields,
            bos_token_id=tokenizer.pad_token_id,
            vision_config=dict(TINY_VISION, crop_size=28, image_token_id=tokenizer.image_token_id),
            audio_config=dict(audio_token_id=tokenizer.audio_token_id, initializer_range=init_std, **audio),
            segprune_random_weights=True,
        )
        return cls(seeded_init(cls.model_class, config), processor, name=name)
