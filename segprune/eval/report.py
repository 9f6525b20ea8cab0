"""Scores per setting from the generations, the results JSON and the markdown table.

Every setting is scored on the same items: those finished for the full model and for every
setting of the run. The table follows the paper's layout: the full model, then for each keep
ratio every method, with the metric, its relative change against the full model and the mean
prefill time.
"""

from __future__ import annotations

import statistics

from .. import silence
from ..methods import METHODS
from ..models import RANDOM_WEIGHTS_NOTE
from .data import Item
from .runner import FULL
from .task import Task

LABELS = {
    "cider_d": "CIDEr-D",
    "spider": "SPIDEr",
    "meteor": "METEOR",
    "spice": "SPICE",
    "fense": "FENSE",
    "accuracy": "Accuracy (%)",
    "accuracy_sbert": "Accuracy, SBERT (%)",
}


def summarise(task: Task, items: list[Item], records: list[dict], keys: list[str], options: dict | None = None) -> dict:
    """Score each setting in `keys` (FULL first) over the items finished for all of them."""
    latest = {(r["item"], r["setting"]): r for r in records}
    complete = [item for item in items if all((item.id, k) in latest for k in keys)]
    rows, skipped, notes = [], {}, []
    for key in keys:
        recs = [latest[(item.id, key)] for item in complete]
        row = {
            "setting": key,
            "method": recs[0]["method"] if recs else None,
            "keep_ratio": recs[0]["keep_ratio"] if recs else None,
            "options": recs[0].get("options", {}) if recs else {},
            "drop_silent": recs[0].get("drop_silent", False) if recs else False,
        }
        if complete:
            scores = task.score(complete, [r["text"] for r in recs], options)
            skipped.update(scores.skipped)
            notes = scores.notes
            row.update(
                metrics=scores.values,
                prefill_ms=statistics.fmean(r["prefill_ms"] for r in recs),
                n_kept=statistics.fmean(r["n_kept"] for r in recs),
                n_audio_tokens=statistics.fmean(r["n_audio_tokens"] for r in recs),
                new_tokens=statistics.fmean(r["new_tokens"] for r in recs),
            )
        rows.append(row)
    full = rows[0]
    for row in rows:
        if "metrics" in row:
            row["relative_change_pct"] = {m: _relative(v, full["metrics"].get(m)) for m, v in row["metrics"].items()}
            row["prefill_speedup"] = full["prefill_ms"] / row["prefill_ms"] if row["prefill_ms"] else None
    return {
        "task": task.name,
        "title": task.title,
        "metric": task.metric,
        "lower_is_better": task.lower_is_better,
        "n_items": len(complete),
        "n_items_requested": len(items),
        "incomplete_items": [item.id for item in items if item.id not in {c.id for c in complete}],
        "skipped_metrics": skipped,
        "notes": notes,
        "rows": rows,
    }


def _relative(value: float, reference: float | None) -> float | None:
    if reference is None or reference == 0:
        return None
    return 100.0 * (value - reference) / reference


def _fmt(value, metric: str) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1f}" if metric.startswith(("accuracy", "wer", "cer")) else f"{value:.3f}"


def table(results: dict, model: str, random_weights: bool) -> str:
    """The markdown table in the paper's layout."""
    rows = [r for r in results["rows"] if "metrics" in r]
    metrics = list(rows[0]["metrics"]) if rows else [results["metric"]]
    primary = results["metric"]
    head = [f"**{results['title']}** · {model} · {results['n_items']} items"]
    if random_weights:
        head.append(f"**TINY MODEL, {RANDOM_WEIGHTS_NOTE}: these scores say nothing about the method's quality.**")
    for name, reason in results["skipped_metrics"].items():
        head.append(f"{LABELS.get(name, name)} skipped: {reason}.")
    columns = ["Tokens kept", "Method", LABELS.get(primary, primary), "Δ vs full"]
    columns += [LABELS.get(m, m) for m in metrics if m != primary] + ["Prefill (ms)", "Prefill speedup"]
    lines = ["\n\n".join(head), "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    order = sorted(rows[1:], key=lambda r: (-r["keep_ratio"], _method_rank(r["method"]), r["drop_silent"]))
    for row in rows[:1] + order:
        full = row["setting"] == FULL
        delta = row["relative_change_pct"].get(primary)
        cells = [
            "100 %" if full else f"{100 * row['keep_ratio']:g} %",
            "Full model" if full else _label(row),
            _fmt(row["metrics"].get(primary), primary),
            "—" if full else ("n/a" if delta is None else f"{delta:+.1f} %"),
        ]
        cells += [_fmt(row["metrics"].get(m), m) for m in metrics if m != primary]
        cells += [f"{row['prefill_ms']:.1f}", f"x{row['prefill_speedup']:.2f}" if row["prefill_speedup"] else "n/a"]
        lines.append("| " + " | ".join(cells) + " |")
    if results["incomplete_items"]:
        lines += ["", f"{len(results['incomplete_items'])} items are not finished for every setting and are left out."]
    return "\n".join(lines) + "\n"


def _label(row: dict) -> str:
    """The method's label, its options that differ from the defaults, and the silence option."""
    name = row["method"]
    label = METHODS[name].label if name in METHODS else name
    options = row.get("options") or {}
    if options:
        label += " (" + ", ".join(f"{k} = {v}" for k, v in options.items()) + ")"
    return label + (f", {silence.LABEL.lower()}" if row["drop_silent"] else "")


def _method_rank(name: str) -> int:
    return list(METHODS).index(name) if name in METHODS else len(METHODS)


__all__ = ["LABELS", "summarise", "table"]
