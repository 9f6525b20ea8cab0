"""Which method wins where: `segprune eval` over models x tasks x score sources, then one table.

    python -m segprune.eval.study --models audio-flamingo-3 qwen2-audio \
        --tasks clotho audiocaps clothoaqa mmau --keep 0.5 0.25 0.1 --score-layers 1 4 --drop-silent \
        --out runs/study

Every (model, task, score source) is one resumable `segprune eval` run in its own folder under
--out (interrupt and rerun the same command: finished items are not recomputed). Every method of
the registry runs by default, so methods added later join the study with no change here. The
study then writes `study.md` and `study.json`: for each model, task and keep ratio, the methods
ranked by the task's metric, the winner, its margin over the runner-up and over the paper's
Segmentwise Top-K, and the prefill speedup. Offline, pass `--manifest TASK=FILE.jsonl` per task.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..args import DTYPES, keep_ratio, positive_int, repeat_count
from ..methods import METHODS
from .runner import FULL

PAPER_METHOD = "segmentwise"


def run_evals(args) -> list[Path]:
    """One evaluation per (model, task, score source), each model loaded once; returns their folders."""
    from ..args import torch_dtype
    from ..models import load_model
    from . import TASKS
    from .suite import load_items, run_evaluation, settings_grid

    manifests = dict(m.split("=", 1) for m in args.manifest)
    options = {"segments": args.segments} if args.segments else {}
    settings = settings_grid(args.methods, args.keep, options, args.drop_silent)
    data = {task: load_items(TASKS[task], manifests.get(task), limit=args.limit) for task in args.tasks}
    folders = []
    for model in args.models:
        lm = load_model(model, device=args.device, dtype=torch_dtype(args.dtype))
        for task in args.tasks:
            items, source = data[task]
            for layers in args.score_layers:
                out = Path(args.out) / f"{model.replace('/', '_')}-{task}-L{layers}"
                print(f"study: {model} / {task} / L={layers} -> {out}", file=sys.stderr)
                run_evaluation(
                    lm,
                    TASKS[task],
                    items,
                    settings,
                    out,
                    source,
                    args.max_new_tokens,
                    args.repeats,
                    not args.no_progress,
                    layers,
                )
                folders.append(out)
        del lm
    return folders


def winners(results: dict, score_layers: int) -> list[dict]:
    """Rank the settings of one eval run per keep ratio by the task's metric (higher is better)."""
    metric = results["metric"]
    rows = [r for r in results["rows"] if "metrics" in r and r["setting"] != FULL]
    full = next(r for r in results["rows"] if r["setting"] == FULL)
    out = []
    for keep in sorted({r["keep_ratio"] for r in rows}, reverse=True):
        ranked = sorted(
            (r for r in rows if r["keep_ratio"] == keep),
            key=lambda r: (-(r["metrics"].get(metric) or float("-inf")), list(METHODS).index(r["method"])),
        )
        best = ranked[0]
        paper = next((r for r in ranked if r["method"] == PAPER_METHOD and not r.get("drop_silent")), None)
        out.append(
            {
                "keep_ratio": keep,
                "score_layers": score_layers,
                "metric": metric,
                "full": full["metrics"].get(metric),
                "winner": _name(best),
                "winner_value": best["metrics"].get(metric),
                "margin_over_runner_up": _diff(best, ranked[1], metric) if len(ranked) > 1 else None,
                "margin_over_segmentwise": _diff(best, paper, metric) if paper else None,
                "winner_speedup": best.get("prefill_speedup"),
                "ranking": [[_name(r), r["metrics"].get(metric)] for r in ranked],
            }
        )
    return out


def _name(row: dict) -> str:
    """The method with the options that differ from the defaults and the silence option: the
    setting's key without its keep ratio ('segmentwise', 'topk+drop_silent')."""
    return row["setting"].rsplit("@", 1)[0]


def _diff(a: dict, b: dict, metric: str) -> float | None:
    x, y = a["metrics"].get(metric), b["metrics"].get(metric)
    return None if x is None or y is None else x - y


def summarise(folders: list[Path]) -> dict:
    """Collect every run's results.json into the study's records."""
    study = {"runs": []}
    for folder in folders:
        results = json.loads((folder / "results.json").read_text())
        layers = results.get("score_layers", 1)
        study["runs"].append(
            {
                "model": results["model"],
                "random_weights": results["random_weights"],
                "task": results["task"],
                "n_items": results["n_items"],
                "folder": str(folder),
                "winners": winners(results, layers),
            }
        )
    return study


def markdown(study: dict) -> str:
    """The study table: one row per (model, task, score source, keep ratio)."""
    lines = ["# Which method wins where", ""]
    if any(r["random_weights"] for r in study["runs"]):
        lines += ["**Random-weight models: these rankings show the mechanics only, nothing about quality.**", ""]
    lines += [
        "| model | task | items | score layers | keep | metric | full | winner | value | "
        "vs runner-up | vs segmentwise | speedup |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in study["runs"]:
        for w in run["winners"]:
            cells = [
                run["model"],
                run["task"],
                str(run["n_items"]),
                str(w["score_layers"]),
                f"{100 * w['keep_ratio']:g} %",
                w["metric"],
                _num(w["full"]),
                w["winner"],
                _num(w["winner_value"]),
                _num(w["margin_over_runner_up"], sign=True),
                _num(w["margin_over_segmentwise"], sign=True),
                f"x{w['winner_speedup']:.2f}" if w["winner_speedup"] else "n/a",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _num(value, sign: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.3f}" if sign else f"{value:.3f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m segprune.eval.study", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["audio-flamingo-3", "qwen2-audio"])
    p.add_argument("--tasks", nargs="+", default=["clotho", "audiocaps", "clothoaqa", "mmau"])
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--keep", nargs="+", type=keep_ratio, default=[0.5, 0.25, 0.1])
    p.add_argument("--segments", type=positive_int, default=None, help="S of the segmentwise methods (default 10)")
    p.add_argument("--score-layers", nargs="+", type=positive_int, default=[1, 4], help="score sources to compare")
    p.add_argument(
        "--drop-silent",
        action="store_true",
        help="also run every setting with silent tokens dropped first (drop_silent)",
    )
    p.add_argument("--manifest", nargs="*", default=[], metavar="TASK=FILE", help="local manifests (offline)")
    p.add_argument("--limit", type=positive_int, default=None)
    p.add_argument("--repeats", type=repeat_count, default=1, help="prefill timing repeats per clip")
    p.add_argument("--max-new-tokens", type=positive_int, default=None)
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", default=None, choices=DTYPES)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--out", default="runs/study")
    args = p.parse_args(argv)
    study = summarise(run_evals(args))
    out = Path(args.out)
    (out / "study.json").write_text(json.dumps(study, indent=2) + "\n")
    text = markdown(study)
    (out / "study.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
