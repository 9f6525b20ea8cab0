"""Listen to what the pruned model hears: the clip with the dropped tokens' audio silenced.

    track = listening_track(audio.samples, audio.sample_rate, tokens.token_seconds, tokens.token_duration, kept)

Token i covers the samples [round(start_i * rate), round((start_i + duration) * rate)) of the clip.
The track has the clip's length and dtype; it equals the clip over every kept token's span and is
exactly zero everywhere else: over the dropped tokens' spans, and over audio that no token covers
(a tail shorter than one token). Tokens past the end of the audio (a window's padding, e.g. most of
Whisper's 1500 frames on a short clip) have no samples: keeping or dropping them changes nothing
here. No fades: a kept span is the clip's own samples, unchanged.

Memory: the track itself plus O(K) for the spans (never a per-sample mask), so a 30-minute clip
(28.8 M samples) costs its own size once more. Pure numpy, plus soundfile to write FLAC.
"""

from __future__ import annotations

import io

import numpy as np
import soundfile


def heard_spans(
    token_seconds: np.ndarray, token_duration: float, kept: np.ndarray, sample_rate: int, n_samples: int
) -> np.ndarray:
    """The sample ranges the kept tokens cover: [R, 2] int64 rows (start, end), end exclusive,
    sorted, disjoint and not touching (adjacent spans are merged), within [0, n_samples).

    token_seconds: [N] start time of every token (s); kept: [K] token indices (any order)."""
    kept = np.asarray(kept, dtype=np.int64)
    if kept.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    starts = np.asarray(token_seconds, dtype=np.float64)[kept]
    order = np.argsort(starts, kind="stable")
    starts = starts[order]
    a = np.clip(np.rint(starts * sample_rate).astype(np.int64), 0, n_samples)
    b = np.clip(np.rint((starts + token_duration) * sample_rate).astype(np.int64), 0, n_samples)
    keep = b > a  # padding tokens (past the audio) cover no sample
    a, b = a[keep], b[keep]
    if a.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    reach = np.maximum.accumulate(b)  # the furthest end so far
    new_run = np.ones(a.size, dtype=bool)
    new_run[1:] = a[1:] > reach[:-1]  # a gap before this span
    first = np.flatnonzero(new_run)
    last = np.append(first[1:], a.size) - 1
    return np.stack([a[first], reach[last]], axis=1)


def listening_track(
    samples: np.ndarray, sample_rate: int, token_seconds: np.ndarray, token_duration: float, kept: np.ndarray
) -> np.ndarray:
    """The clip samples [n] with everything but the kept tokens' spans set to zero: [n], same dtype.

    token_seconds: [N] start of each token (s), token_duration: seconds per token, kept: [K] indices."""
    samples = np.asarray(samples)
    track = np.zeros_like(samples)
    for start, end in heard_spans(token_seconds, token_duration, kept, sample_rate, len(samples)):
        track[start:end] = samples[start:end]
    return track


def heard_seconds(
    token_seconds: np.ndarray, token_duration: float, kept: np.ndarray, sample_rate: int, n_samples: int
) -> float:
    """Seconds of the clip that the kept tokens cover (what the listening track plays)."""
    spans = heard_spans(token_seconds, token_duration, kept, sample_rate, n_samples)
    return float((spans[:, 1] - spans[:, 0]).sum()) / sample_rate


def to_pcm16(samples: np.ndarray) -> np.ndarray:
    """Float samples [n] in [-1, 1] as int16 [n] (clipped; 2 bytes a sample, what a session holds)."""
    return np.round(np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0) * 32767).astype(np.int16)


def flac_bytes(samples: np.ndarray, sample_rate: int) -> bytes:
    """The samples [n] (int16, or float in [-1, 1]) as a 16-bit mono FLAC file, losslessly: silence
    stays exactly silent, at its level (no normalisation)."""
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, sample_rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


__all__ = ["flac_bytes", "heard_seconds", "heard_spans", "listening_track", "to_pcm16"]
