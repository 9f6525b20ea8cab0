"""Audio input: load, validate, mix down to mono and resample to the model's rate.

Every model segprune supports takes 16 kHz mono float audio. `load_audio` accepts a file path,
a ``(sample_rate, samples)`` pair (what Gradio's microphone and numpy users hand over) or a bare
array already at 16 kHz, and returns an `Audio`, or raises `AudioError` with one plain sentence
that says what is wrong and what is accepted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000
ACCEPTED_FORMATS = "WAV, FLAC, OGG/Vorbis, OGG/Opus and MP3"


class AudioError(ValueError):
    """The input is not usable audio; the message is one sentence meant for a person."""


@dataclass(frozen=True)
class Audio:
    """A mono clip at `sample_rate`.

    samples: float32 [n] in [-1, 1] (values outside are kept; models normalise features).
    source_rate / source_channels: what the input had before conversion.
    """

    samples: np.ndarray
    sample_rate: int = SAMPLE_RATE
    source_rate: int = SAMPLE_RATE
    source_channels: int = 1

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.sample_rate

    def truncated(self, max_seconds: float) -> tuple[Audio, float]:
        """The first `max_seconds` of the clip and how many seconds were cut off (0.0 if none)."""
        limit = int(round(max_seconds * self.sample_rate))
        if len(self.samples) <= limit:
            return self, 0.0
        dropped = (len(self.samples) - limit) / self.sample_rate
        kept = Audio(self.samples[:limit], self.sample_rate, self.source_rate, self.source_channels)
        return kept, dropped


def load_audio(source, sample_rate: int = SAMPLE_RATE) -> Audio:
    """Load `source` as mono float32 audio at `sample_rate`.

    source: a path (str or Path) to an audio file; a ``(rate, samples)`` tuple with samples
    [n] or [n, channels] (integer PCM or float); or a 1-D float array already at `sample_rate`.
    """
    if isinstance(source, (str, Path)):
        samples, rate = _read_file(Path(source))
    elif isinstance(source, tuple) and len(source) == 2:
        rate, samples = source
        samples = np.asarray(samples)
    elif isinstance(source, np.ndarray):
        rate, samples = sample_rate, source
    else:
        raise AudioError(
            f"Audio must be a file path, a (sample_rate, samples) pair or a numpy array; got {type(source).__name__}."
        )
    return from_samples(samples, rate, sample_rate)


def from_samples(samples: np.ndarray, rate, sample_rate: int = SAMPLE_RATE) -> Audio:
    """Validate raw samples [n] or [n, channels] at `rate` and convert them to an `Audio`."""
    try:
        rate = int(rate)
    except (TypeError, ValueError):
        raise AudioError(f"The sample rate must be a whole number of hertz, got {rate!r}.") from None
    if rate <= 0:
        raise AudioError(f"The sample rate must be positive, got {rate} Hz.")
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


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Polyphase resampling (scipy.signal.resample_poly) of float samples [n] -> [n * to/from]."""
    if from_rate == to_rate:
        return samples
    from scipy.signal import resample_poly

    ratio = Fraction(to_rate, from_rate)
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


def _read_file(path: Path) -> tuple[np.ndarray, int]:
    if not path.exists():
        raise AudioError(f"No such audio file: {path}.")
    if path.is_dir():
        raise AudioError(f"{path} is a folder, not an audio file.")
    if path.stat().st_size == 0:
        raise AudioError(f"{path.name} is empty (0 bytes).")
    import soundfile

    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=False)
    except Exception:  # soundfile raises LibsndfileError, RuntimeError or TypeError by format
        raise AudioError(f"{path.name} could not be read as audio; accepted formats are {ACCEPTED_FORMATS}.") from None
    if not math.isfinite(rate) or rate <= 0:
        raise AudioError(f"{path.name} declares an invalid sample rate ({rate}).")
    return samples, int(rate)
