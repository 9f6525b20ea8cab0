"""One request end to end: encode the clip once, run the full model and any number of pruned
variants on that one encoding, and collect a `Comparison`.

    lm = segprune.load_model("tiny-qwen2-audio")
    c = segprune.compare(lm, "assets/scene.flac", "Describe the sound.", [Setting("segmentwise", 0.25)])
    c.full.text, c.pruned[0].run.text, c.speedup(c.pruned[0]).verdict

The loop lives here, once: `prepare` (select and assemble every variant of one encoded clip) and
`run_variants` (time their prefills interleaved, then generate). `compare`, the evaluation runner
and the benchmark all call it; each keeps only what is its own (records, resumption, reports).
The language-model half runs on an engine: in process by default, or any object with the
`Engine` methods (e.g. a vLLM server, `segprune.engines.vllm`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from . import silence
from .audio import Audio, AudioError, load_audio
from .methods import Method, Selection, keep_count, make_method, select
from .models.base import AudioLM
from .models.types import AudioTokens, Generation
from .timing import Repeats, Samples, Speedup, as_repeats, interleaved, speedup


@dataclass(frozen=True, init=False)
class Setting:
    """One pruned variant: a registry method with its own options at a keep ratio (the fraction
    KEPT, in (0, 1]), optionally dropping silent tokens first.

        Setting("segmentwise", 0.25)                      the paper's method at 25 %
        Setting("segmentwise", 0.25, segments=5)          with its option S = 5
        Setting("visionzip", 0.1, context_ratio=0.3, drop_silent=True)

    Raises ValueError for an unknown method, an option the method does not have (naming the ones
    it has), a bad option value or a keep ratio outside (0, 1].
    """

    method: str
    keep_ratio: float
    options: tuple[tuple[str, object], ...]
    drop_silent: bool

    def __init__(self, method: str, keep_ratio: float, *, drop_silent: bool = False, **options):
        make_method(method, **options)  # validates the name and the options
        keep_count(1, keep_ratio)
        if drop_silent not in (True, False):
            raise ValueError(f"drop_silent must be true or false, got {drop_silent!r}.")
        object.__setattr__(self, "method", method)
        object.__setattr__(self, "keep_ratio", float(keep_ratio))
        object.__setattr__(self, "options", tuple(sorted(options.items())))
        object.__setattr__(self, "drop_silent", bool(drop_silent))

    @property
    def selector(self) -> Method:
        """The method with this setting's options."""
        return make_method(self.method, **dict(self.options))

    @property
    def key(self) -> str:
        """A name for the setting: 'segmentwise@0.25', 'segmentwise[segments=5]+drop_silent@0.25'
        (every option that differs from its default appears)."""
        changed = self.selector.changed_options()
        opts = "[" + ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in changed.items()) + "]"
        quiet = silence.KEY_SUFFIX if self.drop_silent else ""
        return f"{self.method}{opts if changed else ''}{quiet}@{self.keep_ratio:g}"

    def to_dict(self) -> dict:
        """method, keep_ratio, options (all of the method's, defaults included), drop_silent."""
        return {
            "method": self.method,
            "keep_ratio": self.keep_ratio,
            "options": self.selector.options(),
            "drop_silent": self.drop_silent,
        }


@dataclass
class Run:
    """One language-model run on one clip: its answer and its measured costs."""

    text: str
    token_ids: list[int]
    prompt_tokens: int  # text + audio tokens the LLM prefilled
    audio_tokens: int
    prefill: Samples  # every timed prefill, ms
    generate_ms: float  # the whole greedy generation, prefill included
    decode_ms_per_token: float  # mean step after the first token; NaN after a single new token

    @property
    def prefill_ms(self) -> float:
        """Median of the timed prefills."""
        return self.prefill.median

    @property
    def prefill_ms_min(self) -> float:
        return self.prefill.min

    @property
    def prefill_ms_spread(self) -> tuple[float, float]:
        """(q1, q3) of the timed prefills."""
        return self.prefill.quartiles

    @property
    def prefill_repeats(self) -> int:
        return len(self.prefill.values)


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
    score_layers: int = 1  # scores = attention received, averaged over the encoder's last L layers
    engine: str = "transformers"
    missing_seconds: float = 0.0  # what a file's header promised but its data did not hold

    def speedup(self, pruned: PrunedRun) -> Speedup:
        """Full vs pruned prefill (same process, interleaved): ratio of medians, interval, verdict."""
        return speedup(self.full.prefill, pruned.run.prefill, self.full.prompt_tokens, pruned.run.prompt_tokens)

    def full_end_to_end_ms(self) -> float:
        """The full request's time to its first token: encoder (without the scoring hook) + prefill."""
        return self.tokens.encoder_ms + self.full.prefill_ms

    def end_to_end_ms(self, pruned: PrunedRun) -> float:
        """A pruned request's time to its first token: encoder + scoring hook + selection + prefill
        (the encoder is not pruned: on short clips it can dominate)."""
        return self.tokens.encoder_ms + self.tokens.scoring_ms + pruned.select_ms + pruned.run.prefill_ms

    def to_dict(self, index: int = 0) -> dict:
        """The JSON record of one pruned variant against the full model (see the README's CLI)."""
        p = self.pruned[index]
        s = self.speedup(p)
        return {
            "model": self.model,
            "random_weights": self.random_weights,
            "engine": self.engine,
            **p.setting.to_dict(),
            "prompt": self.prompt,
            "audio_seconds": round(self.audio_seconds, 3),
            "truncated_seconds": round(self.truncated_seconds, 3),
            "missing_seconds": round(self.missing_seconds, 3),
            "n_audio_tokens": self.tokens.n,
            "n_kept": p.selection.k,
            "segments_used": p.selection.segments,
            "kept_indices": p.selection.indices.tolist(),
            "merged": None if p.selection.merged is None else p.selection.merged.tolist(),
            "segment_bounds": None if p.selection.segment_bounds is None else p.selection.segment_bounds.tolist(),
            "window_starts": self.tokens.window_starts.tolist(),
            "token_duration": self.tokens.token_duration,
            "audio_end": self.tokens.audio_end,
            "silent": None if self.tokens.silent is None else self.tokens.silent.tolist(),
            "scores": [round(float(x), 6) for x in self.tokens.scores],
            "token_seconds": [round(float(t), 3) for t in self.tokens.token_seconds],
            "full": {**_run_dict(self.full), "end_to_end_ms": round(self.full_end_to_end_ms(), 3)},
            "pruned": {**_run_dict(p.run), "end_to_end_ms": round(self.end_to_end_ms(p), 3)},
            "speedup": round(s.ratio, 3),
            "speedup_interval": [round(s.low, 3), None if math.isinf(s.high) else round(s.high, 3)],
            "speedup_verdict": s.verdict,
            "speedup_suspect": s.suspect,
            "ideal_speedup": round(s.bound, 3),
            "encoder_ms": round(self.tokens.encoder_ms, 3),
            "scoring_ms": round(self.tokens.scoring_ms, 3),
            "select_ms": round(p.select_ms, 4),
            "score_layers": self.score_layers,
        }


def _run_dict(run: Run) -> dict:
    q1, q3 = run.prefill_ms_spread
    return {
        "text": run.text,
        "token_ids": run.token_ids,
        "prompt_tokens": run.prompt_tokens,
        "audio_tokens": run.audio_tokens,
        "prefill_ms": round(run.prefill_ms, 3),
        "prefill_ms_min": round(run.prefill_ms_min, 3),
        "prefill_ms_spread": [round(q1, 3), round(q3, 3)],  # the 25th and 75th percentiles
        "prefill_repeats": run.prefill_repeats,
        "generate_ms": round(run.generate_ms, 3),
        "decode_ms_per_token": round(run.decode_ms_per_token, 3) if math.isfinite(run.decode_ms_per_token) else None,
    }


def prune_tokens(tokens: AudioTokens, setting: Setting) -> tuple[Selection, torch.Tensor, float]:
    """Select with `setting` on one clip's tokens.

    Returns the Selection, the kept embeddings [K, H] in temporal order (merged ones for merge
    methods) and the selection time in ms (scores are already host-side).
    """
    method = setting.selector
    if setting.drop_silent and tokens.silent is None:
        raise ValueError("Dropping silent tokens first needs the tokens' silence mask (set by `encode_clip`).")
    start = time.perf_counter()
    selection = select(
        method,
        tokens.scores,
        setting.keep_ratio,
        embeddings=tokens.embeddings if method.needs_embeddings else None,
        silent=tokens.silent if setting.drop_silent else None,
    )
    select_ms = (time.perf_counter() - start) * 1e3
    if selection.embeddings is not None:
        kept = selection.embeddings
    else:
        kept = tokens.embeddings[torch.from_numpy(selection.indices).to(tokens.embeddings.device)]
    return selection, kept, select_ms


# --------------------------------------------------------------------------- encode once


@dataclass
class EncodedClip:
    """One clip, encoded once: what it heard, the prompt, the processor output and the audio tokens."""

    audio: Audio  # after truncation to the model's maximum
    prompt: str
    inputs: object  # the processor's BatchFeature for (audio, prompt)
    tokens: AudioTokens  # with `silent` and `audio_end` set


def encode_clip(
    lm: AudioLM, audio: Audio | str, prompt: str, max_new_tokens: int = 64, score_layers: int = 1
) -> EncodedClip:
    """Validate, truncate and encode one clip once (scores, silence mask and audio end included).

    score_layers: average the attention received over the encoder's last L layers (1 = the
    paper's last layer).

    Raises AudioError / ValueError with a plain sentence for a clip too short for one token, an
    empty prompt, or a request longer than the model's context.
    """
    if not isinstance(audio, Audio):
        audio = load_audio(audio, max_seconds=lm.max_seconds)
    if not isinstance(prompt, str) or not prompt.strip():
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
    starts = tokens.token_seconds
    tokens.silent = silence.silent_tokens(audio.samples, audio.sample_rate, starts, tokens.token_duration)
    tokens.audio_end = int(np.searchsorted(starts, audio.seconds, side="left"))  # tokens after it: padding
    return EncodedClip(audio, prompt, inputs, tokens)


def _check_context(lm: AudioLM, inputs, max_new_tokens: int) -> None:
    """Refuse a request whose full prompt plus answer would not fit the language model's context."""
    prompt_tokens = lm.prompt_tokens(inputs)
    limit = lm.context_length
    if prompt_tokens + max_new_tokens > limit:
        asked = f"{max_new_tokens}" if max_new_tokens < 10**9 else "more than a billion"
        raise ValueError(
            f"The prompt and the audio take {prompt_tokens} tokens and {asked} new tokens were asked for, "
            f"but {lm.key} reads at most {limit} tokens; shorten the prompt or the answer."
        )


# --------------------------------------------------------------------------- the loop


class Engine(Protocol):
    """Where the language-model half runs. `prefill(x)` is the timed unit (blocks until the
    first token's logits exist); `generate` is greedy decoding."""

    name: str

    def prefill(self, x) -> object: ...

    def generate(self, x, max_new_tokens: int) -> Generation: ...

    def generate_many(self, xs: list, max_new_tokens: int, on_result=None) -> list[Generation]: ...


class InProcess:
    """The default engine: the adapter's own language model in this process (exact timing)."""

    name = "transformers"

    def __init__(self, lm: AudioLM):
        self.lm = lm

    def prefill(self, x):
        return self.lm.prefill(x)

    def generate(self, x, max_new_tokens: int) -> Generation:
        return self.lm.generate(x, max_new_tokens)[0]

    def generate_many(self, xs: list, max_new_tokens: int, on_result=None) -> list[Generation]:
        """One after the other; `on_result(i, generation)` as each one finishes."""
        out = []
        for i, x in enumerate(xs):
            out.append(self.generate(x, max_new_tokens))
            if on_result is not None:
                on_result(i, out[-1])
        return out


@dataclass
class Variant:
    """One prompt of the loop: the full model (`setting` None) or one pruned setting."""

    setting: Setting | None
    selection: Selection | None
    select_ms: float
    inputs: object  # the assembled language-model input (see `AudioLM.assemble`)


def prepare(lm: AudioLM, clip: EncodedClip, settings: list[Setting], full: bool = True) -> list[Variant]:
    """Select and assemble, on one encoded clip: the full prompt first (if `full`), then one
    variant per setting, in order."""
    tokens = clip.tokens
    variants = []
    if full:
        variants.append(Variant(None, None, 0.0, lm.assemble(clip.inputs, [tokens.embeddings], clip.prompt)))
    for setting in settings:
        selection, kept, select_ms = prune_tokens(tokens, setting)
        variants.append(Variant(setting, selection, select_ms, lm.assemble(clip.inputs, [kept], clip.prompt)))
    return variants


def run_variants(
    variants: list[Variant],
    engine: Engine,
    max_new_tokens: int,
    repeats: int | Repeats | None = None,
    device=None,
    on_run=None,
) -> list[Run]:
    """Time every variant's prefill interleaved (each on its own prompt, after the warm-up
    rounds; the decode time per token leaves out the first token, so the one-time costs of a
    first `generate` do not count), then generate each greedily. Returns one `Run` per variant, in order;
    `on_run(i, run)` is called as each one finishes (an evaluation saves it at once).
    `repeats`: see `timing.interleaved`. max_new_tokens 0: time the prefills only (no text)."""
    policy = as_repeats(repeats)
    timings = interleaved({i: _prefill_of(engine, v.inputs) for i, v in enumerate(variants)}, policy, device)
    xs = [v.inputs for v in variants]
    runs: list[Run | None] = [None] * len(xs)

    def finished(i: int, g: Generation) -> None:
        x = xs[i]
        runs[i] = Run(
            g.text, g.token_ids, x.prompt_tokens, x.audio_tokens[0], timings[i], g.generate_ms, g.decode_ms_per_token
        )
        if on_run is not None:
            on_run(i, runs[i])

    if max_new_tokens > 0:
        engine.generate_many(xs, max_new_tokens, finished)
    else:
        for i in range(len(xs)):
            finished(i, Generation([], "", float("nan"), float("nan")))
    return runs


def _prefill_of(engine: Engine, x):
    return lambda: engine.prefill(x)


def compare(
    lm: AudioLM,
    audio: Audio | str,
    prompt: str,
    settings: list[Setting],
    max_new_tokens: int = 64,
    repeats: int | Repeats | None = None,
    score_layers: int = 1,
    engine: Engine | None = None,
) -> Comparison:
    """Encode `audio` once, then run the full model and every setting on that encoding.

    Prefill times are interleaved measurements after a warm-up round: `repeats` rounds, or
    adaptively (None: until each prompt has 0.5 s of measured time, 5 to 30 rounds); generation is
    greedy. Audio longer than the model takes is truncated (see `Comparison.truncated_seconds`).
    score_layers: see `encode_clip`. engine: where the language model runs (default: in process).
    """
    engine = engine or InProcess(lm)
    clip = encode_clip(lm, audio, prompt, max_new_tokens, score_layers)
    variants = prepare(lm, clip, settings)
    runs = run_variants(variants, engine, max_new_tokens, repeats, lm.device)
    return Comparison(
        model=lm.name,
        random_weights=lm.random_weights,
        prompt=prompt,
        audio_seconds=clip.audio.seconds,
        truncated_seconds=clip.audio.truncated_seconds,
        tokens=clip.tokens,
        full=runs[0],
        pruned=[PrunedRun(v.setting, v.selection, v.select_ms, r) for v, r in zip(variants[1:], runs[1:])],
        score_layers=score_layers,
        engine=engine.name,
        missing_seconds=clip.audio.missing_seconds,
    )


__all__ = [
    "Comparison",
    "EncodedClip",
    "Engine",
    "InProcess",
    "PrunedRun",
    "Run",
    "Setting",
    "Variant",
    "compare",
    "encode_clip",
    "prepare",
    "prune_tokens",
    "run_variants",
]
