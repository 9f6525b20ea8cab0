"""How a selection covers the clip, and how two selections overlap: the numbers of the app's
compare-all table.

    covered_share(tokens.token_seconds, tokens.token_duration, kept, audio_seconds)   # 0.8: 8 of 10 s
    jaccard(kept, segmentwise_kept)                                                    # |A ∩ B| / |A ∪ B|

Pure numpy; knows nothing of models.
"""

from __future__ import annotations

import math

import numpy as np

COVERAGE_BIN_SECONDS = 1.0  # the clip's seconds: a second is covered when it keeps at least one token


def covered_bins(
    token_seconds: np.ndarray,
    token_duration: float,
    kept: np.ndarray,
    audio_seconds: float,
    bin_seconds: float = COVERAGE_BIN_SECONDS,
) -> tuple[int, int]:
    """(covered, total): of the clip's `bin_seconds` bins (the last one partial), how many hold the
    centre of at least one kept token. Tokens whose centre lies past `audio_seconds` (a window's
    padding) cover no bin. token_seconds: [N] starts (s); kept: [K] indices."""
    total = max(1, math.ceil(audio_seconds / bin_seconds - 1e-9))
    centres = np.asarray(token_seconds, dtype=np.float64)[np.asarray(kept, dtype=np.int64)] + token_duration / 2
    centres = centres[centres < audio_seconds]
    bins = np.unique(np.minimum((centres // bin_seconds).astype(np.int64), total - 1))
    return int(bins.size), total


def covered_share(
    token_seconds: np.ndarray,
    token_duration: float,
    kept: np.ndarray,
    audio_seconds: float,
    bin_seconds: float = COVERAGE_BIN_SECONDS,
) -> float:
    """The share in [0, 1] of the clip's seconds that keep at least one token (see `covered_bins`)."""
    covered, total = covered_bins(token_seconds, token_duration, kept, audio_seconds, bin_seconds)
    return covered / total


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """|A ∩ B| / |A ∪ B| of two sets of token indices (1.0 for two empty sets)."""
    a, b = np.unique(np.asarray(a, dtype=np.int64)), np.unique(np.asarray(b, dtype=np.int64))
    union = np.union1d(a, b).size
    return 1.0 if union == 0 else np.intersect1d(a, b, assume_unique=True).size / union


def kept_among(mask: np.ndarray | None, kept: np.ndarray) -> int | None:
    """How many kept tokens the bool mask [N] marks (e.g. silent ones); None without a mask."""
    return None if mask is None else int(np.asarray(mask, dtype=bool)[np.asarray(kept, dtype=np.int64)].sum())


__all__ = ["COVERAGE_BIN_SECONDS", "covered_bins", "covered_share", "jaccard", "kept_among"]
