"""The adapter contract: what segprune needs from an audio-language model family.

An adapter wraps a native transformers model and its processor and offers four steps:

    inputs   = lm.inputs(audio, prompt)         processor output (placeholders expanded to N)
    [tokens] = lm.encode(inputs)                 audio path ONCE: embeddings [N, H] + scores [N]
    llm_in   = lm.assemble(inputs, [kept])      the language model's input with only the kept tokens
    lm.generate(llm_in) / lm.prefill(llm_in)    the language model sees only the kept tokens

`AudioLM` (this module) implements the audio half for Whisper-style encoders run on 30 s windows,
and declares the language-model half. `decoder_only.DecoderOnlyLM` implements that half for
models whose prompt holds a run of audio placeholders (Qwen2-Audio, Audio Flamingo 3,
MusicFlamingo, Voxtral, GLM-ASR, Qwen2.5-Omni); `whisper.WhisperLM` for the encoder-decoder
Whisper. A family adapter names its classes and limits, runs its audio path
(`audio_embeddings`), and overrides the frame and token arithmetic (`frames_per_token`,
`token_lengths`), which frames the scoring layer sees (`attends_padding`, `scoring_rows`) or its
queries and keys (`scoring_qk`) where its encoder differs.

A prompt is text (`prompts`): `inputs` never lets its characters become control tokens. The strings
of the tokenizer's added tokens in it (`<|im_start|>`, `<|AUDIO|>`, `<sound>`, `[INST]`, ...) are
encoded as the plain characters they are, so no prompt changes the placeholder count or opens a chat
turn or role; the little that cannot be text is refused with one ValueError sentence. The same for
every family: `DecoderOnlyLM.inputs` renders the template around `prompts.marked(tokenizer, prompt)`
and calls `prompts.processor_inputs`; an adapter that lays out the ids itself takes the prompt's from
`prompts.prompt_ids`; Voxtral's mistral-common tokenizer (tekken) encodes text without special tokens
by design; Whisper does not use the prompt (and refuses what is not text all the same).

Public seams, for the pruner, the benchmark and the evaluation (nothing outside `segprune.models`
reaches into `lm.model` internals): `audio_encoder`, `language_model`, `feature_mask(inputs)`,
`audio_inputs(inputs)`, `frame_lengths(mel_lengths)`, `token_lengths(frame_lengths)`,
`scoring_rows(...)`, `scoring_attentions(layers)`, `audio_embeddings(...)`, `audio_counts(inputs)`,
`prompt_tokens(inputs)`, `eager_scores(inputs)`, `parameter_counts()`, `architecture()`.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from ..audio import Audio
from ..methods import DEFAULT_METHOD
from ..scoring import ReceivedAttention, Span, normalise, pool_scores, whisper_qk
from ..timing import Stopwatch, synchronize
from .eager import NoEagerBaseline
from .types import AudioTokens, Generation


class StepClock:
    """A pass-through logits processor (for `generate(logits_processor=...)`) that notes the time
    at every decoding step: step i's scores exist once token i's forward pass is done."""

    def __init__(self, device):
        self.device = device
        self.times: list[float] = []

    def __call__(self, input_ids, scores):
        synchronize(self.device)
        self.times.append(time.perf_counter())
        return scores

    def ms_per_token(self) -> float:
        """Mean time between consecutive steps (the decoding steps after the first token), or NaN."""
        steps = np.diff(self.times) * 1e3
        return float(np.mean(steps)) if len(steps) else float("nan")


class AudioLM:
    """Base adapter. Subclasses set the class variables and implement `audio_embeddings` and the
    language-model half (`assemble`, `prefill`, `generate`, `audio_counts`, `prompt_tokens`)."""

    key: ClassVar[str]  # registry key, e.g. "qwen2-audio"; the tiny variant is "tiny-<key>"
    model_class: ClassVar[type]
    max_seconds: ClassVar[float]
    window_seconds: ClassVar[float] = 30.0  # one encoder window (token_seconds restart there)
    token_duration: ClassVar[float] = 0.04  # seconds of audio per LLM token
    frames_per_token: ClassVar[int] = 2  # encoder frames pooled (or concatenated) into one token
    attends_padding: ClassVar[bool] = False  # the encoder has no key mask: padding frames are keys too
    uses_prompt: ClassVar[bool] = True  # the prompt text reaches the model (Whisper: no)
    default_method: ClassVar[str] = DEFAULT_METHOD  # the selection method the app and `segprune run` start at
    feature_mask_key: ClassVar[str | None]  # None: the processor returns no mask (all frames valid)
    # the processor outputs that carry the audio, its features first (what `segprune.prune` takes out)
    audio_keys: ClassVar[tuple[str, ...]] = ("input_features",)
    tiny_audio: ClassVar[dict]  # encoder config fields of the tiny variant
    tiny_text: ClassVar[dict | None] = None  # language-model config fields of the tiny variant (None: shared)
    scoring_qk = staticmethod(whisper_qk)  # queries/keys of the scoring layer

    def __init__(self, model: nn.Module, processor, name: str | None = None):
        self.model = model
        self.processor = processor
        self.name = name or getattr(model.config, "_name_or_path", "") or self.key
        self.random_weights = bool(getattr(model.config, "segprune_random_weights", False))

    # ------------------------------------------------------------------ construction
    @classmethod
    def random_init(cls, audio: dict, text: dict, name: str, init_std: float = 0.02) -> AudioLM:
        """This family with RANDOM weights, built offline from config fields (`audio` for the
        encoder config, `text` for the language model's), with an in-memory tokenizer and the real
        processor class. The config is marked ``segprune_random_weights=True``."""
        raise NotImplementedError

    @classmethod
    def load_pretrained(cls, source: str, dtype: torch.dtype, device: torch.device) -> nn.Module:
        """The model from a hub id or local folder (a family whose checkpoints hold more than the
        model it needs overrides this)."""
        return cls.model_class.from_pretrained(source, dtype=dtype, device_map=str(device))

    @classmethod
    def load_processor(cls, source: str):
        from transformers import AutoProcessor

        return AutoProcessor.from_pretrained(source)

    # ------------------------------------------------------------------ properties
    @property
    def device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.get_input_embeddings().weight.dtype

    @property
    def context_length(self) -> int:
        """The most tokens (prompt + answer) the language model reads."""
        return int(self.model.config.get_text_config().max_position_embeddings)

    @property
    def audio_encoder(self) -> nn.Module:
        return self.model.model.audio_tower

    @property
    def language_model(self) -> nn.Module:
        """The module whose forward `prefill` times (the decoder-only LLM, or Whisper's decoder)."""
        raise NotImplementedError

    @property
    def tokenizer(self):
        if self.processor is None:
            raise RuntimeError("This adapter was built without a processor; it cannot tokenise or decode.")
        return self.processor.tokenizer

    @property
    def pad_token_id(self) -> int:
        pad = self.processor.tokenizer.pad_token_id if self.processor is not None else None
        if pad is None:
            pad = self.model.generation_config.pad_token_id
        return int(pad) if pad is not None else 0

    def parameter_counts(self) -> dict[str, int]:
        """Parameters of the whole model, of its audio encoder, and of the rest."""
        total = sum(p.numel() for p in self.model.parameters())
        encoder = sum(p.numel() for p in self.audio_encoder.parameters())
        return {"total": total, "audio_encoder": encoder, "rest": total - encoder}

    def architecture(self) -> dict:
        """Sizes of the audio encoder and the language model (for reports)."""
        audio, text = self.model.config.audio_config, self.model.config.get_text_config()
        return {
            "encoder_layers": audio.num_hidden_layers,
            "encoder_hidden": audio.hidden_size,
            "llm_layers": text.num_hidden_layers,
            "llm_hidden": text.hidden_size,
            "llm_heads": text.num_attention_heads,
            "llm_kv_heads": getattr(text, "num_key_value_heads", text.num_attention_heads),
            "vocab": text.vocab_size,
        }

    # ------------------------------------------------------------------ requests
    def inputs(self, audio: Audio, prompt: str):
        """Processor output (BatchFeature) for one clip and prompt; audio longer than the model
        takes must be truncated by the caller (see `Audio.truncated`)."""
        raise NotImplementedError

    def prompt_tokens(self, inputs) -> int:
        """Tokens the language model would prefill for this processor output, unpruned (audio included)."""
        raise NotImplementedError

    def audio_counts(self, inputs) -> list[int]:
        """N of each batch row of a processor output."""
        raise NotImplementedError

    # ------------------------------------------------------------------ audio path
    def audio_embeddings(self, features: torch.Tensor, feature_mask: torch.Tensor, input_ids: torch.Tensor | None):
        """Run the family's audio encoder + projector exactly as its forward does.

        features: [W, mel, frames], feature_mask: [W, frames] (W encoder windows), input_ids: the
        processor's (unpruned) prompt ids [B, L] or None. Returns the audio embeddings the language
        model would receive, all windows in order, [sum of tokens, H].
        """
        raise NotImplementedError

    def scoring_attentions(self, layers: int = 1) -> list[nn.Module]:
        """The self-attention modules of the encoder's last `layers` layers (the last one last)."""
        blocks = self.audio_encoder.layers
        if not isinstance(layers, int) or isinstance(layers, bool) or not 1 <= layers <= len(blocks):
            raise ValueError(f"Scores can average the last 1 to {len(blocks)} encoder layers, got {layers!r}.")
        return [block.self_attn for block in blocks[-layers:]]

    def feature_mask(self, inputs) -> torch.Tensor:
        """[W, mel frames]: 1 for the valid mel frames of each window (all of them without a mask)."""
        if self.feature_mask_key is None:
            features = inputs["input_features"]
            return torch.ones(features.shape[0], features.shape[-1], dtype=torch.long, device=features.device)
        return inputs[self.feature_mask_key]

    def scoring_rows(self, frame_lengths: torch.Tensor, window_frames: int) -> list[list[Span]]:
        """What the scoring layer's input holds, one list of spans per batch row (see `Span`): the
        valid frames of each window, attending to the valid frames, or to all frames of the window
        when the encoder has no key mask."""
        return [[Span(0, n, window_frames if self.attends_padding else n)] for n in frame_lengths.tolist()]

    def window_scores(self, frame_scores: list[torch.Tensor], frame_lengths: torch.Tensor) -> list[torch.Tensor]:
        """LLM-token scores of each encoder window, in order, from the frame scores of each scoring
        row: each window normalised to mean 1, then pooled like the encoder pools its frames."""
        token_lengths = self.token_lengths(frame_lengths).clamp(min=0)
        return [pool_scores(normalise(s), int(n), self.frames_per_token) for s, n in zip(frame_scores, token_lengths)]

    @staticmethod
    def frame_lengths(mel_lengths: torch.Tensor) -> torch.Tensor:
        """Valid encoder frames (after the stride-2 convolution) per window."""
        return (mel_lengths - 1) // 2 + 1

    @classmethod
    def token_lengths(cls, frame_lengths: torch.Tensor) -> torch.Tensor:
        """LLM tokens per window after pooling (or concatenating) `frames_per_token` frames."""
        n = cls.frames_per_token
        return (frame_lengths - n) // n + 1

    def audio_inputs(self, inputs):
        """What the audio path and the scoring hook take from a processor output: features [W, mel,
        frames], feature mask [W, frames], frame lengths [W], scoring rows (`scoring_rows`), input ids."""
        features = inputs["input_features"].to(self.device, self.audio_encoder.dtype)
        feature_mask = self.feature_mask(inputs).to(self.device)
        frame_lengths = self.frame_lengths(feature_mask.sum(-1))
        rows = self.scoring_rows(frame_lengths, int(self.frame_lengths(torch.tensor(features.shape[-1]))))
        input_ids = inputs["input_ids"].to(self.device) if "input_ids" in inputs else None
        return features, feature_mask, frame_lengths, rows, input_ids

    @torch.inference_mode()
    def encode(self, inputs, score_layers: int = 1) -> list[AudioTokens]:
        """Encode the audio of a processed batch once: one `AudioTokens` per batch row, with the
        row's N equal to its number of audio tokens.

        score_layers: scores are the attention received in the encoder's last layer (1, the
        paper's choice) or its mean over the last `score_layers` layers (one hook per layer: the
        scoring cost grows linearly with it).
        """
        features, feature_mask, frame_lengths, rows, input_ids = self.audio_inputs(inputs)
        hooks = [ReceivedAttention(a, rows, self.scoring_qk) for a in self.scoring_attentions(score_layers)]
        with Stopwatch(self.device) as total, ExitStack() as stack:
            for hook in hooks:
                stack.enter_context(hook)
            embeddings = self.audio_embeddings(features, feature_mask, input_ids)
        frame_scores = [torch.stack(per_layer).mean(0) for per_layer in zip(*(h.scores for h in hooks))]
        window_scores = self.window_scores(frame_scores, frame_lengths)
        scoring_ms = sum(h.ms for h in hooks)
        return self._split_rows(self.audio_counts(inputs), embeddings, window_scores, total.ms - scoring_ms, scoring_ms)

    def eager_scores(self, inputs, with_hook: bool = False):
        """The peers' way to the same scores (see `eager.eager_scores`): [sum N] float64, for the
        benchmark's baseline and the tests (with_hook: and the hook's scores of that same pass).
        Raises NoEagerBaseline where the encoder returns no weights."""
        from .eager import eager_scores

        return eager_scores(self, inputs, with_hook)

    def no_eager_reason(self) -> str:
        return f"{self.key}'s encoder attention returns no weights in eager mode."

    def _split_rows(self, counts, embeddings, window_scores, encoder_ms, scoring_ms) -> list[AudioTokens]:
        """Assign consecutive windows to batch rows by each row's audio token count."""
        window_sizes = [len(s) for s in window_scores]
        if sum(counts) != sum(window_sizes) or embeddings.shape[0] != sum(window_sizes):
            raise RuntimeError(
                f"Audio placeholders ({sum(counts)}) and encoder tokens ({embeddings.shape[0]}) do not match."
            )
        rows, window, offset = [], 0, 0
        for count in counts:
            starts, row_scores, size = [], [], 0
            while size < count:
                starts.append(size)
                row_scores.append(window_scores[window])
                size += window_sizes[window]
                window += 1
            if size != count:
                raise RuntimeError("Audio placeholders do not align with encoder windows.")
            while window < len(window_sizes) and window_sizes[window] == 0:  # empty tail window
                window += 1
            rows.append(
                AudioTokens(
                    embeddings=embeddings[offset : offset + count],
                    scores=torch.cat(row_scores).double().cpu().numpy(),
                    window_starts=np.asarray(starts, dtype=np.int64),
                    token_duration=self.token_duration,
                    window_seconds=self.window_seconds,
                    encoder_ms=encoder_ms / len(counts),
                    scoring_ms=scoring_ms / len(counts),
                )
            )
            offset += count
        return rows

    # ------------------------------------------------------------------ language model
    def assemble(self, inputs, kept: list[torch.Tensor], prompt: str | None = None):
        """The language model's input with only the kept audio embeddings (kept: one [K_i, H] per
        batch row, in temporal order). Returns an inputs object with `prompt_tokens`,
        `audio_tokens`, `kept`, `new_tokens_start` and `generate_kwargs()` (see `types.LLMInputs`)."""
        raise NotImplementedError

    def prefill(self, x) -> torch.Tensor:
        """The timed unit: the language model over the whole prompt, filling the KV cache, and the
        LM head on the last position. Returns logits [B, 1, vocab]."""
        raise NotImplementedError

    def generate(self, x, max_new_tokens: int = 64) -> list[Generation]:
        """Greedy decoding from the assembled inputs; one `Generation` per row."""
        raise NotImplementedError

    def decode(self, token_ids: list[int]) -> str:
        return self.tokenizer.decode(token_ids, skip_special_tokens=True).strip()


def audio_only_processor(source: str, full_class: type, audio_class: type, audio_part: str):
    """The audio half of a multimodal processor whose image or video processor needs torchvision
    (Qwen3-Omni, Phi-4): `AutoProcessor`'s, rebuilt as `audio_class` from its `audio_part` (the
    feature extractor's attribute name), its tokenizer and chat template, where it loads; else
    `audio_class` from the folder (without torchvision, or a folder saved with the audio-only class,
    for which AutoProcessor returns the tokenizer)."""
    from transformers import AutoProcessor

    try:
        processor = AutoProcessor.from_pretrained(source)
    except (ImportError, ValueError, TypeError):  # no torchvision for the image or video processor
        processor = None
    if isinstance(processor, full_class):
        return audio_class(getattr(processor, audio_part), processor.tokenizer, processor.chat_template)
    return audio_class.from_pretrained(source)


__all__ = ["AudioLM", "NoEagerBaseline", "StepClock", "audio_only_processor"]
