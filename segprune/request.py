"""A demo request: what one visitor may ask (`Limits`) and the check of every field of it.

The app (`app.py`) turns the ValueError of `check_request` into the page's one error sentence;
the numbers a visitor sends may be of any JSON type and any size (10**400 included) and are
answered with a sentence, never an exception of another kind.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields
from typing import ClassVar

from . import silence
from .audio import ACCEPTED_FORMATS, MAX_CHANNELS, MAX_RATE, MIN_RATE
from .methods import METHODS, keep_count


@dataclass(frozen=True)
class Limits:
    """What one request may ask of the demo. The defaults suit a public Space; `python app.py
    --help` lists the flags that change them, and the page shows them under the audio input."""

    max_seconds: float = 120.0  # audio read per clip (and never more than the model takes); the rest is cut
    max_upload_mb: float = 50.0  # larger uploads are refused before they are read
    max_new_tokens: int = 256  # the longest answer a visitor can ask for
    max_queue: int = 16  # requests waiting for the model; more are turned away
    max_prompt_chars: int = 2000
    concurrency: int = 1  # requests on the model at once (one at a time on one GPU)

    HELP: ClassVar[dict[str, str]] = {
        "max_seconds": "seconds of each clip used; longer clips are cut, with a warning (never more than the model takes)",
        "max_upload_mb": "larger uploads are refused before anything reads them",
        "max_new_tokens": "the longest answer a visitor can ask for",
        "max_queue": "requests waiting for the model; more are turned away",
        "concurrency": "requests run on the model at once",
    }

    @classmethod
    def add_arguments(cls, parser) -> None:
        """One command-line flag per limit (--max-seconds, --max-upload-mb, ...), defaults shown."""
        from .args import positive_float, positive_int

        for f in fields(cls):
            if f.name in cls.HELP:
                kind = positive_int if isinstance(f.default, int) else positive_float
                flag = f"--{f.name.replace('_', '-')}"
                parser.add_argument(
                    flag, type=kind, default=f.default, help=f"{cls.HELP[f.name]} (default {f.default:g})"
                )

    @classmethod
    def from_args(cls, args) -> Limits:
        return cls(**{name: getattr(args, name) for name in cls.HELP})

    @property
    def max_bytes(self) -> int:
        return int(self.max_upload_mb * 2**20)

    def seconds_for(self, lm) -> float:
        """The clip length actually used: this demo's limit or the model's own, whichever is smaller."""
        return min(self.max_seconds, lm.max_seconds)

    def line(self, lm) -> str:
        """The one line under the audio input that says what is accepted."""
        return (
            f"Accepted: {ACCEPTED_FORMATS} files up to {self.max_upload_mb:g} MB, at {MIN_RATE // 1000} to "
            f"{MAX_RATE // 1000} kHz with up to {MAX_CHANNELS} channels (resampled to 16 kHz mono); the first "
            f"{self.seconds_for(lm):g} s of a clip are used. "
            f"Answers up to {self.max_new_tokens} new tokens, prompts up to {self.max_prompt_chars} characters; "
            f"{self.max_queue} requests can wait in the queue."
        )


def shown(value) -> str:
    """A visitor's value as an error message quotes it: its repr, cut short (a whole number too
    long to print, such as 10**5000, by its size)."""
    if isinstance(value, int) and value.bit_length() > 128:
        return f"a whole number of about {value.bit_length() * 0.30103:,.0f} digits"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "…"


def whole(value) -> int | None:
    """An integral number (7 or 7.0, of any size) as an int; None for anything else."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    return int(value) if math.isfinite(value) and float(value).is_integer() else None


def check_flag(name: str, value) -> bool:
    """A checkbox's value (None counts as false); ValueError for anything but true or false."""
    if value not in (None, True, False):
        raise ValueError(f"'{name}' must be true or false; got {shown(value)}.")
    return bool(value)


def check_selection(method, keep, segments, drop_silent=False) -> tuple[str, float, int, bool]:
    """The selection settings, validated: (method, keep, segments, drop_silent). Raises ValueError
    with one sentence that says what is wrong and what is accepted (any JSON value is answered)."""
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"Unknown pruning method {shown(method)}; choose one of {', '.join(METHODS)}.")
    try:
        keep_count(1, keep)
    except ValueError:
        raise ValueError(
            f"The keep ratio must be a number in (0, 1], the share of audio tokens kept; got {shown(keep)}."
        ) from None
    s = whole(segments)
    if s is None or s < 1:
        raise ValueError(
            f"S (segments) must be a whole number of at least 1 (more than the kept tokens is allowed: "
            f"S = min(S, K) is used); got {shown(segments)}."
        )
    return method, float(keep), s, check_flag(silence.LABEL, drop_silent)


def check_request(method, keep, segments, prompt, max_new_tokens, compare_all, limits: Limits):
    """The request's settings, validated: (method, keep, segments, prompt, max_new_tokens, compare_all).
    Raises ValueError with one sentence that says what is wrong and what is accepted."""
    method, keep, s, _ = check_selection(method, keep, segments)
    n = whole(max_new_tokens)
    if n is None or not 1 <= n <= limits.max_new_tokens:
        raise ValueError(
            f"Max new tokens must be a whole number from 1 to {limits.max_new_tokens}; got {shown(max_new_tokens)}."
        )
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("The prompt is empty: ask the model something about the audio.")
    if len(prompt) > limits.max_prompt_chars:
        raise ValueError(
            f"The prompt has {len(prompt)} characters; this demo accepts prompts of up to "
            f"{limits.max_prompt_chars} characters."
        )
    return method, keep, s, prompt.strip(), n, check_flag("Compare all methods", compare_all)


__all__ = ["Limits", "check_flag", "check_request", "check_selection", "shown", "whole"]
