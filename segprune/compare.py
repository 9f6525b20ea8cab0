"""One request end to end: encode the clip once, run the full model and any number of pruned
variants on that one encoding, and collect a `Comparison`.

    lm = segprune.load_model("tiny-qwen2-audio")
    c = segprune.compare(lm, "clip.wav", "Describe the sound.", [Setting("segmentwise", 0.25)])
    c.full.text, c.pruned[0].run.text, c.speedup(c.pruned[0])
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from .audio import Audio, AudioError, load_audio, silent_tokens
from .methods import DEFAULT_SEGMENTS, Selection, get_method, select
from .models.base import AudioLM, AudioTokens, LLMInputs
from .timing import interleaved


@dataclass(frozen=True)
class Setting:
    """One pruned variant: a registry method at a keep ratio (fraction KEPT, in (0, 1])."""

    method: str
    keep_ratio: float
    segments: int = DEFAULT_SEGMENTS
    seed: int = 0
    drop_silent: bool = False  # keep tokens of silent stretches only once every other one is kept


@dataclass
class Run:
    """One language-model run on one clip: its answer and its measured costs."""

    text: str
    token_ids: list[int]
    prompt_tokens: int  # text + audio tokens the LLM prefilled
    audio_tokens: int
    prefill_ms: float  # median over the timing repeats
    prefill_ms_min: float
    generate_ms: float  # the whole greedy generation, prefill included
    decode_ms_per_token: float  # NaN after a single new token (it comes from the prefill)


@dataclass
class PrunedRun:
    setting: Setting
    selection: Selection
    select_ms: float
    run: Run


@dataclass
class Comparison:
    """The full model and each pruned variant on ONE encoding of one clip."""

    model: str
    random_weights: bool
    prompt: str
    audio_seconds: float  # what the model heard (after truncation)
    truncated_seconds: float  # what was cut off the end because the model takes no more
    tokens: AudioTokens
    full: Run
    pruned: list[PrunedRun] = field(default_factory=list)
    timing_repeats: int = 0
    score_layers: int = 1  # scores = attention received, averaged over the encoder's last L layers

    def speedup(self, pruned: PrunedRun) -> float:
        """Full prefill median / pruned prefill median (same process, interleaved)."""
        return self.full.prefill_ms / pruned.run.prefill_ms

    def ideal_speedup(self, pruned: PrunedRun) -> float:
        """The bound from token counts alone: full prompt length / pruned prompt length."""
        return self.full.prompt_tokens / pruned.run.prompt_tokens

    def to_dict(self, index: int = 0) -> dict:
        """The JSON record of one pruned variant against the full model (see the README's CLI)."""
        p = self.pruned[index]
        return {
            "model": self.model,
            "random_weights": self.random_weights,
            "method": p.setting.method,
            "keep_ratio": p.setting.keep_ratio,
            "segments": p.setting.segments,
            "seed": p.setting.seed,
            "drop_silent": p.setting.drop_silent,
            "prompt": self.prompt,
            "audio_seconds": round(self.audio_seconds, 3),
            "truncated_seconds": round(self.truncated_seconds, 3),
            "n_audio_tokens": self.tokens.n,
            "n_kept": p.selection.k,
            "kept_indices": p.selection.indices.tolist(),
            "segment_bounds": None if p.selection.segment_bounds is None else p.selection.segment_bounds.tolist(),
            "window_starts": self.tokens.window_starts.tolist(),
            "token_duration": self.tokens.token_duration,
            "silent": None if self.tokens.silent is None else self.tokens.silent.tolist(),
            "scores": [round(float(s), 6) for s in self.tokens.scores],
            "token_seconds": [round(float(t), 3) for t in self.tokens.token_seconds],
            "full": _run_dict(self.full),
            "pruned": _run_dict(p.run),
            "speedup": round(self.speedup(p), 3),
            "ideal_speedup": round(self.ideal_speedup(p), 3),
            "encoder_ms": round(self.tokens.encoder_ms, 3),
            "scoring_ms": round(self.tokens.scoring_ms, 3),
            "select_ms": round(p.select_ms, 4),
            "timing_repeats": self.timing_repeats,
            "score_layers": self.score_layers,
        }


def _run_dict(run: Run) -> dict:
    return {
        "text": run.text,
        "token_ids": run.token_ids,
        "prompt_tokens": run.prompt_tokens,
        "audio_tokens": run.audio_tokens,
        "prefill_ms": round(run.prefill_ms, 3),
        "prefill_ms_min": round(run.prefill_ms_min, 3),
        "generate_ms": round(run.generate_ms, 3),
        "decode_ms_per_token": round(run.decode_ms_per_token, 3) if math.isfinite(run.decode_ms_per_token) else None,
    }


def prune_tokens(tokens: AudioTokens, setting: Setting) -> tuple[Selection, torch.Tensor, float]:
    """Select with `setting` on one clip's tokens.

    Returns the Selection, the kept embeddings [K, H] in temporal order (merged ones for merge
    methods) and the selection time in ms (on the CPU; scores are already host-side).
    """
    method = get_method(setting.method)
    if setting.drop_silent and tokens.silent is None:
        raise ValueError("Silence-aware selection needs the tokens' silence mask (set by `compare`).")
    start = time.perf_counter()
    selection = select(
        setting.method,
        tokens.scores,
        setting.keep_ratio,
        segments=setting.segments,
        seed=setting.seed,
        embeddings=tokens.embeddings if method.needs_embeddings else None,
        silent=tokens.silent if setting.drop_silent else None,
    )
    select_ms = (time.perf_counter() - start) * 1e3
    if selection.embeddings is not None:
        kept = selection.embeddings
    else:
        kept = tokens.embeddings[torch.from_numpy(selection.indices).to(tokens.embeddings.device)]
    return selection, kept, select_ms


@dataclass
class EncodedClip:
    """One clip, encoded once: what it heard, the processor output and the audio tokens."""

    audio: Audio  # after truncation to the model's maximum
    inputs: object  # the processor's BatchFeature for (audio, prompt)
    tokens: AudioTokens  # with `silent` set


def encode_clip(
    lm: AudioLM, audio: Audio | str, prompt: str, max_new_tokens: int = 64, score_layers: int = 1
) -> EncodedClip:
    """Validate, truncate and encode one clip once (scores and silence mask included).

    score_layers: average the attention received over the encoder's last L layers (1 = the
    paper's last layer).

    Raises AudioError / ValueError with a plain sentence for a clip too short for one token, an
    empty prompt, or a request longer than the model's context.
    """
    if not isinstance(audio, Audio):
        audio = load_audio(audio, max_seconds=lm.max_seconds)
    if not prompt or not prompt.strip():
        raise ValueError("The prompt is empty; ask the model something about the audio.")
    if audio.seconds < lm.token_duration:
        raise AudioError(
            f"The clip is too short ({audio.seconds * 1000:.0f} ms); {lm.key} needs at least "
            f"{lm.token_duration * 1000:.0f} ms (one audio token)."
        )
    audio = audio.truncated(lm.max_seconds)
    inputs = lm.inputs(audio, prompt)
    _check_context(lm, inputs, max_new_tokens)
    tokens = lm.encode(inputs, score_layers=score_layers)[0]
    if tokens.n < 1:
        raise AudioError(f"The clip is too short ({audio.seconds * 1000:.0f} ms) to give even one audio token.")
    tokens.silent = silent_tokens(audio.samples, audio.sample_rate, tokens.token_seconds, tokens.token_duration)
    return EncodedClip(audio, inputs, tokens)


def compare(
    lm: AudioLM,
    audio: Audio | str,
    prompt: str,
    settings: list[Setting],
    max_new_tokens: int = 64,
    repeats: int = 3,
    score_layers: int = 1,
) -> Comparison:
    """Encode `audio` once, then run the full model and every setting on that encoding.

    Prefill times are medians of `repeats` interleaved measurements (after one warm-up round);
    generation is greedy. Audio longer than the model takes is truncated (see
    `Comparison.truncated_seconds`). score_layers: see `encode_clip`.
    """
    clip = encode_clip(lm, audio, prompt, max_new_tokens, score_layers)
    audio, inputs, tokens = clip.audio, clip.inputs, clip.tokens
    chosen = [prune_tokens(tokens, s) for s in settings]
    full_in = lm.assemble(inputs, [tokens.embeddings])
    pruned_in = [lm.assemble(inputs, [kept]) for _, kept, _ in chosen]
    timings = interleaved(
        {"full": _prefill(lm, full_in), **{i: _prefill(lm, x) for i, x in enumerate(pruned_in)}},
        repeats=repeats,
        device=lm.device,
    )

    def run(x: LLMInputs, key) -> Run:
        g = lm.generate(x, max_new_tokens)[0]
        t = timings[key]
        return Run(
            g.text,
            g.token_ids,
            x.prompt_tokens,
            x.audio_tokens[0],
            t.median,
            t.min,
            g.generate_ms,
            g.decode_ms_per_token,
        )

    return Comparison(
        model=lm.name,
        random_weights=lm.random_weights,
        prompt=prompt,
        audio_seconds=audio.seconds,
        truncated_seconds=audio.truncated_seconds,
        tokens=tokens,
        full=run(full_in, "full"),
        pruned=[
            PrunedRun(s, sel, ms, run(x, i)) for i, (s, (sel, _, ms), x) in enumerate(zip(settings, chosen, pruned_in))
        ],
        timing_repeats=repeats,
        score_layers=score_layers,
    )


def _check_context(lm: AudioLM, inputs, max_new_tokens: int) -> None:
    """Refuse a request whose full prompt plus answer would not fit the language model's context."""
    prompt_tokens = lm.prompt_length(inputs)
    limit = lm.context_length
    if prompt_tokens + max_new_tokens > limit:
        raise ValueError(
            f"The prompt and the audio take {prompt_tokens} tokens and {max_new_tokens} new tokens were asked for, "
            f"but {lm.key} reads at most {limit} tokens; shorten the prompt or the answer."
        )


def _prefill(lm: AudioLM, x: LLMInputs):
    return lambda: lm.prefill(x)


__all__ = ["Comparison", "EncodedClip", "PrunedRun", "Run", "Setting", "compare", "encode_clip", "prune_tokens"]
