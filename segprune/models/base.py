"""The adapter contract: what segprune needs from an audio-language model family.

An adapter wraps a native transformers model and its processor and offers four steps:

    inputs   = lm.inputs(audio, prompt)         processor output, placeholders expanded to N
    [tokens] = lm.encode(inputs)                 audio path ONCE: embeddings [N, H] + scores [N]
    llm_in   = lm.assemble(inputs, [kept])      shrink each placeholder run to K, fill embeddings
    lm.generate(llm_in) / lm.prefill(llm_in)    the language model sees only the kept tokens

`AudioLM` implements every step for decoder-only models whose audio encoder is a Whisper-style
encoder run on 30 s windows (Qwen2-Audio, Audio Flamingo 3, MusicFlamingo, Voxtral, GLM-ASR,
Qwen2.5-Omni); a family adapter then only names its classes, its hub id, its limits and how to run
its audio path, and overrides the frame and token arithmetic (`frames_per_token`, `_token_lengths`),
which frames the scoring layer sees (`attends_padding`, `_scoring_rows`) or its queries and keys
(`scoring_qk`) where its encoder differs. The encoder-decoder Whisper adapter (`whisper.py`) keeps
`inputs`/`encode` and replaces the language-model half.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn
from transformers import LogitsProcessor, LogitsProcessorList

from ..audio import Audio
from ..scoring import ReceivedAttention, Span, normalise, pool_scores, whisper_qk
from ..timing import Stopwatch, synchronize
from .tiny import TINY_TEXT


@dataclass
class AudioTokens:
    """One clip's audio tokens as the language model would receive them.

    embeddings: [N, H] in the LLM's dtype and device.
    scores: [N] float64, attention received in the encoder's last layer (1.0 = uniform share).
    window_starts: [W] int64, index of the first token of each encoder window (0 first).
    silent: [N] bool, tokens in silent stretches (see `audio.silent_tokens`); None if unknown.
    """

    embeddings: torch.Tensor
    scores: np.ndarray
    window_starts: np.ndarray
    token_duration: float
    window_seconds: float
    encoder_ms: float = 0.0
    scoring_ms: float = 0.0
    silent: np.ndarray | None = None

    @property
    def n(self) -> int:
        return int(self.embeddings.shape[0])

    @property
    def token_seconds(self) -> np.ndarray:
        """[N] start time in seconds of each token in the clip."""
        index = np.arange(self.n)
        window = np.searchsorted(self.window_starts, index, side="right") - 1
        return window * self.window_seconds + (index - self.window_starts[window]) * self.token_duration


@dataclass
class LLMInputs:
    """What the language model receives: input_ids, attention_mask [B, L], inputs_embeds [B, L, H]
    (left padded), and the number of audio tokens in each row."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    inputs_embeds: torch.Tensor
    audio_tokens: list[int]

    @property
    def prompt_tokens(self) -> int:
        """Length in tokens of the (first) prompt, audio tokens included."""
        return int(self.attention_mask[0].sum())

    @property
    def sequence_offset(self) -> int:
        """Where the new tokens start in the sequences that the model's `generate` returns."""
        return int(self.input_ids.shape[1])

    def generate_kwargs(self) -> dict:
        """What the model's own `generate` receives instead of the processor output."""
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask, "inputs_embeds": self.inputs_embeds}


@dataclass
class Generation:
    """Greedy output for one prompt: the new token ids, their text and how long it took."""

    token_ids: list[int]
    text: str
    generate_ms: float
    decode_ms_per_token: float


class _StepClock(LogitsProcessor):
    """A pass-through logits processor that notes the time at every decoding step."""

    def __init__(self, device):
        self.device = device
        self.times: list[float] = []

    def __call__(self, input_ids, scores):
        synchronize(self.device)
        self.times.append(time.perf_counter())
        return scores


class AudioLM:
    """Base adapter. Subclasses set the class variables and implement `_audio_embeddings`."""

    key: ClassVar[str]  # registry key, e.g. "qwen2-audio"; the tiny variant is "tiny-<key>"
    model_type: ClassVar[str]  # config.model_type of the family
    model_type_aliases: ClassVar[tuple[str, ...]] = ()  # other model types this adapter loads
    model_class: ClassVar[type]
    hub_id: ClassVar[str]
    hub_ids: ClassVar[dict[str, str]] = {}  # registry key -> hub id, for families with several sizes
    max_seconds: ClassVar[float]
    window_seconds: ClassVar[float] = 30.0  # one encoder window (token_seconds restart there)
    token_duration: ClassVar[float] = 0.04  # seconds of audio per LLM token
    frames_per_token: ClassVar[int] = 2  # encoder frames pooled (or concatenated) into one token
    attends_padding: ClassVar[bool] = False  # the encoder has no key mask: padding frames are keys too
    audio_first: ClassVar[bool] = True  # order of audio and text in the user turn
    feature_mask_key: ClassVar[str | None]  # None: the processor returns no mask (all frames valid)
    tiny_audio: ClassVar[dict]  # encoder config fields of the tiny variant
    scoring_qk: ClassVar = staticmethod(whisper_qk)  # queries/keys of the scoring layer

    def __init__(self, model: nn.Module, processor, name: str | None = None):
        self.model = model.eval()
        self.processor = processor
        self.name = name or getattr(model.config, "_name_or_path", "") or self.key
        self.random_weights = bool(getattr(model.config, "segprune_random_weights", False))

    # ------------------------------------------------------------------ construction
    @classmethod
    def random_init(cls, audio: dict, text: dict, name: str, init_std: float = 0.02) -> "AudioLM":
        """This family with RANDOM weights, built offline from config fields (`audio` for the
        encoder config, `text` for the LLM config), with an in-memory tokenizer and the real
        processor class. The config is marked ``segprune_random_weights=True``."""
        raise NotImplementedError

    @classmethod
    def tiny(cls) -> "AudioLM":
        """The tiny random-weight variant (registry key ``tiny-<key>``), built in well under a second."""
        return cls.random_init(cls.tiny_audio, TINY_TEXT, name=f"tiny-{cls.key}")

    @classmethod
    def registry_keys(cls) -> dict[str, str]:
        """The registry keys of this family's real models and their hub ids."""
        return cls.hub_ids or {cls.key: cls.hub_id}

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
    def audio_token_id(self) -> int:
        return int(self.model.config.audio_token_id)

    @property
    def context_length(self) -> int:
        """The most tokens (prompt + answer) the language model reads."""
        return int(self.model.config.get_text_config().max_position_embeddings)

    def prompt_length(self, inputs) -> int:
        """Tokens of the language model's unpruned prompt for a processor output (audio included)."""
        return int(inputs["input_ids"].shape[1])

    @property
    def language_model(self) -> nn.Module:
        return self.model.model.language_model

    @property
    def audio_encoder(self) -> nn.Module:
        return self.model.model.audio_tower

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

    # ------------------------------------------------------------------ requests
    def chat_text(self, prompt: str) -> str:
        """The model's chat template applied to one user turn with one audio clip and `prompt`."""
        audio = {"type": "audio", "audio": "clip"}
        text = {"type": "text", "text": prompt}
        content = [audio, text] if self.audio_first else [text, audio]
        conversation = [{"role": "user", "content": content}]
        return self.processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)

    def inputs(self, audio: Audio, prompt: str):
        """Processor output (BatchFeature) for one clip and prompt; audio longer than the model
        takes must be truncated by the caller (see `Audio.truncated`)."""
        return self.processor(
            text=self.chat_text(prompt), audio=audio.samples, sampling_rate=audio.sample_rate, return_tensors="pt"
        )

    # ------------------------------------------------------------------ audio path
    def _audio_embeddings(self, features: torch.Tensor, feature_mask: torch.Tensor, input_ids: torch.Tensor):
        """Run the family's audio encoder + projector exactly as its forward does.

        features: [W, mel, frames], feature_mask: [W, frames] (W encoder windows), input_ids: the
        processor's (unpruned) prompt ids [B, L]. Returns the audio embeddings the language model
        would receive, all windows in order, [sum of tokens, H].
        """
        raise NotImplementedError

    def _scoring_attention(self) -> nn.Module:
        """The encoder's last self-attention module."""
        return self._scoring_attentions(1)[0]

    def _scoring_attentions(self, layers: int) -> list[nn.Module]:
        """The self-attention modules of the encoder's last `layers` layers."""
        blocks = self.audio_encoder.layers
        if not isinstance(layers, int) or not 1 <= layers <= len(blocks):
            raise ValueError(f"Scores can average the last 1 to {len(blocks)} encoder layers, got {layers!r}.")
        return [block.self_attn for block in blocks[-layers:]]

    def _feature_mask(self, inputs) -> torch.Tensor:
        """[W, mel frames]: 1 for the valid mel frames of each window (all of them without a mask)."""
        if self.feature_mask_key is None:
            features = inputs["input_features"]
            return torch.ones(features.shape[0], features.shape[-1], dtype=torch.long, device=features.device)
        return inputs[self.feature_mask_key]

    def _scoring_rows(self, frame_lengths: torch.Tensor, window_frames: int) -> list[list[Span]]:
        """What the scoring layer's input holds, one list of spans per batch row (see `Span`): the
        valid frames of each window, attending to the valid frames, or to all frames of the window
        when the encoder has no key mask."""
        return [[Span(0, n, window_frames if self.attends_padding else n)] for n in frame_lengths.tolist()]

    def _window_scores(self, frame_scores: list[torch.Tensor], frame_lengths: torch.Tensor) -> list[torch.Tensor]:
        """LLM-token scores of each encoder window, in order, from the hook's frame scores: each
        window normalised to mean 1, then pooled like the encoder pools its frames."""
        token_lengths = self._token_lengths(frame_lengths).clamp(min=0)
        return [pool_scores(normalise(s), int(n), self.frames_per_token) for s, n in zip(frame_scores, token_lengths)]

    @staticmethod
    def _frame_lengths(mel_lengths: torch.Tensor) -> torch.Tensor:
        """Valid encoder frames (after the stride-2 convolution) per window."""
        return (mel_lengths - 1) // 2 + 1

    @classmethod
    def _token_lengths(cls, frame_lengths: torch.Tensor) -> torch.Tensor:
        """LLM tokens per window after pooling (or concatenating) `frames_per_token` frames."""
        n = cls.frames_per_token
        return (frame_lengths - n) // n + 1

    @torch.inference_mode()
    def encode(self, inputs, score_layers: int = 1) -> list[AudioTokens]:
        """Encode the audio of a processed batch once: one `AudioTokens` per batch row, with the
        row's N equal to its number of audio placeholders.

        score_layers: scores are the attention received in the encoder's last layer (1, the
        paper's choice) or its mean over the last `score_layers` layers (one hook per layer: the
        scoring cost grows linearly with it).
        """
        features = inputs["input_features"].to(self.device, self.audio_encoder.dtype)
        feature_mask = self._feature_mask(inputs).to(self.device)
        frame_lengths = self._frame_lengths(feature_mask.sum(-1))
        rows = self._scoring_rows(frame_lengths, self._frame_lengths(features.shape[-1]))
        input_ids = inputs["input_ids"].to(self.device) if "input_ids" in inputs else None
        hooks = [ReceivedAttention(a, rows, self.scoring_qk) for a in self._scoring_attentions(score_layers)]
        with Stopwatch(self.device) as total, ExitStack() as stack:
            for hook in hooks:
                stack.enter_context(hook)
            embeddings = self._audio_embeddings(features, feature_mask, input_ids)
        frame_scores = [torch.stack(per_layer).mean(0) for per_layer in zip(*(h.scores for h in hooks))]
        window_scores = self._window_scores(frame_scores, frame_lengths)
        scoring_ms = sum(h.ms for h in hooks)
        return self._split_rows(
            self._audio_counts(inputs), embeddings, window_scores, total.ms - scoring_ms, scoring_ms
        )

    def _audio_counts(self, inputs) -> list[int]:
        """N of each batch row: its number of audio placeholders."""
        return (inputs["input_ids"] == self.audio_token_id).sum(-1).tolist()

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
    @torch.inference_mode()
    def assemble(self, inputs, kept: list[torch.Tensor]) -> LLMInputs:
        """Prompt rows with each placeholder run shrunk to the kept audio embeddings.

        kept: one tensor [K_i, H] per batch row, in temporal order. Rows are re-padded on the left.
        """
        ids, mask = inputs["input_ids"], inputs["attention_mask"]
        if len(kept) != ids.shape[0]:
            raise ValueError(f"Got {len(kept)} kept-embedding sets for {ids.shape[0]} prompts.")
        rows = []
        for row_ids, row_mask, row_kept in zip(ids, mask, kept):
            row_ids = row_ids[row_mask.bool()]
            where = torch.nonzero(row_ids == self.audio_token_id).flatten()
            if len(where) == 0 or int(where[-1] - where[0]) + 1 != len(where):
                raise ValueError("Each prompt needs exactly one contiguous run of audio placeholders.")
            start, end = int(where[0]), int(where[-1]) + 1
            audio_ids = torch.full((row_kept.shape[0],), self.audio_token_id, dtype=row_ids.dtype)
            rows.append(torch.cat([row_ids[:start].cpu(), audio_ids, row_ids[end:].cpu()]))
        length = max(len(r) for r in rows)
        pad_id = self.pad_token_id
        new_ids = torch.full((len(rows), length), pad_id, dtype=ids.dtype)
        new_mask = torch.zeros((len(rows), length), dtype=mask.dtype)
        for i, r in enumerate(rows):
            new_ids[i, length - len(r) :] = r
            new_mask[i, length - len(r) :] = 1
        new_ids, new_mask = new_ids.to(self.device), new_mask.to(self.device)
        embeds = self.model.get_input_embeddings()(new_ids)
        audio_mask = (new_ids == self.audio_token_id).unsqueeze(-1).expand_as(embeds)
        audio = torch.cat([k.to(embeds.device, embeds.dtype) for k in kept])
        if int(audio_mask.sum()) != audio.numel():  # masked_scatter would silently take a prefix
            raise RuntimeError(f"{int(audio_mask[..., 0].sum())} audio placeholders for {audio.shape[0]} embeddings.")
        embeds = embeds.masked_scatter(audio_mask, audio)
        return LLMInputs(new_ids, new_mask, embeds, [int(k.shape[0]) for k in kept])

    @torch.inference_mode()
    def prefill(self, x: LLMInputs) -> torch.Tensor:
        """The timed unit: the language model over the whole prompt, filling the KV cache, and
        the LM head on the last position. Returns logits [B, 1, vocab]."""
        out = self.language_model(inputs_embeds=x.inputs_embeds, attention_mask=x.attention_mask, use_cache=True)
        return self.model.lm_head(out.last_hidden_state[:, -1:])

    @torch.inference_mode()
    def generate(self, x: LLMInputs, max_new_tokens: int = 64) -> list[Generation]:
        """Greedy decoding from the assembled inputs; one `Generation` per row."""
        clock = _StepClock(self.device)
        with Stopwatch(self.device) as sw:
            out = self.model.generate(
                **x.generate_kwargs(),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                num_beams=1,
                logits_processor=LogitsProcessorList([clock]),
                pad_token_id=self.pad_token_id,
            )
        steps = np.diff(clock.times) * 1e3
        per_token = float(np.mean(steps)) if len(steps) else float("nan")
        eos, results = self._eos_ids(), []
        for row in out[:, x.sequence_offset :].tolist():
            end = next((i + 1 for i, t in enumerate(row) if t in eos), len(row))  # batch rows pad after EOS
            results.append(Generation(row[:end], self.decode(row[:end]), sw.ms, per_token))
        return results

    def _eos_ids(self) -> set[int]:
        eos = self.model.generation_config.eos_token_id
        return set(eos if isinstance(eos, list) else [eos] if eos is not None else [])

    def decode(self, token_ids: list[int]) -> str:
        return self.tokenizer.decode(token_ids, skip_special_tokens=True).strip()
