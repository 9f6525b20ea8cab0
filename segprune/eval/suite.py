"""One evaluation run as a function: items in, generations, results.json and table.md out.

    items, source = load_items(TASKS["clotho"], manifest="items.jsonl")
    settings = settings_grid(["segmentwise", "topk"], [0.5, 0.25], {"segments": 10})
    results, table = run_evaluation(lm, TASKS["clotho"], items, settings, Path("runs/x"), source)

`segprune eval` and the study (`python -m segprune.eval.study`) both call it.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..comparison import Setting
from .data import Item, load_hub, read_manifest
from .report import summarise, table
from .runner import FULL, evaluate
from .task import Task


def load_items(
    task: Task,
    manifest: str | None = None,
    dataset: str | None = None,
    config: str | None = None,
    split: str | None = None,
    limit: int | None = None,
) -> tuple[list[Item], str]:
    """The items of a local manifest, or of the task's hub dataset (or `dataset`), and a line that
    says where they came from. Checked against the task before any model loads."""
    if manifest:
        items = read_manifest(manifest)[:limit]
        source = f"manifest {Path(manifest).resolve()}"
    else:
        dataset_id, split = dataset or task.hub_id, split or task.hub_split
        config = config or (task.hub_config if not dataset else None)
        items = load_hub(dataset_id, config, split, limit)
        source = f"hub {dataset_id} ({config or 'default'}) split {split}"
    task.check(items)
    return items, source


def settings_grid(methods: list[str], keep: list[float], options: dict, drop_silent: bool = False) -> list[Setting]:
    """Every method at every keep ratio (ratio-major, as the paper's tables), each method given
    only the `options` it has; with `drop_silent`, every setting once more with silent tokens
    dropped first."""
    from ..methods import get_method

    quiet = [False, True] if drop_silent else [False]
    return [
        Setting(m, r, drop_silent=q, **{k: v for k, v in options.items() if get_method(m).takes(k)})
        for r in keep
        for m in methods
        for q in quiet
    ]


def run_evaluation(
    lm,
    task: Task,
    items: list[Item],
    settings: list[Setting],
    out: Path,
    source: str,
    max_new_tokens: int | None = None,
    repeats: int = 3,
    progress: bool = True,
    score_layers: int = 1,
    sbert_model: str | None = None,
    engine=None,
) -> tuple[dict, str]:
    """Generate (resumably, see `runner.evaluate`), score and write results.json and table.md
    into `out`. Returns (results, the markdown table)."""
    store = evaluate(lm, task, items, settings, out, source, max_new_tokens, repeats, progress, score_layers, engine)
    keys = [FULL, *dict.fromkeys(s.key for s in settings)]
    results = summarise(task, items, store.records, keys, {"sbert_model": sbert_model})
    results.update(
        model=lm.name,
        random_weights=lm.random_weights,
        source=source,
        split_note=task.split_note,
        prompt=task.prompts.get(lm.key, task.prompts["default"]),
        prompt_source=task.prompt_source,
        decoding={"greedy": True, "max_new_tokens": max_new_tokens or task.max_new_tokens},
        settings=[s.to_dict() for s in settings],
        score_layers=score_layers,
        engine=getattr(engine, "name", "transformers"),
        device=str(lm.device),
        dtype=str(lm.dtype).replace("torch.", ""),
        versions=_versions(),
    )
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    text = table(results, lm.name, lm.random_weights)
    (out / "table.md").write_text(text)
    return results, text


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("segprune", "torch", "transformers", "aac-metrics", "datasets", "sentence-transformers"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found


__all__ = ["load_items", "run_evaluation", "settings_grid"]
