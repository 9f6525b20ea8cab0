"""The evaluation loop: each clip encoded once, the full model and every (method, ratio) on it.

Generations are appended to `generations.jsonl` one (item, setting) at a time and flushed, so an
interrupted run resumes where it stopped: finished pairs are read back and never recomputed.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

from ..compare import Setting, encode_clip, prune_tokens
from ..models.base import AudioLM
from ..timing import interleaved
from .data import Item
from .task import Task

FULL = "full"


def setting_key(setting: Setting) -> str:
    """'segmentwise@0.25' ('segmentwise+quiet@0.25' when silent tokens go first); the row name in
    the JSONL, the results and the table."""
    quiet = "+quiet" if setting.drop_silent else ""
    return f"{setting.method}{quiet}@{setting.keep_ratio:g}"


class Generations:
    """The append-only JSONL of finished (item, setting) runs."""

    def __init__(self, path: Path):
        self.path = path
        self.records: list[dict] = []
        if path.exists():
            self._read()

    def _read(self) -> None:
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):  # a line cut off by a kill: drop it, it will be recomputed
            with open(self.path, "r+b") as f:
                f.truncate(end)
        for line in data[:end].decode("utf-8").splitlines():
            if line.strip():
                self.records.append(json.loads(line))

    @property
    def done(self) -> set[tuple[str, str]]:
        return {(r["item"], r["setting"]) for r in self.records}

    def append(self, record: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.records.append(record)


def run_config(
    lm: AudioLM, task: Task, settings: list[Setting], max_new_tokens: int, source: str, score_layers: int = 1
) -> dict:
    """What must not change between an interrupted run and its resumption."""
    return {
        "task": task.name,
        "model": lm.name,
        "family": lm.key,
        "random_weights": lm.random_weights,
        "source": source,
        "max_new_tokens": max_new_tokens,
        "score_layers": score_layers,
        "decoding": "greedy",
        "settings": [asdict(s) for s in settings],
    }


def check_config(path: Path, config: dict) -> None:
    """Write the run's config, or check that a resumed run matches it (settings may be added)."""
    if path.exists():
        old = json.loads(path.read_text())
        for key in ("task", "model", "source", "max_new_tokens", "score_layers"):
            if old.get(key, 1 if key == "score_layers" else None) != config.get(
                key, 1 if key == "score_layers" else None
            ):
                raise ValueError(
                    f"{path.parent} holds a run with {key}={old.get(key)!r}, not {config[key]!r}: "
                    "choose another --out folder or remove that one."
                )
        known = {json.dumps(s, sort_keys=True) for s in old["settings"]}
        config = {
            **config,
            "settings": old["settings"] + [s for s in config["settings"] if json.dumps(s, sort_keys=True) not in known],
        }
    path.write_text(json.dumps(config, indent=2) + "\n")


def evaluate(
    lm: AudioLM,
    task: Task,
    items: list[Item],
    settings: list[Setting],
    out: Path,
    source: str,
    max_new_tokens: int | None = None,
    repeats: int = 1,
    progress: bool = True,
    score_layers: int = 1,
) -> Generations:
    """Run every pending (item, setting) and return all generations of this folder.

    Prefill times are medians of `repeats` measurements interleaved across the settings of one
    clip, after one warm-up round (segprune.timing.interleaved).
    """
    from tqdm.auto import tqdm

    task.check(items)
    max_new_tokens = max_new_tokens or task.max_new_tokens
    out.mkdir(parents=True, exist_ok=True)
    check_config(out / "config.json", run_config(lm, task, settings, max_new_tokens, source, score_layers))
    store = Generations(out / "generations.jsonl")
    done = store.done
    by_key = {setting_key(s): s for s in settings}
    keys = [FULL, *by_key]
    total = len(items) * len(keys)
    finished = sum((item.id, k) in done for item in items for k in keys)
    with tqdm(total=total, initial=finished, disable=not progress, desc=f"{task.name} · {lm.name}", unit="run") as bar:
        for item in items:
            todo = [k for k in keys if (item.id, k) not in done]
            if not todo:
                continue
            prompt = task.prompt(item, lm.key)
            clip = encode_clip(lm, item.load(), prompt, max_new_tokens, score_layers)  # ONCE per clip
            inputs, tokens, cut = clip.inputs, clip.tokens, clip.audio.truncated_seconds
            prepared = {}
            for key in todo:
                if key == FULL:
                    prepared[key] = (None, lm.assemble(inputs, [tokens.embeddings]), 0.0)
                else:
                    selection, kept, select_ms = prune_tokens(tokens, by_key[key])
                    prepared[key] = (selection, lm.assemble(inputs, [kept]), select_ms)
            timings = interleaved(
                {k: (lambda x=x: lm.prefill(x)) for k, (_, x, _) in prepared.items()}, repeats=repeats, device=lm.device
            )
            for key, (selection, x, select_ms) in prepared.items():
                g = lm.generate(x, max_new_tokens)[0]
                setting = by_key.get(key)
                record = {
                    "item": item.id,
                    "setting": key,
                    "method": setting.method if setting else None,
                    "keep_ratio": setting.keep_ratio if setting else 1.0,
                    "drop_silent": setting.drop_silent if setting else False,
                    "text": g.text,
                    "n_audio_tokens": tokens.n,
                    "n_kept": selection.k if selection is not None else tokens.n,
                    "prompt_tokens": x.prompt_tokens,
                    "prefill_ms": round(timings[key].median, 3),
                    "generate_ms": round(g.generate_ms, 3),
                    "new_tokens": len(g.token_ids),
                    "encoder_ms": round(tokens.encoder_ms, 3),
                    "select_ms": round(select_ms, 4),
                    "truncated_seconds": round(cut, 3),
                }
                store.append(record)
                bar.update()
    return store


__all__ = ["FULL", "Generations", "check_config", "evaluate", "setting_key"]
