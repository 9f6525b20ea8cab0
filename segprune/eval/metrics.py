"""Metrics, from the field's own tools wherever they exist.

- Captioning: CIDEr-D from `aac-metrics` (pure Python). SPIDEr, METEOR and SPICE also come from
  aac-metrics but need Java 8-13 and its downloaded jars (`aac-metrics-download`); FENSE needs
  `sentence-transformers` and model downloads. Each is computed when it can be and otherwise
  reported as skipped, with the reason.
- Captions are PTB-tokenised (aac-metrics' preprocessing, Java) when Java is usable; otherwise a
  pure-Python normalisation (lower case, punctuation removed) stands in, and the results say so.
- ClothoAQA: exact match after lower-casing and removing punctuation (lmms-eval's setting).
- MMAU: the official string-matching rule (github.com/Sakshi113/MMAU, evaluation.py), after a
  bare option letter ("B", "(B)") is replaced by that option's text; optionally the paper's
  Sentence-BERT option matching.
"""

from __future__ import annotations

import re
import shutil
import string
import subprocess
from dataclasses import dataclass, field
from functools import lru_cache, partial

JAVA_METRICS = ("spider", "meteor", "spice")
CAPTION_METRICS = ("cider_d", *JAVA_METRICS, "fense")
SBERT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


@dataclass
class Scores:
    """Corpus-level scores by name (primary metric first) and the metrics skipped, with reasons."""

    values: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# --- text normalisation

_PUNCTUATION = re.compile(f"[{re.escape(string.punctuation)}]")


def normalize_answer(text: str) -> str:
    """Lower case, punctuation removed, whitespace collapsed: 'Yes.' -> 'yes', ' Two  dogs!' -> 'two dogs'."""
    return " ".join(_PUNCTUATION.sub(" ", str(text).lower()).split())


def exact_match(prediction: str, answer: str) -> bool:
    return normalize_answer(prediction) == normalize_answer(answer)


# --- MMAU


def _words(text: str) -> set[str]:
    return set(re.findall(r"\b\w+\b", str(text).lower()))


def mmau_string_match(answer: str, prediction: str, choices: list[str]) -> bool:
    """MMAU's official rule: right when the prediction contains every word of the answer and no
    word that belongs only to a wrong choice (words shared with the answer are allowed)."""
    predicted, wanted = _words(prediction), _words(answer)
    if not predicted:
        return False
    wrong = set()
    for choice in choices:
        words = _words(choice)
        if words != wanted:
            wrong |= words - wanted
    return wanted <= predicted and predicted.isdisjoint(wrong)


_LETTER = re.compile(r"^\s*\(?([A-Za-z])\)?[.:]?\s*$")


def option_letters(n: int) -> list[str]:
    return [chr(ord("A") + i) for i in range(n)]


def resolve_letter(prediction: str, choices: list[str]) -> str:
    """A bare option letter ('B', '(b)', 'B.') -> the text of that option; anything else unchanged.
    The MMAU prompt labels its options (A), (B), ...; the official rule alone would mark a bare
    letter wrong even when it names the right option."""
    m = _LETTER.match(prediction)
    if m:
        index = ord(m.group(1).upper()) - ord("A")
        if 0 <= index < len(choices):
            return choices[index]
    return prediction


def mmau_correct(prediction: str, answer: str, choices: list[str]) -> bool:
    return mmau_string_match(answer, resolve_letter(prediction, choices), choices)


def sbert_choice(predictions: list[str], choices: list[list[str]], model_name: str = SBERT_MODEL) -> list[int]:
    """The paper's option matching: the index of the option whose Sentence-BERT embedding is the
    most similar (cosine) to each prediction. Raises ImportError / OSError if the model is not at hand."""
    model = _sentence_model(model_name)
    picks = []
    for prediction, options in zip(predictions, choices):
        emb = model.encode([prediction, *options], convert_to_tensor=True, normalize_embeddings=True)
        picks.append(int((emb[1:] @ emb[0]).argmax()))
    return picks


_UNAVAILABLE: dict[str, str] = {}


def optional(name: str, compute):
    """`compute()` for an optional metric -> (value, None), or (None, why it failed). A failure is
    remembered for the process, so that the other settings of a run skip it at once instead of
    retrying a download every time."""
    if name in _UNAVAILABLE:
        return None, _UNAVAILABLE[name]
    try:
        return compute(), None
    except Exception as err:  # noqa: BLE001  missing package, jar, model or network: report, never fail the run
        text = str(err).strip().splitlines()
        _UNAVAILABLE[name] = reason = f"{type(err).__name__}: {text[0][:160] if text else ''}"
        return None, reason


@lru_cache(maxsize=2)
def _sentence_model(name: str):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(name)


# --- captioning


@lru_cache(maxsize=1)
def java_status() -> str | None:
    """None when a Java that aac-metrics accepts (8 to 13) is on PATH, else why not."""
    java = shutil.which("java")
    if java is None:
        return "needs Java 8-13 (no java on PATH) and `aac-metrics-download`"
    try:
        out = subprocess.run([java, "-version"], check=False, capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired):
        return "needs Java 8-13 (java -version failed)"
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    major = (int(m.group(2)) if m.group(1) == "1" else int(m.group(1))) if m else None
    if major is None or not 8 <= major <= 13:
        return f"needs Java 8-13 (found Java {major if major is not None else '?'}) and `aac-metrics-download`"
    return None


def caption_tokens(candidates: list[str], references: list[list[str]]) -> tuple[list[str], list[list[str]], str]:
    """Captions as the metrics see them: PTB-tokenised by aac-metrics when Java is usable, else the
    pure-Python normalisation. Returns (candidates, references, name of the preprocessing)."""
    if java_status() is None:
        tokens, reason = optional("ptb", partial(_ptb, candidates, references))
        if reason is None:
            return (*tokens, "ptb")
    return (
        [normalize_answer(c) for c in candidates],
        [[normalize_answer(r) for r in refs] for refs in references],
        "lower-nopunct",
    )


def _ptb(candidates: list[str], references: list[list[str]]):
    from aac_metrics.utils.tokenization import preprocess_mono_sents, preprocess_mult_sents

    return preprocess_mono_sents(candidates), preprocess_mult_sents(references)


def cider_d(candidates: list[str], references: list[list[str]]) -> float:
    """Corpus CIDEr-D (aac-metrics, n=4, sigma=6, x10 scale) of captions already tokenised."""
    from aac_metrics.functional import cider_d as aac_cider_d

    corpus, _ = aac_cider_d(candidates, references)
    return float(corpus["cider_d"])


def caption_scores(candidates: list[str], references: list[list[str]], wanted=CAPTION_METRICS) -> Scores:
    """CIDEr-D and whichever of SPIDEr, METEOR, SPICE, FENSE can be computed here."""
    if any(not refs for refs in references):
        raise ValueError("Every captioning item needs at least one reference caption.")
    cands, refs, how = caption_tokens(candidates, references)
    scores = Scores(notes=[f"captions preprocessed: {how}"])
    if len(candidates) < 2:  # aac-metrics' CIDEr-D computes its IDF over the corpus
        scores.skipped["cider_d"] = "needs at least 2 items"
    else:
        scores.values["cider_d"] = cider_d(cands, refs)
    java = java_status()
    for name in wanted:
        if name == "cider_d":
            continue
        if name in JAVA_METRICS and java is not None:
            scores.skipped[name] = java
            continue
        args = (candidates, references) if name == "fense" else (cands, refs)  # FENSE reads raw captions
        value, reason = optional(name, partial(_aac_metric, name, *args))
        if reason is None:
            scores.values[name] = value
        else:
            scores.skipped[name] = reason
    return scores


def _aac_metric(name: str, candidates: list[str], references: list[list[str]]) -> float:
    from aac_metrics import functional

    corpus, _ = getattr(functional, name)(candidates, references)
    return float(corpus[name])


__all__ = [
    "CAPTION_METRICS",
    "SBERT_MODEL",
    "Scores",
    "caption_scores",
    "cider_d",
    "exact_match",
    "mmau_correct",
    "mmau_string_match",
    "normalize_answer",
    "option_letters",
    "optional",
    "resolve_letter",
    "sbert_choice",
]
