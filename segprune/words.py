"""The words that describe a result, shared by the command line and the app, so that both say
the same thing: speedups with their verdicts, durations, notices, the CLI report, the app's
readouts and its banner.

Numbers here come from a `Comparison`; nothing is rounded up or left without its spread.
"""

from __future__ import annotations

import math
import shutil
import textwrap

from . import silence
from .methods import get_method
from .models import RANDOM_WEIGHTS_NOTE
from .timing import Speedup


def seconds(value: float) -> str:
    """A duration for people: '40 ms' below a second, '3.4 s', '12 min 5 s' past ten minutes."""
    if value < 1.0:
        return f"{value * 1000:.0f} ms"
    if value < 600:
        return f"{value:.1f} s"
    minutes, rest = divmod(round(value), 60)
    return f"{minutes} min {rest} s" if rest else f"{minutes} min"


def ratio(value: float) -> str:
    return "∞" if math.isinf(value) else f"{value:.2f}"


def speedup(s: Speedup) -> str:
    """The verdict first, then the number: 'no pruning', 'within noise (×1.08; ×0.71 to ×1.62)',
    '3.06× faster (×2.90 to ×3.20)', '1.25× slower (...)', with ' · suspect: ...' when the ratio is
    above the square of the token-count bound."""
    if s.verdict == "no pruning":
        text = "no pruning (same prompt length)"
    elif s.verdict == "within noise" and math.isinf(s.high):
        text = f"within noise (×{ratio(s.ratio)}; {s.runs} timed run{'s' * (s.runs != 1)} each: too few to tell)"
    elif s.verdict == "within noise":
        text = f"within noise (×{ratio(s.ratio)}; the timings allow ×{ratio(s.low)} to ×{ratio(s.high)})"
    elif s.verdict == "faster":
        text = f"{s.ratio:.2f}× faster (×{ratio(s.low)} to ×{ratio(s.high)})"
    else:
        text = f"{1 / s.ratio:.2f}× slower (×{ratio(s.low)} to ×{ratio(s.high)})"
    if s.suspect and s.verdict != "no pruning":
        text += f" · suspect: above the square of the token-count bound ×{s.bound:.2f}, so timing noise"
    return text


def truncation_notice(c, lm, max_seconds: float | None = None) -> str:
    """What was cut off a clip longer than the model takes (the CLI and the app say the same).
    max_seconds: a limit below the model's own (the app's) when that is what cut the clip."""
    who, limit = (f"{lm.key} takes", lm.max_seconds)
    if max_seconds is not None and max_seconds < lm.max_seconds:
        who, limit = ("this demo reads", max_seconds)
    return (
        f"the clip was {seconds(c.audio_seconds + c.truncated_seconds)} but {who} at most "
        f"{limit:g} s: the last {seconds(c.truncated_seconds)} were dropped."
    )


def missing_notice(c) -> str:
    """A file whose header promised more audio than it holds."""
    return f"the file's header promised {seconds(c.missing_seconds)} more audio than it holds; what is there was used."


def notices(c, lm, max_seconds: float | None = None) -> list[str]:
    """Warnings a person must see: random weights, truncated or short-read audio."""
    out = []
    if c.random_weights:
        out.append(f"{c.model} has {RANDOM_WEIGHTS_NOTE}.")
    if c.truncated_seconds > 0:
        out.append(truncation_notice(c, lm, max_seconds))
    if c.missing_seconds > 0:
        out.append(missing_notice(c))
    return out


def decode_rate(full, pruned) -> str:
    """Decoding time per token of the full and the pruned run ("12.3 / 11.0 ms per token"); "n/a"
    for a run that generated a single token (it comes from the prefill: no decoding step to time)."""

    def ms(run) -> str:
        return f"{run.decode_ms_per_token:.1f}" if math.isfinite(run.decode_ms_per_token) else "n/a"

    return f"{ms(full)} / {ms(pruned)} ms per token"


def method_label(p) -> str:
    """'Segmentwise Top-K (S = 10)', with the options that differ from the defaults and the
    silence option."""
    label = get_method(p.setting.method).label
    extras = []
    if p.selection.segments is not None:
        asked = dict(p.setting.options).get("segments", p.setting.selector.options().get("segments"))
        used = p.selection.segments
        extras.append(f"S = {used}" if asked == used else f"S = {used}, capped from {asked} by K")
    extras += [
        f"{k} = {v:g}" if isinstance(v, float) else f"{k} = {v}"
        for k, v in p.setting.selector.changed_options().items()
        if k != "segments"
    ]
    if p.setting.drop_silent:
        extras.append(silence.LABEL.lower())
    return label + (f" ({', '.join(extras)})" if extras else "")


def report(c, lm) -> str:
    """The CLI's human report: both answers side by side, token counts, timings and verdicts."""
    p = c.pruned[0]
    s = c.speedup(p)
    width = max(60, min(shutil.get_terminal_size((100, 20)).columns, 140))
    col = (width - 3) // 2
    lines = [f"segprune · {c.model} · {c.engine}"]
    if c.random_weights:
        lines.append(f"!! TINY MODEL, {RANDOM_WEIGHTS_NOTE} !!")
    for notice in notices(c, lm)[1 if c.random_weights else 0 :]:
        lines.append(f"!! {notice} !!")
    windows = len(c.tokens.window_starts)
    lines += [
        f"audio   {seconds(c.audio_seconds)} -> N = {c.tokens.n} audio tokens ({windows} window{'s' * (windows > 1)})",
        f"method  {method_label(p)}, keep {p.setting.keep_ratio:g} -> K = {p.selection.k} of {c.tokens.n}"
        f" ({100 * p.selection.k / c.tokens.n:.1f} %)",
        f"prompt  {c.prompt}" + ("" if lm.uses_prompt else "   (not used: this model transcribes)"),
        "",
    ]
    left = [f"FULL MODEL ({c.full.prompt_tokens} prompt tokens)"] + _wrap(c.full.text, col)
    right = [f"PRUNED MODEL ({p.run.prompt_tokens} prompt tokens)"] + _wrap(p.run.text, col)
    left.append(f"prefill {c.full.prefill_ms:.1f} ms ({_spread(c.full)})")
    right.append(f"prefill {p.run.prefill_ms:.1f} ms ({_spread(p.run)})")
    for i in range(max(len(left), len(right))):
        a = left[i] if i < len(left) else ""
        b = right[i] if i < len(right) else ""
        lines.append(f"{a:<{col}} | {b}")
    lines += [
        "",
        f"prefill: {speedup(s)}; the token counts bound it at ×{s.bound:.2f}",
        f"to the first token: {c.full_end_to_end_ms():.1f} ms full, {c.end_to_end_ms(p):.1f} ms pruned "
        f"(encoder {c.tokens.encoder_ms:.1f} ms · scoring hook {c.tokens.scoring_ms:.1f} ms · selection "
        f"{p.select_ms:.3f} ms · prefill)",
        f"decode {decode_rate(c.full, p.run)} · {c.full.prefill_repeats} interleaved prefill runs each",
    ]
    return "\n".join(lines)


def _spread(run) -> str:
    q1, q3 = run.prefill_ms_spread
    return f"middle half {q1:.1f} to {q3:.1f} ms"


def _wrap(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width) or ["(empty answer)"]


# --------------------------------------------------------------------------- the app's words


def banner(lm, fallback_reason: str | None, fallback_details: str | None = None) -> tuple[str, list[str]]:
    """The app banner's Markdown and CSS classes: a warning for random weights, else the model line."""
    where = f"{lm.device.type}, {str(lm.dtype).removeprefix('torch.')}"
    if not lm.random_weights:
        return f"**Model:** {lm.name} ({where})", ["info"]
    why = fallback_reason or f"it was chosen explicitly (`--model {lm.name}`)."
    text = (
        f"### ⚠️ Offline demo model with random weights: {lm.name}\n"
        f"**Its answers are meaningless text.** Which audio tokens are kept, the token counts and the timings "
        f"are real.\n\n"
        f"Why this model: {why} Run `python app.py --model qwen2-audio` on a GPU machine with Hub access for "
        f"real answers."
    )
    if fallback_details:
        text += f"\n\n<details><summary>Details</summary>\n\n`{fallback_details}`\n\n</details>"
    return text, ["warn"]


def readouts(c, lm, audio=None, max_seconds: float | None = None) -> dict:
    """The app's plain-text readouts of a Comparison for pruned variant 0 (the chosen method).
    audio: the loaded clip, to say what it was converted from; max_seconds: the demo's limit."""
    p = c.pruned[0]
    s = c.speedup(p)
    n, k = c.tokens.n, p.selection.k
    summary = (
        f"## Pruned prefill: {speedup(s)} ({c.full.prefill_ms:.1f} ms → {p.run.prefill_ms:.1f} ms)\n"
        f"Kept **K = {k}** of **N = {n}** audio tokens (**{100 * k / n:.1f} %**) with {method_label(p)}. "
        f"Prompt {c.full.prompt_tokens} → {p.run.prompt_tokens} tokens: the token count alone bounds the "
        f"speedup at {s.bound:.2f}×."
    )
    windows = len(c.tokens.window_starts)
    facts = [
        f"{seconds(c.audio_seconds)} of audio → N = {n} tokens in {windows} encoder window{'s' * (windows > 1)}",
        f"encoder {c.tokens.encoder_ms:.1f} ms (one pass for both models)",
        f"scoring hook {c.tokens.scoring_ms:.1f} ms",
        f"selection {p.select_ms:.2f} ms",
        f"to the first token {c.full_end_to_end_ms():.1f} ms full, {c.end_to_end_ms(p):.1f} ms pruned",
        f"decoding {decode_rate(c.full, p.run)} (full / pruned)",
        f"prefill times are medians of {c.full.prefill_repeats} interleaved runs on {lm.device.type}",
    ]
    if audio is not None and (audio.source_rate != audio.sample_rate or audio.source_channels > 1):
        channels = f", {audio.source_channels} channels" if audio.source_channels > 1 else ""
        facts.insert(1, f"input {audio.source_rate / 1000:g} kHz{channels} → {audio.sample_rate / 1000:g} kHz mono")
    if c.tokens.silent is not None and c.tokens.silent.any():
        quiet = int(c.tokens.silent.sum())
        kept_quiet = int(c.tokens.silent[p.selection.indices].sum())
        how = "dropped first" if p.setting.drop_silent else "treated like the others"
        facts.append(f"{quiet} silent tokens (shaded), {how}: {kept_quiet} kept")
    details = [" · ".join(facts)]
    if c.truncated_seconds > 0:
        details.append(f"⚠️ **Truncated:** {truncation_notice(c, lm, max_seconds)}")
    if c.missing_seconds > 0:
        details.append(f"⚠️ **Short file:** {missing_notice(c)}")
    return {
        "full_text": c.full.text or "(empty answer)",
        "pruned_text": p.run.text or "(empty answer)",
        "full_stats": f"**{c.full.prompt_tokens}** prompt tokens ({n} audio) · prefill **{c.full.prefill_ms:.1f} ms**",
        "pruned_stats": (
            f"**{p.run.prompt_tokens}** prompt tokens ({k} audio) · prefill **{p.run.prefill_ms:.1f} ms** · {speedup(s)}"
        ),
        "summary": summary,
        "details": "\n\n".join(details),
    }


TABLE_HEADERS = ["method", "K kept", "prompt tokens", "prefill ms", "speedup", "answer"]


def table_rows(c) -> list[list]:
    """One row for the full model, then one per pruned variant, in the order they ran (TABLE_HEADERS)."""
    rows = [
        ["Full model (no pruning)", c.tokens.n, c.full.prompt_tokens, round(c.full.prefill_ms, 1), "—", c.full.text]
    ]
    for p in c.pruned:
        rows.append(
            [
                method_label(p),
                p.selection.k,
                p.run.prompt_tokens,
                round(p.run.prefill_ms, 1),
                speedup(c.speedup(p)),
                p.run.text,
            ]
        )
    return rows


__all__ = [
    "TABLE_HEADERS",
    "banner",
    "decode_rate",
    "method_label",
    "missing_notice",
    "notices",
    "ratio",
    "readouts",
    "report",
    "seconds",
    "speedup",
    "table_rows",
    "truncation_notice",
]
