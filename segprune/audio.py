"""Audio input: load, validate, mix down to mono and resample to the model's rate.

Every model segprune supports takes 16 kHz mono float audio. `load_audio` accepts a file path,
a ``(sample_rate, samples)`` pair (what Gradio's microphone and numpy users hand over) or a bare
array already at 16 kHz, and returns an `Audio`, or raises `AudioError` with one plain sentence
that says what is wrong and what is accepted.

Memory is bounded by the result, not by the input: files are decoded a block of at most
`BLOCK_SAMPLES` samples (frames x channels) at a time, each block is mixed down and resampled
before the next is read, and only the 16 kHz mono result is kept whole. So a small file with many
channels at a high rate (a few KB of silence can hold 64 channels at 192 kHz for minutes) costs
the memory of its 16 kHz mono clip plus one block.
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
# The largest channel layouts in use: 22.2 surround (24), 7th-order Ambisonics (64) and 64-capsule
# spherical microphone arrays. More is a crafted file or a [channels, samples] array passed where
# [samples, channels] is expected; and decoding time grows with the count even if memory does not.
MAX_CHANNELS = 64
BLOCK_SAMPLES = 1 << 18  # samples (frames x channels) decoded and mixed down at a time: 1 MB as float32


class AudioError(ValueError):
    """The input is not usable audio; the message is one sentence meant for a person."""


@dataclass(frozen=True)
class Audio:
    """A mono clip at `sample_rate`.

    samples: float32 [n] in [-1, 1] (values outside are kept; models normalise features).
    source_rate / source_channels: what the input had before conversion.
    truncated_seconds: audio cut off the end so far (by `load_audio(max_seconds=)` or `truncated`).
    missing_seconds: audio the file's header announces but the file does not hold (a WAV whose data
        chunk claims more bytes than follow it, a cut-off MP3); `samples` is what is there.
    """

    samples: np.ndarray
    sample_rate: int = SAMPLE_RATE
    source_rate: int = SAMPLE_RATE
    source_channels: int = 1
    truncated_seconds: float = 0.0
    missing_seconds: float = 0.0

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.sample_rate

    @property
    def is_silent(self) -> bool:
        """The whole clip is silent (see `segprune.silence.clip_is_silent`)."""
        return clip_is_silent(self.samples)

    def truncated(self, max_seconds: float) -> Audio:
        """The first `max_seconds` of the clip; `truncated_seconds` grows by what was cut off."""
        limit = round(max_seconds * self.sample_rate)
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
    if isinstance(source, (str, Path)):
        audio = _read_file(Path(source), sample_rate, max_seconds, max_bytes)
    elif isinstance(source, tuple) and len(source) == 2:
        rate, samples = source
        audio = from_samples(np.asarray(samples), rate, sample_rate)
    elif isinstance(source, np.ndarray):
        audio = from_samples(source, sample_rate, sample_rate)
    else:
        raise AudioError(
            f"Audio must be a file path, a (sample_rate, samples) pair or a numpy array; got {type(source).__name__}."
        )
    return audio.truncated(max_seconds) if max_seconds is not None else audio


def from_samples(samples: np.ndarray, rate, sample_rate: int = SAMPLE_RATE) -> Audio:
    """Validate raw samples [n] or [n, channels] at `rate` and convert them to an `Audio`.

    Mixed down and resampled a block at a time: beyond `samples` itself, memory is the result plus
    one block, whatever the channel count and rate.
    """
    rate = _check_rate(rate)
    if samples.ndim == 2 and samples.shape[1] == 0:
        raise AudioError("The audio has no channels.")
    if samples.ndim == 0 or samples.size == 0:
        raise AudioError("The audio is empty: it has no samples.")
    if samples.ndim > 2:
        raise AudioError(f"Audio samples must be 1-D or [samples, channels], got shape {samples.shape}.")
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    if channels > MAX_CHANNELS:
        raise AudioError(
            f"The audio has {channels} channels; at most {MAX_CHANNELS} are accepted, laid out as [samples, channels]."
        )
    _to_float(samples[:0])  # refuses a non-numeric dtype before any work
    mix = _Mixdown(len(samples), rate, sample_rate)
    step = mix.block_frames(channels)
    for start in range(0, len(samples), step):
        mix.add(samples[start : start + step])
    return Audio(mix.finish(), sample_rate, rate, channels)


def _check_rate(rate) -> int:
    try:
        rate = int(rate)
    except (TypeError, ValueError, OverflowError):
        raise AudioError(f"The sample rate must be a whole number of hertz, got {rate!r}.") from None
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AudioError(f"The sample rate must be between {MIN_RATE} and {MAX_RATE} Hz, got {rate} Hz.")
    return rate


MAX_RATIO_DENOMINATOR = 1000  # every standard rate's ratio to 16 kHz is exact within it (44.1 kHz: 160/441)


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Polyphase resampling (as scipy.signal.resample_poly) of float samples [n] -> float32 [n * to/from].

    An odd rate (44101 Hz, 767999 Hz) would need a filter of millions of taps for the exact ratio
    (seconds of CPU for one second of audio); its ratio is rounded to the nearest fraction with a
    denominator of at most 1000: off by at most 0.1 % (under 2 cents of pitch, inaudible).
    Done a block at a time (`_Resampler`): memory is the output plus one block.
    """
    if from_rate == to_rate:
        return samples
    resampler = _Resampler(len(samples), from_rate, to_rate)
    step = resampler.down * max(1, BLOCK_SAMPLES // resampler.down)
    for start in range(0, len(samples), step):
        resampler.add(samples[start : start + step].astype(np.float64))
    return resampler.finish()


def _output_length(n_in: int, up: int, down: int) -> int:
    return -(-n_in * up // down)


class _Resampler:
    """`scipy.signal.resample_poly(x, up, down)` (its Kaiser-windowed filter, zero padding) of a signal
    fed in blocks: the same result as one call on the whole signal, holding the float32 output and
    one block.

    Overlap-add: each block's filtered output (`upfirdn`) is added at its place; the last
    len(filter) / down outputs of a block overlap the next block's and are kept in float64 until it
    comes. Every block but the last must be a multiple of `down` samples long, so that all blocks
    start on the same filter phase.
    """

    def __init__(self, n_in: int, from_rate: int, to_rate: int):
        ratio = Fraction(to_rate, from_rate).limit_denominator(MAX_RATIO_DENOMINATOR)
        self.up, self.down = ratio.numerator, ratio.denominator
        self.out = np.zeros(_output_length(n_in, self.up, self.down), dtype=np.float32)
        self.fed = 0  # input samples so far
        if self.up == self.down:
            return
        from scipy.signal import firwin

        # the filter and delay exactly as resample_poly designs them
        widest = max(self.up, self.down)
        half = 10 * widest
        pad = self.down - half % self.down
        lowpass = firwin(2 * half + 1, 1.0 / widest, window=("kaiser", 5.0)) * self.up
        self.filter = np.concatenate([np.zeros(pad), lowpass])
        self.delay = (half + pad) // self.down  # outputs resample_poly drops from upfirdn's start
        self.tail, self.tail_at = np.zeros(0), -self.delay  # pending float64 outputs and the index of the first

    def add(self, block: np.ndarray) -> None:
        """Feed the next float samples [m]."""
        if self.up == self.down:
            self.out[self.fed : self.fed + len(block)] = block
            self.fed += len(block)
            return
        from scipy.signal import upfirdn

        filtered = upfirdn(self.filter, block, self.up, self.down)
        at = self.fed // self.down * self.up - self.delay
        done = at - self.tail_at  # pending outputs that no later block reaches
        self._write(self.tail_at, self.tail[:done])
        rest = self.tail[done:]
        if len(rest) > len(filtered):
            filtered = np.pad(filtered, (0, len(rest) - len(filtered)))
        filtered[: len(rest)] += rest
        self.tail, self.tail_at = filtered, at
        self.fed += len(block)

    def _write(self, at: int, values: np.ndarray) -> None:
        lo, hi = max(at, 0), min(at + len(values), len(self.out))
        if hi > lo:
            self.out[lo:hi] = values[lo - at : hi - at]

    def finish(self) -> np.ndarray:
        """float32 [ceil(fed * up / down)]: the resampled signal of every sample fed."""
        if self.up != self.down:
            self._write(self.tail_at, self.tail)
            self.tail = np.zeros(0)
        n = _output_length(self.fed, self.up, self.down)
        return self.out if n == len(self.out) else self.out[:n].copy()


class _Mixdown:
    """Blocks of samples [m] or [m, channels] in, one 16 kHz (`sample_rate`) mono float32 clip out.

    Each block is scaled to float (integer PCM to [-1, 1)), averaged over its channels, checked for
    NaN and infinity and resampled before the next comes; `frames` (the most that will be fed) sizes
    the output.
    """

    def __init__(self, frames: int, rate: int, sample_rate: int):
        self.resampler = _Resampler(frames, rate, sample_rate)

    def block_frames(self, channels: int) -> int:
        """Frames per block: at most BLOCK_SAMPLES samples, a multiple of the resampler's `down`."""
        down = self.resampler.down
        return down * max(1, BLOCK_SAMPLES // channels // down)

    def add(self, block: np.ndarray) -> None:
        mono = _to_float(block, np.float64)
        if mono.ndim == 2:
            mono = mono.mean(axis=1)
        if not np.all(np.isfinite(mono)):
            raise AudioError("The audio contains NaN or infinite samples; please provide a valid recording.")
        self.resampler.add(mono)

    def finish(self) -> np.ndarray:
        return self.resampler.finish()


def _to_float(samples: np.ndarray, dtype=np.float32) -> np.ndarray:
    """Integer PCM is scaled to [-1, 1); float stays as it is; the result has `dtype`."""
    if np.issubdtype(samples.dtype, np.floating):
        return samples.astype(dtype, copy=False)
    if np.issubdtype(samples.dtype, np.unsignedinteger):
        info = np.iinfo(samples.dtype)
        mid = (int(info.max) + 1) / 2
        return ((samples.astype(np.float64) - mid) / mid).astype(dtype, copy=False)
    if np.issubdtype(samples.dtype, np.signedinteger):
        scale = float(-np.iinfo(samples.dtype).min)
        return (samples.astype(np.float64) / scale).astype(dtype, copy=False)
    if samples.dtype == np.bool_:
        return samples.astype(dtype)
    raise AudioError(f"Audio samples must be numbers, got dtype {samples.dtype}.")


def _read_file(path: Path, sample_rate: int, max_seconds: float | None, max_bytes: int | None) -> Audio:
    """Decode, mix down and resample a file a block at a time, reading at most `max_seconds`."""
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
            rate, channels, total = _check_rate(f.samplerate), f.channels, f.frames
            if channels > MAX_CHANNELS:
                raise AudioError(f"{path.name} has {channels} channels; files with up to {MAX_CHANNELS} are accepted.")
            claimed = max(total, _wav_claimed_frames(path) if f.format in ("WAV", "WAVEX") else 0)
            wanted = total if max_seconds is None else min(total, math.ceil(max_seconds * rate))
            if wanted <= 0:
                raise AudioError("The audio is empty: it has no samples.")
            mix = _Mixdown(wanted, rate, sample_rate)
            buffer = np.empty((min(mix.block_frames(channels), wanted), channels), dtype=np.float32)
            read = 0
            while read < wanted:
                block = f.read(out=buffer[: wanted - read])
                if len(block) == 0:
                    break
                mix.add(block)
                read += len(block)
    except AudioError:
        raise
    except Exception:  # noqa: BLE001 - soundfile raises LibsndfileError, RuntimeError, TypeError... by format
        raise AudioError(f"{path.name} could not be read as audio; accepted formats are {ACCEPTED_FORMATS}.") from None
    if read == 0:
        raise AudioError("The audio is empty: it has no samples.")
    present = read if read < wanted else total  # a file that ends early holds only what was read
    return Audio(
        mix.finish(),
        sample_rate,
        rate,
        channels,
        truncated_seconds=(present - read) / rate,
        missing_seconds=(claimed - present) / rate,
    )


WAV_SAMPLE_FORMATS = (1, 3, 6, 7, 0xFFFE)  # PCM, IEEE float, A-law, mu-law, extensible: block_align = 1 frame


def _wav_claimed_frames(path: Path) -> int:
    """The frames a RIFF/WAVE header's data chunk announces; 0 where it does not say.

    libsndfile shortens a data chunk that claims more bytes than the file holds to what is there,
    silently; this reads the claim. A streaming header's size 0 or 0xFFFFFFFF (length unknown),
    RF64 and compressed formats (ADPCM: a block holds many frames) announce nothing here.
    """
    with open(path, "rb") as f:
        head = f.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return 0
        frame_bytes = 0
        while len(chunk := f.read(8)) == 8:
            name, size = chunk[:4], int.from_bytes(chunk[4:], "little")
            if name == b"data":
                return size // frame_bytes if frame_bytes and size not in (0, 0xFFFFFFFF) else 0
            if name == b"fmt ":
                fmt = f.read(min(size, 16))
                if len(fmt) < 14 or int.from_bytes(fmt[:2], "little") not in WAV_SAMPLE_FORMATS:
                    return 0
                frame_bytes = int.from_bytes(fmt[12:14], "little")
                size -= len(fmt)
            f.seek(size + (size & 1), 1)  # chunks are padded to an even length
    return 0
