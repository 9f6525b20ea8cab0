"""Voxtral Mini on transformers' native Voxtral classes.

Audio path: the clip is padded to whole 30 s chunks (480000 samples) and cut into windows of 3000
mel frames; a Whisper-large-v3-style encoder WITHOUT attention mask (every frame, the padding
included, attends to every frame of its window) -> 4 frames concatenated per token -> MLP
projector: 375 tokens per window, 12.5 per second. The language model receives ALL of them, the
padded tail of the last window too, so N counts them, they are candidates like any other token,
and the scores are taken over every frame of every window.

The real prompt comes from `mistral-common` (the optional extra ``segprune[voxtral]``) through
`VoxtralProcessor.apply_chat_template`: ``<s>[INST][BEGIN_AUDIO][AUDIO]*N text[/INST]``. The tiny
variant has no mistral-common tokenizer; it builds that same layout itself and computes the
features with the processor's own feature code.
"""

from __future__ import annotations

import base64
import io

import torch
from transformers import BatchFeature, VoxtralConfig, VoxtralForConditionalGeneration, VoxtralProcessor

from ..audio import Audio
from . import prompts
from .decoder_only import DecoderOnlyLM
from .tiny import TINY_INIT_STD, byte_tokenizer, seeded_init, text_config, whisper_features

# Mistral's special token ids up to [BEGIN_AUDIO]; VoxtralProcessor hard-codes [AUDIO] = 24.
MISTRAL_SPECIALS = ["<unk>", "<s>", "</s>", "[INST]", "[/INST]"] + [f"<SPECIAL_{i}>" for i in range(5, 24)]
MISTRAL_SPECIALS[11] = "<pad>"
MISTRAL_SPECIALS += ["[AUDIO]", "[BEGIN_AUDIO]"]


class VoxtralLM(DecoderOnlyLM):
    key = "voxtral-mini"
    model_class = VoxtralForConditionalGeneration
    max_seconds = 1800.0  # the model card: up to 30 minutes (40 for understanding; 32k-token context)
    token_duration = 0.08
    frames_per_token = 4
    feature_mask_key = None  # no mask: all frames of every 30 s window reach the language model
    tiny_audio = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256)

    @property
    def _has_mistral_tokenizer(self) -> bool:
        return type(self.processor.tokenizer).__name__ == "MistralCommonBackend"

    def inputs(self, audio: Audio, prompt: str):
        if self._has_mistral_tokenizer:
            return self._mistral_inputs(audio, prompt)
        # the layout mistral-common produces, and the features as VoxtralProcessor computes them
        kwargs = self.processor._merge_kwargs()["audio_kwargs"]
        features = self.processor._retrieve_input_features(
            [audio.samples], kwargs.pop("max_source_positions"), **kwargs
        )
        tok = self.tokenizer
        n = features.shape[0] * self.token_lengths(self.frame_lengths(torch.tensor(features.shape[-1]))).item()
        ids = tok.convert_tokens_to_ids(["<s>", "[INST]", "[BEGIN_AUDIO]"]) + [self.audio_token_id] * n
        ids += prompts.prompt_ids(tok, prompt, self.name) + tok.convert_tokens_to_ids(["[/INST]"])  # as text
        ids = torch.tensor([ids])
        return BatchFeature({"input_ids": ids, "attention_mask": torch.ones_like(ids), "input_features": features})

    def _mistral_inputs(self, audio: Audio, prompt: str):
        """mistral-common's layout; its tekken tokenizer encodes the prompt as text (it has no special
        tokens in its text encoder: `[INST]` or `[AUDIO]` in a prompt are plain characters)."""
        import soundfile

        prompts.check_text(prompt)
        wav = io.BytesIO()
        soundfile.write(wav, audio.samples, audio.sample_rate, format="WAV", subtype="FLOAT")
        clip = base64.b64encode(wav.getvalue()).decode()
        content = [{"type": "audio", "base64": clip}, {"type": "text", "text": prompt}]
        return self.processor.apply_chat_template([{"role": "user", "content": content}])

    def audio_embeddings(self, features: torch.Tensor, feature_mask=None, input_ids=None) -> torch.Tensor:
        return self.model.model.get_audio_features(features, return_dict=True).pooler_output

    @classmethod
    def random_init(cls, audio: dict, text: dict, name: str, init_std: float = TINY_INIT_STD) -> VoxtralLM:
        tokenizer = byte_tokenizer(MISTRAL_SPECIALS, eos="</s>", pad="<pad>", specials_first=True, bos_token="<s>")
        processor = VoxtralProcessor(feature_extractor=whisper_features(), tokenizer=tokenizer)
        text = dict(head_dim=text["hidden_size"] // text["num_attention_heads"], **text)
        config = VoxtralConfig(
            audio_config=dict(num_mel_bins=128, initializer_range=init_std, **audio),
            text_config=text_config("llama", tokenizer, init_std, **text),
            audio_token_id=processor.audio_token_id,
            segprune_random_weights=True,
        )
        return cls(seeded_init(cls.model_class, config), processor, name=name)
