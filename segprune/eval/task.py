"""What an evaluation task is: its data on the hub, its prompt per model family, its metric.

A task module (clotho.py, audiocaps.py, clothoaqa.py, mmau.py) builds one `CaptionTask` or
`QATask`; `segprune.eval.TASKS` lists them. Prompts are keyed by the adapter's family key
(`AudioLM.key`: "qwen2-audio", "audio-flamingo-3"; tiny variants share it) with a "default".
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .data import Item
from .metrics import (
    SBERT_MODEL,
    Scores,
    caption_scores,
    exact_match,
    mmau_correct,
    option_letters,
    optional,
    resolve_letter,
    sbert_choice,
)


@dataclass(frozen=True, kw_only=True)
class Task:
    name: str
    title: str  # as the paper's table names it
    metric: str  # primary metric key in Scores.values
    lower_is_better: bool = False  # the metric's direction (WER: lower is better); rankings follow it
    hub_id: str
    hub_config: str | None
    hub_split: str
    split_note: str  # which split the paper's numbers correspond to
    prompts: dict[str, str]
    prompt_source: str
    max_new_tokens: int

    def prompt(self, item: Item, family: str) -> str:
        """The item's own prompt if the manifest gave one, else the family's template filled in."""
        if item.prompt:
            return item.prompt
        template = self.prompts.get(family, self.prompts["default"])
        return template.format(question=item.question, options=self.options(item))

    def options(self, item: Item) -> str:
        return " ".join(
            f"({letter}) {choice}" for letter, choice in zip(option_letters(len(item.choices)), item.choices)
        )

    def check(self, items: list[Item]) -> None:
        """Raise ValueError naming the first item that lacks what this task scores against."""

    def score(self, items: list[Item], texts: list[str], options: dict | None = None) -> Scores:
        raise NotImplementedError


# Captioning prompts: Audio Flamingo 3's short-captioning prompt from its model card's prompt
# guide; for Qwen2-Audio, the captioning instruction of its README.
CAPTION_PROMPTS = {
    "audio-flamingo-3": "Generate a caption for the input audio.",
    "qwen2-audio": "Generate the caption in English:",
    "default": "Generate a caption for the input audio.",
}


@dataclass(frozen=True, kw_only=True)
class CaptionTask(Task):
    metric: str = "cider_d"
    prompts: dict[str, str] = field(default_factory=lambda: dict(CAPTION_PROMPTS))
    prompt_source: str = (
        "Audio Flamingo 3: model card prompt guide (short audio captioning); "
        "Qwen2-Audio: README (github.com/QwenLM/Qwen2-Audio), captioning example"
    )
    max_new_tokens: int = 64

    def check(self, items):
        for item in items:
            if not item.references:
                raise ValueError(f"Item {item.id!r} has no reference captions ('references').")

    def score(self, items, texts, options=None):
        return caption_scores(texts, [item.references for item in items])


@dataclass(frozen=True, kw_only=True)
class QATask(Task):
    """Accuracy (%). Multiple choice (MMAU) when `multiple_choice`, else exact match (ClothoAQA)."""

    metric: str = "accuracy"
    multiple_choice: bool = False

    def check(self, items):
        for item in items:
            if not item.question or not item.answer or (self.multiple_choice and len(item.choices) < 2):
                what = "a question, choices and an answer" if self.multiple_choice else "a question and an answer"
                raise ValueError(f"Item {item.id!r} needs {what} for {self.name}.")

    def score(self, items, texts, options=None):
        options = options or {}
        if not self.multiple_choice:
            right = [exact_match(t, item.answer) for t, item in zip(texts, items)]
            return Scores(
                {"accuracy": 100.0 * sum(right) / len(right)}, notes=["exact match, case and punctuation ignored"]
            )
        right = [mmau_correct(t, item.answer, item.choices) for t, item in zip(texts, items)]
        scores = Scores({"accuracy": 100.0 * sum(right) / len(right)}, notes=["MMAU string match"])
        model = options.get("sbert_model") or SBERT_MODEL
        picks, reason = optional(
            f"sbert {model}",
            lambda: sbert_choice(
                [resolve_letter(t, i.choices) for t, i in zip(texts, items)], [i.choices for i in items], model
            ),
        )
        if reason is None:
            hits = [item.choices[p] == item.answer for p, item in zip(picks, items)]
            scores.values["accuracy_sbert"] = 100.0 * sum(hits) / len(hits)
        else:
            scores.skipped["accuracy_sbert"] = f"needs sentence-transformers and the model {model} ({reason})"
        return scores


__all__ = ["CAPTION_PROMPTS", "CaptionTask", "QATask", "Task"]
