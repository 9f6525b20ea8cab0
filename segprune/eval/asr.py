"""Speech recognition: word error rate (%) against a reference transcript. LOWER IS BETTER.

    segprune eval --model FOLDER --task asr --manifest assets/speech/manifest.jsonl

Items are audio + reference text: a manifest line `{"id", "audio", "references": [text]}` (the
first reference is scored; `assets/speech/manifest.jsonl` is one) or hub rows with a `text`
column (default dataset: LibriSpeech test-clean, `openslr/librispeech_asr`, not checked offline).

The metric is jiwer's corpus WER (substitutions + deletions + insertions over all reference words,
in percent) after `normalize` on both sides; `cer` is the character error rate the same way.
`normalize` is OpenAI Whisper's English normaliser as transformers ships it
(`EnglishTextNormalizer`), without its British-to-American spelling table (not shipped there):
lower case; text in brackets or parentheses dropped; punctuation removed (apostrophes of
contractions expanded first: "don't" -> "do not"); titles spelled out ("mr" -> "mister");
numbers written as digits on both sides, so espeak-ng's spoken "twenty minutes" and a
transcript's "20 minutes" agree ("one hundred" -> "100", "twenty-five dollars" -> "$25");
whitespace collapsed. "neighbours" and "neighbors" still differ, and a spoken digit string
joins into one number ("one two three" -> "123"), on both sides alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from .data import Item
from .metrics import Scores
from .task import Task

NORMALIZER_NOTE = "WER after Whisper's English normaliser (no spelling table); lower is better"


@cache
def _normalizer():
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    return EnglishTextNormalizer({})


def normalize(text: str) -> str:
    """The text as scored: 'Please turn off the lights, don't wait!' -> 'please turn off the lights do not wait'."""
    return _normalizer()(str(text))


def word_error_rate(references: list[str], hypotheses: list[str]) -> dict[str, float]:
    """Corpus WER and CER in percent of normalised texts (jiwer), with the error counts."""
    try:
        import jiwer
    except ImportError:
        raise ValueError("The asr task needs jiwer: pip install 'segprune[eval]' or pip install jiwer.") from None
    refs = [normalize(r) for r in references]
    hyps = [normalize(h) for h in hypotheses]
    if not any(refs):
        raise ValueError("Every reference transcript is empty after normalisation; nothing to score against.")
    kept = [(r, h) for r, h in zip(refs, hyps) if r]  # jiwer rejects empty references
    words = jiwer.process_words([r for r, _ in kept], [h for _, h in kept])
    chars = jiwer.cer([r for r, _ in kept], [h for _, h in kept])
    return {
        "wer": 100.0 * words.wer,
        "cer": 100.0 * float(chars),
        "substitutions": float(words.substitutions),
        "deletions": float(words.deletions),
        "insertions": float(words.insertions),
    }


@dataclass(frozen=True, kw_only=True)
class AsrTask(Task):
    """WER (%), lower is better (`lower_is_better`); scored on each item's first reference."""

    metric: str = "wer"
    lower_is_better: bool = True

    def check(self, items: list[Item]) -> None:
        for item in items:
            if not item.references or not item.references[0].strip():
                raise ValueError(f"Item {item.id!r} has no reference transcript ('references' or 'text').")

    def score(self, items: list[Item], texts: list[str], options: dict | None = None) -> Scores:
        values = word_error_rate([item.references[0] for item in items], texts)
        return Scores(values, notes=[NORMALIZER_NOTE])


TASK = AsrTask(
    name="asr",
    title="Speech recognition (WER %, lower is better)",
    hub_id="openslr/librispeech_asr",
    hub_config="clean",
    hub_split="test",
    split_note="LibriSpeech test-clean (2,620 utterances); offline: a manifest such as assets/speech/manifest.jsonl",
    prompts={"default": "Transcribe the speech in this audio word for word."},
    prompt_source="segprune's wording (Whisper ignores prompts: it transcribes)",
    max_new_tokens=128,
)

__all__ = ["NORMALIZER_NOTE", "TASK", "AsrTask", "normalize", "word_error_rate"]
