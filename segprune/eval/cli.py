"""`segprune eval`: one command per paper table (registered in `segprune.cli.COMMANDS`).

    segprune eval --model KEY --task {clotho,audiocaps,clothoaqa,mmau} [--manifest FILE.jsonl]
                  [--methods NAME ...] [--keep R ...] [--limit N] [--out DIR]

Writes into --out: config.json (what the run is), generations.jsonl (one line per item and
setting, appended as produced; a rerun resumes), results.json and table.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..args import (
    add_engine_arguments,
    add_method_options,
    add_model_arguments,
    add_score_layers_argument,
    keep_ratio,
    load_from_args,
    make_engine,
    option_flags,
    positive_int,
    repeat_count,
)
from ..methods import METHODS
from . import TASKS

PAPER_KEEP = [0.5, 0.25, 0.1]


def register_eval(subparsers) -> None:
    p = subparsers.add_parser("eval", help="reproduce the paper's tables: every method x keep ratio on a benchmark")
    add_model_arguments(p)
    p.add_argument("--task", required=True, choices=list(TASKS), help="benchmark: sets the prompt and the metric")
    p.add_argument("--manifest", default=None, help="local JSONL of items (offline); default: the task's hub dataset")
    p.add_argument("--dataset", default=None, help="hub id or local dataset folder replacing the task's default")
    p.add_argument("--config", default=None, help="dataset config name (default: the task's)")
    p.add_argument("--split", default=None, help="dataset split (default: the split of the paper's numbers)")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS), help="default: all")
    p.add_argument("--keep", nargs="+", type=keep_ratio, default=PAPER_KEEP, help="keep ratios (fractions KEPT)")
    add_method_options(p)
    p.add_argument("--limit", type=positive_int, default=None, help="evaluate only the first N items")
    p.add_argument("--out", default=None, help="output folder (default: runs/eval/TASK-MODEL)")
    p.add_argument("--max-new-tokens", type=positive_int, default=None, help="default: the task's")
    p.add_argument("--repeats", type=repeat_count, default=3, help="prefill timing repeats per clip (median)")
    p.add_argument("--sbert-model", default=None, help="Sentence-BERT model for MMAU option matching (name or folder)")
    p.add_argument("--drop-silent", action="store_true", help="also run every setting with silent tokens dropped first")
    add_score_layers_argument(p)
    add_engine_arguments(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=eval_command)


def eval_command(args) -> int:
    from .suite import load_items, run_evaluation, settings_grid

    task = TASKS[args.task]
    items, source = load_items(task, args.manifest, args.dataset, args.config, args.split, args.limit)
    options = {o: getattr(args, o) for o in option_flags() if getattr(args, o, None) is not None}
    settings = settings_grid(args.methods, args.keep, options, args.drop_silent)
    lm = load_from_args(args)
    engine = make_engine(args, lm)
    out = Path(args.out or f"runs/eval/{task.name}-{lm.name.replace('/', '_')}")
    if lm.random_weights:
        print(f"segprune: warning: {lm.name} has random weights: its scores are meaningless.", file=sys.stderr)
    results, text = run_evaluation(
        lm,
        task,
        items,
        settings,
        out,
        source,
        args.max_new_tokens,
        args.repeats,
        not args.no_progress,
        args.score_layers,
        args.sbert_model,
        engine,
    )
    for name, reason in results["skipped_metrics"].items():
        print(f"segprune: {name} skipped: {reason}", file=sys.stderr)
    print(text)
    print(f"results: {out / 'results.json'} · table: {out / 'table.md'} · generations: {out / 'generations.jsonl'}")
    return 0


__all__ = ["register_eval"]
