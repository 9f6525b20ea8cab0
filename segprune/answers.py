"""Answers compared and shown: how far a pruned answer is from the full model's (word error
rate), and a readable rendering of random-weight text.

    word_error_rate("a cat sat", "a dog sat")        # 1/3
    readable("g\ufffds\ufffd\x05 x")                  # 'g·s·· x'
    readable("gès", ascii_only=True)                 # 'g·s'

Pure Python; knows nothing of models.
"""

from __future__ import annotations

import re
import unicodedata

_WORD = re.compile(r"[\w']+")
UNREADABLE = "·"  # stands for one character that cannot be shown (U+FFFD, a control character)


def words_of(text: str) -> list[str]:
    """The words of `text` as WER compares them: lower case, punctuation dropped (apostrophes kept)."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).lower())


def edit_distance(a: list[str], b: list[str]) -> int:
    """Levenshtein distance between two word lists (substitutions, insertions, deletions: 1 each)."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        current = [i]
        for j, y in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def word_error_rate(reference: str, hypothesis: str) -> float | None:
    """Word error rate of `hypothesis` against `reference`: word edits / reference words (0 when
    they say the same words; it can exceed 1). None when the reference has no words (undefined)."""
    ref = words_of(reference)
    if not ref:
        return None
    return edit_distance(ref, words_of(hypothesis)) / len(ref)


def readable(text: str, ascii_only: bool = False) -> str:
    """`text` with every character that cannot be shown (U+FFFD replacement characters from
    undecodable bytes, control characters; with `ascii_only`, anything but printable ASCII) as
    '·', and runs of whitespace as one space."""

    def shown(ch: str) -> bool:
        if ch.isspace():
            return True
        if ascii_only:
            return " " < ch <= "~"
        return ch != "\ufffd" and unicodedata.category(ch)[0] != "C"

    return " ".join("".join(ch if shown(ch) else UNREADABLE for ch in text).split())


__all__ = ["UNREADABLE", "edit_distance", "readable", "word_error_rate", "words_of"]
