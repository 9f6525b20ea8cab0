"""The data that flows between the steps of an adapter (see `base.AudioLM`): plain dataclasses.

    AudioTokens    one clip's audio tokens as the language model would receive them (+ scores)
    LLMInputs      what a decoder-only language model receives: ids, mask, embeddings (pruned)
    Generation     one greedy answer: new token ids, text, times

Names of the token counts, everywhere: `prompt_tokens` is the length in tokens of what the
language model prefills (text + audio); `new_tokens_start` is where the generated tokens start in
the sequences that the model's own `generate` returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class AudioTokens:
    """One clip's audio tokens as the language model would receive them.

    embeddings: [N, H] in the LLM's dtype and device.
    scores: [N] float64, attention received in the encoder's last layer (1.0 = uniform share).
    window_starts: [W] int64, index of the first token of each encoder window (0 first).
    token_duration / window_seconds: seconds of audio per token and per encoder window.
    audio_end: tokens [audio_end, N) cover no audio (a window's padding that the model receives,
        e.g. Whisper's 1500 frames or Voxtral's last chunk); N where every token covers audio.
    silent: [N] bool, tokens in silent stretches (see `segprune.silence`); None if unknown.
    """

    embeddings: torch.Tensor
    scores: np.ndarray
    window_starts: np.ndarray
    token_duration: float
    window_seconds: float
    encoder_ms: float = 0.0
    scoring_ms: float = 0.0
    silent: np.ndarray | None = None
    audio_end: int | None = None

    def __post_init__(self):
        if self.audio_end is None:
            self.audio_end = self.n

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
    """What a decoder-only language model receives: input_ids, attention_mask [B, L], inputs_embeds
    [B, L, H] (left padded), the kept audio embeddings of each row (`kept`, [K_i, H]) and their
    counts, and the visitor's prompt text (for engines that render the prompt themselves)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    inputs_embeds: torch.Tensor
    audio_tokens: list[int]
    kept: list[torch.Tensor] = field(default_factory=list)
    prompt: str | None = None

    @property
    def prompt_tokens(self) -> int:
        """Length in tokens of the (first) prompt, audio tokens included: what the prefill reads."""
        return int(self.attention_mask[0].sum())

    @property
    def new_tokens_start(self) -> int:
        """Where the new tokens start in the sequences that the model's `generate` returns."""
        return int(self.input_ids.shape[1])

    def generate_kwargs(self) -> dict:
        """What the model's own `generate` receives instead of the processor output."""
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask, "inputs_embeds": self.inputs_embeds}


@dataclass
class Generation:
    """Greedy output for one prompt: the new token ids, their text and how long it took.

    decode_ms_per_token: the mean time of a decoding step AFTER the first new token (the first
    comes from the prefill); NaN when only one token was generated (no step to time).
    """

    token_ids: list[int]
    text: str
    generate_ms: float
    decode_ms_per_token: float


__all__ = ["AudioTokens", "Generation", "LLMInputs"]
