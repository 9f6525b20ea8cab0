"""Whisper (tiny ... large-v3) on transformers' native WhisperForConditionalGeneration.

An encoder-decoder: there is no placeholder run in a prompt. The encoder turns one 30 s window of
log-mel features (padded to 3000 frames, no mask) into 1500 frames, 50 per second, and the decoder
reads them through cross-attention. Pruning keeps K of the 1500 frames, in temporal order, and the
decoder cross-attends to those only; the frames carry their positions in themselves (added before
the encoder layers), so nothing else changes. The decoder relies on the padding frames of its
window too, so all 1500 frames are candidates and the scores are taken over all of them.

What gets faster: `prefill` is the decoder's first forward over its prompt (<|startoftranscript|>,
language, task, <|notimestamps|>), which projects the K frames into every layer's cross-attention
keys and values, and each decoded token attends to K frames instead of 1500. The encoder does NOT
get faster: it always runs the full 30 s window (encoder_ms), before any frame can be scored.

The prompt text of a request is not used: Whisper transcribes (the language is detected on the
frames it sees, as `generate` does). Audio over 30 s is truncated.
"""

from __future__ import annotations

import copy
import logging
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from transformers import (
    LogitsProcessorList,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
    WhisperProcessor,
)
from transformers.modeling_outputs import BaseModelOutput

from ..audio import Audio
from ..timing import Stopwatch
from . import prompts
from .base import AudioLM, StepClock
from .tiny import TINY_INIT_STD, byte_tokenizer, seeded_init
from .types import Generation

# What transformers logs on every Whisper run, about how Whisper's own `generate` calls the generic one
# (a generation config beside its suppress-token lists; the checkpoints' max_length = 448 beside our
# max_new_tokens) and about the checkpoints' old `forced_decoder_ids` (the language is detected, as this
# adapter means it to be). Expected and harmless here: dropped while the adapter runs Whisper's code.
EXPECTED_LOGS = (
    "Passing `generation_config` together with generation-related arguments",
    "Both `max_new_tokens`",
    "Using custom `forced_decoder_ids` from the (generation) config",
    "Transcription using a multilingual Whisper will default to language detection",
)
EXPECTED_LOGGERS = ("transformers.generation.utils", "transformers.models.whisper.generation_whisper")


class _DropExpected(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(EXPECTED_LOGS)


@contextmanager
def expected_logs_dropped():
    """Within: transformers' EXPECTED_LOGS are not printed (a filter of this call's own on their two
    loggers, removed on exit); every other message passes as usual."""
    loggers, drop = [logging.getLogger(name) for name in EXPECTED_LOGGERS], _DropExpected()
    for logger in loggers:
        logger.addFilter(drop)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(drop)


WHISPER_SPECIALS = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|de|>", "<|translate|>", "<|transcribe|>"]
WHISPER_SPECIALS += ["<|startoflm|>", "<|startofprev|>", "<|nospeech|>", "<|notimestamps|>"]


@dataclass
class EncoderDecoderInputs:
    """What Whisper's decoder receives: its prompt `input_ids`, `attention_mask` [B, P]
    (<|startoftranscript|>, language, task, <|notimestamps|>) and the kept encoder frames
    `encoder_hidden_states` [B, K, D] that its cross-attention reads. The counts and
    `generate_kwargs()` follow `types.LLMInputs`."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    encoder_hidden_states: torch.Tensor
    audio_tokens: list[int]
    kept: list[torch.Tensor] = field(default_factory=list)
    prompt: str | None = None

    @property
    def prompt_tokens(self) -> int:
        """Decoder prompt tokens plus the encoder frames its prefill projects (the cross-attention memory)."""
        return int(self.attention_mask[0].sum()) + self.audio_tokens[0]

    @property
    def new_tokens_start(self) -> int:
        return 0  # Whisper's generate returns only the new tokens

    def generate_kwargs(self) -> dict:
        return {"encoder_outputs": BaseModelOutput(last_hidden_state=self.encoder_hidden_states)}


class WhisperLM(AudioLM):
    key = "whisper"
    model_class = WhisperForConditionalGeneration
    max_seconds = 30.0
    token_duration = 0.02  # one encoder frame
    frames_per_token = 1
    uses_prompt = False  # Whisper transcribes; the prompt text is not used
    feature_mask_key = None  # the encoder has no mask: all 1500 frames are used
    tiny_audio = dict(d_model=64, encoder_layers=2, encoder_attention_heads=4, encoder_ffn_dim=128)
    tiny_text = dict(decoder_layers=2, decoder_attention_heads=4, decoder_ffn_dim=128)

    @property
    def language_model(self) -> torch.nn.Module:
        return self.model.model.decoder

    @property
    def audio_encoder(self) -> torch.nn.Module:
        return self.model.model.encoder

    @property
    def context_length(self) -> int:
        return int(self.model.config.max_target_positions)  # the decoder's positions (448)

    def architecture(self) -> dict:
        c = self.model.config
        return {
            "encoder_layers": c.encoder_layers,
            "encoder_hidden": c.d_model,
            "llm_layers": c.decoder_layers,
            "llm_hidden": c.d_model,
            "llm_heads": c.decoder_attention_heads,
            "llm_kv_heads": c.decoder_attention_heads,
            "vocab": c.vocab_size,
        }

    def prompt_tokens(self, inputs) -> int:
        return 4  # the longest decoder prompt: <|startoftranscript|>, language, task, <|notimestamps|>

    def inputs(self, audio: Audio, prompt: str):
        prompts.check_text(prompt)  # not used, but refused where it is not text, as for every family
        return self.processor(audio=audio.samples, sampling_rate=audio.sample_rate, return_tensors="pt")

    def audio_counts(self, inputs) -> list[int]:
        features = inputs["input_features"]
        return [int(self.frame_lengths(torch.tensor(features.shape[-1])))] * features.shape[0]

    def audio_embeddings(self, features: torch.Tensor, feature_mask=None, input_ids=None) -> torch.Tensor:
        hidden = self.audio_encoder(features).last_hidden_state
        return hidden.reshape(-1, hidden.shape[-1])

    # ------------------------------------------------------------------ decoder
    @torch.inference_mode()
    def assemble(self, inputs, kept: list[torch.Tensor], prompt: str | None = None) -> EncoderDecoderInputs:
        """The decoder prompt and the kept encoder frames. kept: one [K, D] per batch row, the same K."""
        if len({int(k.shape[0]) for k in kept}) != 1:
            raise ValueError(
                "Whisper's cross-attention has no mask: every batch row must keep the same number of frames."
            )
        frames = torch.stack([k.to(self.device, self.dtype) for k in kept])
        decoder_prompt = self._decoder_prompt(frames).to(self.device)
        return EncoderDecoderInputs(
            input_ids=decoder_prompt,
            attention_mask=torch.ones_like(decoder_prompt),
            encoder_hidden_states=frames,
            audio_tokens=[int(k.shape[0]) for k in kept],
            kept=list(kept),
            prompt=prompt,
        )

    def _decoder_prompt(self, frames: torch.Tensor) -> torch.Tensor:
        """The init tokens Whisper's own `generate` starts from with these encoder frames (the
        language detected on them when the generation config names none), [B, P]."""
        config = copy.deepcopy(self.model.generation_config)
        self.model._set_return_timestamps(return_timestamps=None, is_shortform=True, generation_config=config)
        segment = self.model.config.max_source_positions * 2  # mel frames of one 30 s window
        with expected_logs_dropped():
            return self.model._retrieve_init_tokens(
                None,
                batch_size=frames.shape[0],
                generation_config=config,
                config=self.model.config,
                num_segment_frames=segment,
                kwargs={"encoder_outputs": BaseModelOutput(last_hidden_state=frames)},
            )

    @torch.inference_mode()
    def prefill(self, x: EncoderDecoderInputs) -> torch.Tensor:
        """The decoder over its prompt with cross-attention to the kept frames (filling both caches)
        and the output projection on the last position. Returns logits [B, 1, vocab]."""
        out = self.language_model(input_ids=x.input_ids, encoder_hidden_states=x.encoder_hidden_states, use_cache=True)
        return self.model.proj_out(out.last_hidden_state[:, -1:])

    @torch.inference_mode()
    def generate(self, x: EncoderDecoderInputs, max_new_tokens: int = 64) -> list[Generation]:
        """Whisper's own greedy `generate` on the kept frames; one `Generation` per row (the ids
        after the decoder prompt, up to and including the end of text)."""
        clock = StepClock(self.device)
        with expected_logs_dropped(), Stopwatch(self.device) as sw:
            out = self.model.generate(
                **x.generate_kwargs(),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                num_beams=1,
                logits_processor=LogitsProcessorList([clock]),
                pad_token_id=self.pad_token_id,
            )
        per_token = clock.ms_per_token()
        eos = self.model.generation_config.eos_token_id
        eos = set(eos if isinstance(eos, list) else [eos])
        results = []
        for row in out.tolist():
            end = next((i + 1 for i, t in enumerate(row) if t in eos), len(row))
            results.append(Generation(row[:end], self.decode(row[:end]), sw.ms, per_token))
        return results

    @classmethod
    def random_init(cls, audio: dict, text: dict, name: str, init_std: float = TINY_INIT_STD) -> WhisperLM:
        """`audio`: encoder fields (d_model, encoder_*), `text`: decoder fields (decoder_*)."""
        tokenizer = byte_tokenizer(
            WHISPER_SPECIALS, eos="<|endoftext|>", pad="<|endoftext|>", bos_token="<|endoftext|>"
        )
        features = WhisperFeatureExtractor(
            feature_size=80, sampling_rate=16000, hop_length=160, chunk_length=30, n_fft=400
        )  # whisper-tiny ... medium: 80 mel bins (large-v3: 128)
        ids = {t: tokenizer.convert_tokens_to_ids(t) for t in WHISPER_SPECIALS}
        config = WhisperConfig(
            vocab_size=len(tokenizer),
            num_mel_bins=80,
            max_source_positions=1500,
            max_target_positions=448,
            decoder_start_token_id=ids["<|startoftranscript|>"],
            bos_token_id=ids["<|endoftext|>"],
            eos_token_id=ids["<|endoftext|>"],
            pad_token_id=ids["<|endoftext|>"],
            init_std=init_std,
            segprune_random_weights=True,
            **audio,
            **text,
        )
        model = seeded_init(cls.model_class, config)
        generation = model.generation_config
        generation.decoder_start_token_id = ids["<|startoftranscript|>"]
        generation.no_timestamps_token_id = ids["<|notimestamps|>"]
        generation.is_multilingual = True
        generation.lang_to_id = {"<|en|>": ids["<|en|>"], "<|de|>": ids["<|de|>"]}
        generation.task_to_id = {"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]}
        generation.suppress_tokens, generation.begin_suppress_tokens = [], []
        generation.max_length = 448
        generation._from_model_config = False  # saved as written (with the Whisper fields above)
        return cls(model, WhisperProcessor(feature_extractor=features, tokenizer=tokenizer), name=name)
