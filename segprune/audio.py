"""Audio input: load, validate, mix down to mono and resample to the model's rate.

Every model segprune supports takes 16 kHz mono float audio. `load_audio` accepts a file path,
a ``(sample_rate, samples)`` pair (what Gradio's microphone and numpy users hand over) or a bare
array already at 16 kHz, and returns an `Audio`, or raises `AudioError` with one plain sentence
that says what is wrong and what is accepted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from .silence import clip_is_silent

SAMPLE_RATE = 16_000
ACCEPTED_FORMATS = "WAV, FLAC, OGG/Vorbis, OGG/Opus, MP3 and AIFF"
MIN_RATE, MAX_RATE = 1_000, 768_000  # sample rates accepted, in Hz


class AudioError(ValueError):
    """The input is not usable audio; the message is one sentence meant for a person."""


@dataclass(frozen=True)
class Audio:
    """A mono clip at `sample_rate`.

    samples: float32 [n] in [-1, 1] (values outside are kept; models normalise features).
    source_rate / source_channels: what the input had before conversion.
    truncated_seconds: audio cut off the end so far (by `load_audio(max_seconds=)` or `truncated`).
    """

    samples: np.ndarray
    sample_rate: int = SAMPLE_RATE
    source_rate: int = SAMPLE_RATE
    source_channels: int = 1
    truncated_seconds: float = 0.0

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.sample_rate

    @property
    def is_silent(self) -> bool:
        """The whole clip is silent (see `segprune.silence.clip_is_silent`)."""
        return clip_is_silent(self.samples)

    def truncated(self, max_seconds: float) -> Audio:
        """The first `max_seconds` of the clip; `truncated_seconds` grows by what was cut off."""
        limit = int(round(max_seconds * self.sample_rate))
        if len(self.samples) <= limit:
            return self
        dropped = (len(self.samples) - limit) / self.sample_rate
        return replace(self, samples=self.samples[:limit], truncated_seconds=self.truncated_seconds + dropped)


def load_audio(
    source, sample_rate: int = SAMPLE_RATE, max_seconds: float | None = None, max_bytes: int | None = None
) -> Audio:
    """Load `source` as mono float32 audio at `sample_rate`.

    source: a path (str or Path) to an audio file; a ``(rate, samples)`` tuple with samples
    [n] or [n, channels] (integer PCM or float); or a 1-D float array already at `sample_rate`.
    max_seconds: read at most this much (the rest is reported in `Audio.truncated_seconds`, and a
        long file is never read whole). max_bytes: refuse files larger than this.
    """
    dropped = 0.0
    if isinstance(source, (str, Path)):
        samples, rate, dropped = _read_file(Path(source), max_seconds, max_bytes)
    elif isinstance(source, tuple) and len(source) == 2:
        rate, samples = source
        samples = np.asarray(samples)
    elif isinstance(source, np.ndarray):
        rate, samples = sample_rate, source
    else:
        raise AudioError(
            f"Audio must be a file path, a (sample_rate, samples) pair or a numpy array; got {type(source).__name__}."
        )
    audio = from_samples(samples, rate, sample_rate)
    audio = replace(audio, truncated_seconds=dropped)
    return audio.truncated(max_seconds) if max_seconds is not None else audio


def from_samples(samples: np.ndarray, rate, sample_rate: int = SAMPLE_RATE) -> Audio:
    """Validate raw samples [n] or [n, channels] at `rate` and convert them to an `Audio`."""
    try:
        rate = int(rate)
    except (TypeError, ValueError, OverflowError):
        raise AudioError(f"The sample rate must be a whole number of hertz, got {rate!r}.") from None
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AudioError(f"The sample rate must be between {MIN_RATE} and {MAX_RATE} Hz, got {rate} Hz.")
    if samples.ndim == 2 and samples.shape[1] == 0:
        raise AudioError("The audio has no channels.")
    if samples.ndim == 0 or samples.size == 0:
        raise AudioError("The audio is empty: it has no samples.")
    if samples.ndim > 2:
        raise AudioError(f"Audio samples must be 1-D or [samples, channels], got shape {samples.shape}.")
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    mono = _to_float(samples)
    if mono.ndim == 2:
        mono = mono.mean(axis=1)
    if not np.all(np.isfinite(mono)):
        raise AudioError("The audio contains NaN or infinite samples; please provide a valid recording.")
    mono = resample(mono, rate, sample_rate)
    return Audio(np.ascontiguousarray(mono, dtype=np.float32), sample_rate, rate, channels)


MAX_RATIO_DENOMINATOR = 1000  # every standard rate's ratio to 16 kHz is exact within it (44.1 kHz: 160/441)


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Polyphase resampling (scipy.signal.resample_poly) of float samples [n] -> [n * to/from].

    An odd rate (44101 Hz, 767999 Hz) would need a filter of millions of taps for the exact ratio
    (seconds of CPU for one second of audio); its ratio is rounded to the nearest fraction with a
    denominator of at most 1000: off by at most 0.1 % (under 2 cents of pitch, inaudible).
    """
    if from_rate == to_rate:
        return samples
    from scipy.signal import resample_poly

    ratio = Fraction(to_rate, from_rate).limit_denominator(MAX_RATIO_DENOMINATOR)
    return resample_poly(samples.astype(np.float64), ratio.numerator, ratio.denominator).astype(np.float32)


def _to_float(samples: np.ndarray) -> np.ndarray:
    """Integer PCM is scaled to [-1, 1); float stays as it is."""
    if np.issubdtype(samples.dtype, np.floating):
        return samples.astype(np.float32, copy=False)
    if np.issubdtype(samples.dtype, np.unsignedinteger):
        info = np.iinfo(samples.dtype)
        mid = (int(info.max) + 1) / 2
        return ((samples.astype(np.float64) - mid) / mid).astype(np.float32)
    if np.issubdtype(samples.dtype, np.signedinteger):
        scale = float(-np.iinfo(samples.dtype).min)
        return (samples.astype(np.float64) / scale).astype(np.float32)
    if samples.dtype == np.bool_:
        return samples.astype(np.float32)
    raise AudioError(f"Audio samples must be numbers, got dtype {samples.dtype}.")


def _read_file(path: Path, max_seconds: float | None, max_bytes: int | None) -> tuple[np.ndarray, int, float]:
    """Samples [n] or [n, channels], the file's rate, and the seconds left unread past `max_seconds`."""
    if not path.exists():
        raise AudioError(f"No such audio file: {path}.")
    if path.is_dir():
        raise AudioError(f"{path} is a folder, not an audio file.")
    size = path.stat().st_size
    if size == 0:
        raise AudioError(f"{path.name} is empty (0 bytes).")
    if max_bytes is not None and size > max_bytes:
        raise AudioError(
            f"{path.name} is {size / 2**20:.1f} MB; files up to {round(max_bytes / 2**20, 2):g} MB are accepted."
        )
    import soundfile

    try:
        with soundfile.SoundFile(str(path)) as f:
            rate, total = f.samplerate, f.frames
            wanted = total if max_seconds is None else min(total, math.ceil(max_seconds * rate))
            samples = f.read(frames=wanted, dtype="float32", always_2d=False)
    except AudioError:
        raise
    except Exception:  # soundfile raises LibsndfileError, RuntimeError, TypeError... by format
        raise AudioError(f"{path.name} could not be read as audio; accepted formats are {ACCEPTED_FORMATS}.") from None
    dropped = max(0, total - len(samples)) / rate
    return samples, int(rate), dropped
