"""The evaluation loop: each clip encoded once, the full model and every (method, ratio) on it.

Generations are appended to `generations.jsonl` one (item, setting) at a time and flushed, so an
interrupted run resumes where it stopped: finished pairs are read back and never recomputed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..comparison import InProcess, Setting, encode_clip, prepare, run_variants
from ..models.base import AudioLM
from .data import Item
from .task import Task

FULL = "full"


def setting_key(setting: Setting) -> str:
    """The row name in the JSONL, the results and the table: `Setting.key`, e.g.
    'segmentwise@0.25', 'segmentwise[segments=5]+drop_silent@0.25'."""
    return setting.key


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
        "settings": [s.to_dict() for s in settings],
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
    engine=None,
) -> Generations:
    """Run every pending (item, setting) and return all generations of this folder.

    Prefill times are medians of `repeats` measurements interleaved across the settings of one
    clip, after one warm-up round (`segprune.comparison.run_variants`). engine: where the language
    model runs (default: in process; a vLLM engine sends each clip's generations concurrently).
    """
    from tqdm.auto import tqdm

    task.check(items)
    engine = engine or InProcess(lm)
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
            todo_settings = [by_key[k] for k in todo if k != FULL]
            variants = prepare(lm, clip, todo_settings, full=FULL in todo)

            def save(i: int, run, variants=variants, clip=clip, item=item) -> None:
                variant, setting = variants[i], variants[i].setting
                store.append(
                    {
                        "item": item.id,
                        "setting": FULL if setting is None else setting_key(setting),
                        "method": setting.method if setting else None,
                        "keep_ratio": setting.keep_ratio if setting else 1.0,
                        "options": setting.selector.changed_options() if setting else {},
                        "drop_silent": setting.drop_silent if setting else False,
                        "text": run.text,
                        "n_audio_tokens": clip.tokens.n,
                        "n_kept": variant.selection.k if variant.selection is not None else clip.tokens.n,
                        "prompt_tokens": run.prompt_tokens,
                        "prefill_ms": round(run.prefill_ms, 3),
                        "generate_ms": round(run.generate_ms, 3),
                        "new_tokens": len(run.token_ids),
                        "encoder_ms": round(clip.tokens.encoder_ms, 3),
                        "select_ms": round(variant.select_ms, 4),
                        "truncated_seconds": round(clip.audio.truncated_seconds, 3),
                    }
                )
                bar.update()

            run_variants(variants, engine, max_new_tokens, repeats, lm.device, on_run=save)  # saved as each finishes
    return store


__all__ = ["FULL", "Generations", "check_config", "evaluate", "setting_key"]
