"""Evaluation items: from a local JSONL manifest (offline) or from the Hugging Face hub.

A manifest has one JSON object per line; only `audio` is required:

    {"id": "clip1", "audio": "clips/clip1.wav",                   audio path, relative to the manifest
     "references": ["a dog barks", "a dog is barking"],           captioning
     "question": "What animal is heard?", "answer": "dog",        question answering
     "choices": ["dog", "cat", "bird", "cow"],                    multiple choice (MMAU)
     "prompt": "..."}                                             optional: replaces the task's prompt

Hub rows are mapped by `items_from_rows`, which accepts the column names the audio datasets on the
hub use (see each task module); the audio column is read undecoded and decoded here with
soundfile, so `datasets` needs neither torchcodec nor ffmpeg.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..audio import Audio, AudioError, from_samples, load_audio


@dataclass
class Item:
    """One evaluation example. `audio` is a file path or an already decoded `Audio`."""

    id: str
    audio: str | Audio
    question: str = ""
    choices: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    answer: str = ""
    prompt: str | None = None

    def load(self) -> Audio:
        return self.audio if isinstance(self.audio, Audio) else load_audio(self.audio)


def read_manifest(path: str | Path) -> list[Item]:
    """Items of a JSONL manifest; relative audio paths are resolved against the manifest's folder."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"No such manifest file: {path}.")
    items, seen = [], set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path.name} line {number} is not valid JSON ({err.msg}).") from None
        if not isinstance(row, dict) or not row.get("audio"):
            raise ValueError(f"{path.name} line {number} has no 'audio' path.")
        audio = Path(row["audio"])
        item = Item(
            id=str(row.get("id", number)),
            audio=str(audio if audio.is_absolute() else path.parent / audio),
            question=str(row.get("question", "")),
            choices=[str(c) for c in row.get("choices", [])],
            references=_as_list(row.get("references", [])),
            answer=str(row.get("answer", "")),
            prompt=row.get("prompt"),
        )
        if item.id in seen:
            raise ValueError(f"{path.name} line {number}: the id {item.id!r} is used twice.")
        seen.add(item.id)
        items.append(item)
    if not items:
        raise ValueError(f"{path.name} has no items.")
    return items


def _as_list(value) -> list[str]:
    return [str(value)] if isinstance(value, str) else [str(v) for v in value]


# --- hub rows

AUDIO_COLUMNS = ("audio", "audio_file", "file")
ID_COLUMNS = ("id", "audio_id", "youtube_id", "audiocap_id", "file_name", "filename")
REFERENCE_LISTS = ("captions", "references", "caption_list")
SINGLE_REFERENCE = ("caption", "text")


def decode_audio(value) -> Audio:
    """A hub audio cell read with `datasets.Audio(decode=False)` ({"bytes", "path"}), a decoded
    cell ({"array", "sampling_rate"}) or a path."""
    if isinstance(value, dict) and value.get("array") is not None:
        import numpy as np

        return from_samples(np.asarray(value["array"]), value["sampling_rate"])
    if isinstance(value, dict) and value.get("bytes"):
        import soundfile

        try:
            samples, rate = soundfile.read(io.BytesIO(value["bytes"]), dtype="float32", always_2d=False)
        except (RuntimeError, TypeError, ValueError):  # soundfile's errors by format
            raise AudioError(f"The audio of {value.get('path') or 'a hub row'} could not be decoded.") from None
        return from_samples(samples, rate)
    path = value.get("path") if isinstance(value, dict) else value
    if not path:
        raise AudioError("A hub row has an empty audio cell.")
    return load_audio(path)


def _column(row: dict, names: Iterable[str]):
    return next((name for name in names if name in row), None)


def references_of(row: dict) -> list[str]:
    """Reference captions of a row: a list column, numbered columns (caption_1 ... caption_5) or one
    caption column."""
    name = _column(row, REFERENCE_LISTS)
    if name is not None:
        return _as_list(row[name])
    numbered = sorted((k for k in row if k.startswith("caption_") and k[8:].isdigit()), key=lambda k: int(k[8:]))
    if numbered:
        return [str(row[k]) for k in numbered if row[k]]
    name = _column(row, SINGLE_REFERENCE)
    return [str(row[name])] if name is not None and row[name] else []


def items_from_rows(rows: Iterable[dict], limit: int | None = None) -> list[Item]:
    """Items from hub rows. Consecutive rows with the same id (one caption per row, as some
    AudioCaps copies store them) are merged into one item with all their references."""
    items: list[Item] = []
    for index, row in enumerate(rows):
        audio_name = _column(row, AUDIO_COLUMNS)
        if audio_name is None:
            raise ValueError(f"The dataset has no audio column (columns: {', '.join(row)}).")
        id_name = _column(row, ID_COLUMNS)
        item_id = str(row[id_name]) if id_name is not None else str(index)
        references = references_of(row)
        if items and items[-1].id == item_id:
            items[-1].references.extend(r for r in references if r not in items[-1].references)
            continue
        if limit is not None and len(items) == limit:
            break
        choices = row.get("choices") or []
        items.append(
            Item(
                id=item_id,
                audio=decode_audio(row[audio_name]),
                question=str(row.get("question", "")),
                choices=[str(c) for c in choices],
                references=references,
                answer=str(row.get("answer", "")),
            )
        )
    return items


def load_hub(dataset: str, config: str | None, split: str, limit: int | None = None) -> list[Item]:
    """Stream `split` of a hub dataset (or a local dataset folder) and map its rows to items."""
    try:
        import datasets
    except ImportError:
        raise ValueError(
            "Loading a task from the Hugging Face hub needs the `datasets` library: pip install 'segprune[eval]', "
            "or evaluate offline with --manifest FILE.jsonl."
        ) from None
    try:
        ds = datasets.load_dataset(dataset, config, split=split, streaming=True)
        audio_name = _column(ds.features or {}, AUDIO_COLUMNS)
        if audio_name is not None:  # read the bytes; decode them here, without torchcodec
            ds = ds.cast_column(audio_name, datasets.Audio(decode=False))
    except (OSError, ValueError, ConnectionError) as err:
        text = str(err).strip().splitlines()
        raise ValueError(
            f"Could not load {dataset} ({config or 'default'}, split {split}) from the hub: "
            f"{text[0][:200] if text else type(err).__name__}. Offline, use --manifest FILE.jsonl."
        ) from None
    return items_from_rows(iter(ds), limit)


__all__ = ["Item", "decode_audio", "items_from_rows", "load_hub", "read_manifest", "references_of"]
