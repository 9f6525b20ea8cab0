"""`segprune eval`: one command per paper table.

    segprune eval --model KEY --task {clotho,audiocaps,clothoaqa,mmau} [--manifest FILE.jsonl]
                  [--methods NAME ...] [--keep R ...] [--limit N] [--out DIR]

Writes into --out: config.json (what the run is), generations.jsonl (one line per item and
setting, appended as produced; a rerun resumes), results.json and table.md.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..methods import DEFAULT_SEGMENTS, METHODS

PAPER_KEEP = [0.5, 0.25, 0.1]


def register_eval(subparsers) -> None:
    from ..cli import (
        add_model_arguments,
        add_score_layers_argument,
        keep_ratio,
        positive_int,
    )  # here: segprune.cli imports this module
    from . import TASKS

    p = subparsers.add_parser("eval", help="reproduce the paper's tables: every method x keep ratio on a benchmark")
    add_model_arguments(p)
    p.add_argument("--task", required=True, choices=list(TASKS), help="benchmark: sets the prompt and the metric")
    p.add_argument("--manifest", default=None, help="local JSONL of items (offline); default: the task's hub dataset")
    p.add_argument("--dataset", default=None, help="hub id or local dataset folder replacing the task's default")
    p.add_argument("--config", default=None, help="dataset config name (default: the task's)")
    p.add_argument("--split", default=None, help="dataset split (default: the split of the paper's numbers)")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS), help="default: all")
    p.add_argument("--keep", nargs="+", type=keep_ratio, default=PAPER_KEEP, help="keep ratios (fractions KEPT)")
    p.add_argument("--segments", type=positive_int, default=DEFAULT_SEGMENTS, help="S for segmentwise")
    p.add_argument("--seed", type=int, default=0, help="seed of the random method")
    p.add_argument("--limit", type=positive_int, default=None, help="evaluate only the first N items")
    p.add_argument("--out", default=None, help="output folder (default: runs/eval/TASK-MODEL)")
    p.add_argument("--max-new-tokens", type=positive_int, default=None, help="default: the task's")
    p.add_argument("--repeats", type=positive_int, default=3, help="prefill timing repeats per clip (median)")
    p.add_argument("--sbert-model", default=None, help="Sentence-BERT model for MMAU option matching (name or folder)")
    p.add_argument("--drop-silent", action="store_true", help="also run every setting with silent tokens dropped first")
    add_score_layers_argument(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=eval_command)


def eval_command(args) -> int:
    from ..cli import load_from_args
    from ..compare import Setting
    from . import TASKS
    from .data import load_hub, read_manifest
    from .report import summarise, table
    from .runner import FULL, evaluate, setting_key

    task = TASKS[args.task]
    if args.manifest:
        items = read_manifest(args.manifest)[: args.limit]
        source = f"manifest {Path(args.manifest).resolve()}"
    else:
        dataset, split = args.dataset or task.hub_id, args.split or task.hub_split
        config = args.config or (task.hub_config if not args.dataset else None)
        items = load_hub(dataset, config, split, args.limit)
        source = f"hub {dataset} ({config or 'default'}) split {split}"
    task.check(items)  # before loading a model
    lm = load_from_args(args)
    quiet = [False, True] if args.drop_silent else [False]
    settings = [Setting(m, r, args.segments, args.seed, q) for r in args.keep for m in args.methods for q in quiet]
    out = Path(args.out or f"runs/eval/{task.name}-{lm.name.replace('/', '_')}")
    if lm.random_weights:
        print(f"segprune: warning: {lm.name} has random weights: its scores are meaningless.", file=sys.stderr)
    store = evaluate(
        lm,
        task,
        items,
        settings,
        out,
        source,
        args.max_new_tokens,
        args.repeats,
        not args.no_progress,
        score_layers=args.score_layers,
    )
    keys = [FULL, *dict.fromkeys(setting_key(s) for s in settings)]
    results = summarise(task, items, store.records, keys, {"sbert_model": args.sbert_model})
    results.update(
        model=lm.name,
        random_weights=lm.random_weights,
        source=source,
        split_note=task.split_note,
        prompt=task.prompts.get(lm.key, task.prompts["default"]),
        prompt_source=task.prompt_source,
        decoding={"greedy": True, "max_new_tokens": args.max_new_tokens or task.max_new_tokens},
        segments=args.segments,
        seed=args.seed,
        score_layers=args.score_layers,
        device=str(lm.device),
        dtype=str(lm.dtype).replace("torch.", ""),
        versions=_versions(),
    )
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    text = table(results, lm.name, lm.random_weights)
    (out / "table.md").write_text(text)
    for name, reason in results["skipped_metrics"].items():
        print(f"segprune: {name} skipped: {reason}", file=sys.stderr)
    print(text)
    print(f"results: {out / 'results.json'} · table: {out / 'table.md'} · generations: {out / 'generations.jsonl'}")
    return 0


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("segprune", "torch", "transformers", "aac-metrics", "datasets", "sentence-transformers"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


__all__ = ["register_eval"]
