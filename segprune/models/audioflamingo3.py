"""Audio Flamingo 3 (the paper's second model) on transformers' native AudioFlamingo3 classes.

Audio path: the processor cuts the clip into 30 s windows (at most 20: 10 minutes), each padded
to 3000 mel frames; a Whisper-large-v3-style encoder -> 2x average pooling -> LayerNorm -> MLP
projector gives 750 tokens per full window, 25 per second. `get_audio_features` is the native seam.
The log-mel features are computed two windows at a time (`inputs`): the processor's values, with
temporaries that stay the same size whatever the clip's length.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

import torch
from transformers import (
    AudioFlamingo3Config,
    AudioFlamingo3ForConditionalGeneration,
    AudioFlamingo3Processor,
    BatchFeature,
)

from ..audio import Audio
from .decoder_only import DecoderOnlyLM
from .tiny import TINY_INIT_STD, byte_tokenizer, chatml_template, seeded_init, text_config, whisper_features


class AudioFlamingo3LM(DecoderOnlyLM):
    key = "audio-flamingo-3"
    model_class = AudioFlamingo3ForConditionalGeneration
    max_seconds = 600.0
    audio_first = False  # the model card puts the text before the audio; the template moves <sound> first
    feature_mask_key = "input_features_mask"
    tiny_audio = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128)

    windows_per_call: ClassVar[int] = 2  # the feature extractor runs on at most this many 30 s windows at a time

    def __init__(self, model, processor, name: str | None = None):
        super().__init__(model, processor, name)
        limit = getattr(processor, "max_audio_len", None)
        if limit:  # the processor decides (a saved folder of another checkpoint of these classes too): whole windows
            window = processor.feature_extractor.chunk_length
            self.max_seconds = float(int(limit // window) * window)

    def inputs(self, audio: Audio, prompt: str):
        """The processor's output (the shared path, `DecoderOnlyLM.inputs`), its log-mel features
        computed `windows_per_call` windows at a time.

        The processor cuts the clip into 30 s windows and transforms all of them in one batch, whose
        temporaries (the padded waveforms, their sample-level mask, the complex spectra) grow with the
        window count: `segprune run` on 30 minutes peaked at 1,639 MB of RSS that way, 930 MB in pieces
        (benchmarks/RESULTS.md). Every window is padded and transformed on its own,
        and a full window's 3000 mel frames make exactly 750 tokens, so the pieces' features and
        token counts add up to the processor's own (tests/test_long.py checks it); the prompt ids are
        the first piece's, with its placeholder run stretched to all N tokens.
        """
        seconds = self.processor.feature_extractor.chunk_length
        window = int(audio.sample_rate * seconds)
        samples = audio.samples[: int(self.max_seconds // seconds) * window]  # where the processor cuts
        step = self.windows_per_call * window
        if len(samples) <= step:
            return super().inputs(audio, prompt)
        windows = -(-len(samples) // window)
        out, n = None, 0
        for first in range(0, windows, self.windows_per_call):
            part = super().inputs(replace(audio, samples=samples[first * window : first * window + step]), prompt)
            if out is None:  # filled in place: no second copy of the clip's features
                out = dict(part)
                for key in ("input_features", self.feature_mask_key):
                    out[key] = part[key].new_empty((windows, *part[key].shape[1:]))
            last = first + part["input_features"].shape[0]
            for key in ("input_features", self.feature_mask_key):
                out[key][first:last] = part[key]
            n += self.audio_counts(part)[0]
        out["input_ids"], out["attention_mask"] = self._stretched(out["input_ids"], out["attention_mask"], n)
        return BatchFeature(out)

    def _stretched(self, ids: torch.Tensor, mask: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """ids [1, L] and mask [1, L] with their one run of audio placeholders made `n` long."""
        where = torch.nonzero(ids[0] == self.audio_token_id).flatten()
        start, end = int(where[0]), int(where[-1]) + 1
        run = ids.new_full((1, n), self.audio_token_id)
        ids = torch.cat([ids[:, :start], run, ids[:, end:]], dim=1)
        mask = torch.cat([mask[:, :start], mask.new_ones((1, n)), mask[:, end:]], dim=1)
        return ids, mask

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
