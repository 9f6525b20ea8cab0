"""One visitor's current clip, held between requests, so that a new keep ratio, S or method
re-selects at once from the cached encoding: no encoder pass, no language-model run.

    session = Session.of(comparison, audio)        # after a Run
    pruned = session.select(Setting("topk", 0.3))  # milliseconds: scores (and embeddings) are on the host
    figure_input = session.view(pruned)            # a Comparison to draw, `pruned` as its variant 0
    track = session.track(pruned)                  # the clip with the dropped tokens' spans silenced

A session holds ONE clip, host-side, and nothing that points at the GPU:

    memory = 2 bytes per audio sample (int16, 32 KB per second of audio)
           + N x H x (bytes per element) for the embeddings (their own dtype: 2 for bf16, 4 for fp32)
           + 17 bytes per token (float64 scores and start times, a silence flag)

`nbytes` reports it. Examples: Qwen2-Audio at 30 s (N = 750, H = 4096, bf16) 7 MB; Audio Flamingo 3
at 10 min (N = 15,000, H = 3584, bf16) 127 MB; tiny-voxtral-mini at 30 min (N = 22,500, H = 64, fp32)
64 MB (58 MB of it the audio). The app keeps one session per browser tab (gr.State); a new Run
replaces it. Knows nothing of Gradio.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from . import listen
from .audio import Audio
from .comparison import Comparison, PrunedRun, Setting, prune_tokens


@dataclass
class Session:
    """The last Run of one visitor: its Comparison (tokens on the host, selections without merged
    embeddings) and the clip as the model heard it (int16 [n] at `sample_rate`).
    `shown`: the variant of the Run whose answers and timings the page shows (its index in
    `comparison.pruned`)."""

    comparison: Comparison
    pcm: np.ndarray
    sample_rate: int
    shown: int = 0
    audio: Audio | None = field(default=None)  # what the clip was converted from (its samples left out)

    @classmethod
    def of(cls, c: Comparison, audio: Audio) -> Session:
        """A host-side session of a Run's Comparison `c` on `audio` (cut to what the model heard)."""
        tokens = dataclasses.replace(c.tokens, embeddings=c.tokens.embeddings.detach().cpu())
        pruned = [dataclasses.replace(p, selection=dataclasses.replace(p.selection, embeddings=None)) for p in c.pruned]
        samples = audio.samples[: round(c.audio_seconds * audio.sample_rate)]
        c = dataclasses.replace(c, tokens=tokens, pruned=pruned)
        info = dataclasses.replace(audio, samples=np.zeros(0, dtype=np.float32))
        return cls(c, listen.to_pcm16(samples), audio.sample_rate, audio=info)

    @property
    def tokens(self):
        return self.comparison.tokens

    @property
    def nbytes(self) -> int:
        """Bytes held: the audio, the embeddings and the per-token arrays (see the module docstring)."""
        t = self.tokens
        per_token = t.scores.nbytes + t.token_seconds.nbytes + (0 if t.silent is None else t.silent.nbytes)
        return int(self.pcm.nbytes + t.embeddings.element_size() * t.embeddings.nelement() + per_token)

    def samples(self) -> np.ndarray:
        """The clip as float32 [n] in [-1, 1] (a new array: 4 bytes per sample while it lives)."""
        return self.pcm.astype(np.float32) / 32767.0

    def select(self, setting: Setting) -> PrunedRun:
        """Select with `setting` on the cached tokens: a PrunedRun with no language-model run (`run` None)."""
        selection, _, select_ms = prune_tokens(self.tokens, setting)
        return PrunedRun(setting, dataclasses.replace(selection, embeddings=None), select_ms, run=None)

    def ran(self, setting: Setting) -> int | None:
        """The index of the Run's variant with exactly this setting (its answers exist), else None."""
        return next((i for i, p in enumerate(self.comparison.pruned) if p.setting == setting), None)

    def view(self, pruned: PrunedRun) -> Comparison:
        """The Run's Comparison with `pruned` as its only variant (what the plot draws)."""
        return dataclasses.replace(self.comparison, pruned=[pruned])

    def track(self, pruned: PrunedRun) -> np.ndarray:
        """What `pruned` lets the model hear: int16 [n], the clip with the dropped tokens' spans silenced."""
        t = self.tokens
        return listen.listening_track(
            self.pcm, self.sample_rate, t.token_seconds, t.token_duration, pruned.selection.indices
        )

    def prompt_tokens(self, pruned: PrunedRun) -> int:
        """The pruned prompt's length: the full prompt less the dropped audio tokens (one audio run per prompt)."""
        return self.comparison.full.prompt_tokens - self.tokens.n + pruned.selection.k


__all__ = ["Session"]
