"""The `segprune` command.

    segprune run AUDIO --model KEY --method NAME --keep R --segments S --prompt TEXT [--json]
    segprune bench --model KEY [--preset NAME] --seconds 30 --keep 1 0.5 0.25 0.1 [--json FILE]

Each subcommand lives in its own module with a `register(subparsers)` function; errors a person
can fix (bad file, bad argument, model not loadable) end with one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import textwrap

from .audio import AudioError, load_audio
from .bench.cli import register_bench
from .eval.cli import register_eval
from .methods import DEFAULT_METHOD, DEFAULT_SEGMENTS, METHODS, get_method, keep_count
from .models import DEFAULT_MODEL, RANDOM_WEIGHTS_NOTE, ModelLoadError, load_model, registry

USER_ERRORS = (AudioError, ModelLoadError, ValueError)


def keep_ratio(text: str) -> float:
    """argparse type for --keep: a number in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--keep must be a number in (0, 1], got {text!r}") from None
    try:
        keep_count(1, value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {value}")
    return value


def add_model_arguments(parser: argparse.ArgumentParser, default: str = DEFAULT_MODEL) -> None:
    """--model, --device, --dtype: shared by every subcommand that loads a model."""
    keys = ", ".join(registry())
    parser.add_argument("--model", default=default, help=f"registry key ({keys}), hub id or local folder")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    parser.add_argument(
        "--dtype",
        default=None,
        choices=["float32", "bfloat16", "float16"],
        help="default: float32 for tiny models on CPU, else bfloat16",
    )


def add_score_layers_argument(parser: argparse.ArgumentParser) -> None:
    """--score-layers L: shared by run, bench and eval."""
    parser.add_argument(
        "--score-layers",
        type=positive_int,
        default=1,
        help="score = attention received averaged over the encoder's last L layers (paper: 1)",
    )


def load_from_args(args) -> object:
    import torch

    dtype = getattr(torch, args.dtype) if args.dtype else None
    return load_model(args.model, device=args.device, dtype=dtype)


def register_run(subparsers) -> None:
    p = subparsers.add_parser("run", help="answer one clip with the full and the pruned model, side by side")
    p.add_argument("audio", help="audio file (WAV, FLAC, OGG, MP3)")
    add_model_arguments(p)
    p.add_argument("--method", default=DEFAULT_METHOD, choices=list(METHODS), help="selection method")
    p.add_argument("--keep", type=keep_ratio, default=0.25, help="fraction of audio tokens KEPT, in (0, 1]")
    p.add_argument("--segments", type=positive_int, default=DEFAULT_SEGMENTS, help="S for segmentwise")
    p.add_argument("--prompt", default="Describe the audio in detail.", help="question or instruction")
    p.add_argument("--max-new-tokens", type=positive_int, default=64)
    p.add_argument("--repeats", type=positive_int, default=3, help="prefill timing repeats (median)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random method")
    p.add_argument("--drop-silent", action="store_true", help="drop tokens of silent stretches first")
    add_score_layers_argument(p)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the text report")
    p.set_defaults(func=run_command)


def run_command(args) -> int:
    from .compare import Setting, compare

    spec = registry().get(args.model)  # a known model: read no more of the file than it takes
    audio = load_audio(args.audio, max_seconds=spec.family.max_seconds if spec else None)  # before the model loads
    lm = load_from_args(args)
    setting = Setting(args.method, args.keep, args.segments, args.seed, drop_silent=args.drop_silent)
    c = compare(
        lm,
        audio,
        args.prompt,
        [setting],
        max_new_tokens=args.max_new_tokens,
        repeats=args.repeats,
        score_layers=args.score_layers,
    )
    warnings = notices(c, lm) + (["the clip is silent; the answer describes silence."] if audio.is_silent else [])
    if args.json:
        for w in warnings:  # the text report carries them in its header
            print(f"segprune: warning: {w}", file=sys.stderr)
        print(json.dumps({**c.to_dict(0), "audio_file": args.audio, "warnings": warnings}))
    else:
        print(report(c, lm))
    return 0


def notices(c, lm) -> list[str]:
    """Warnings a person must see: random weights, truncated audio."""
    out = []
    if c.random_weights:
        out.append(f"{c.model} has {RANDOM_WEIGHTS_NOTE}.")
    if c.truncated_seconds > 0:
        out.append(truncation_notice(c, lm))
    return out


def truncation_notice(c, lm, max_seconds: float | None = None) -> str:
    """What was cut off a clip longer than the model takes (the CLI and the app say the same).
    max_seconds: a limit below the model's own (the app's) when that is what cut the clip."""
    who, limit = (f"{lm.key} takes", lm.max_seconds)
    if max_seconds is not None and max_seconds < lm.max_seconds:
        who, limit = ("this demo reads", max_seconds)
    return (
        f"the clip was {c.audio_seconds + c.truncated_seconds:.1f} s but {who} at most "
        f"{limit:.0f} s: the last {c.truncated_seconds:.1f} s were dropped."
    )


def decode_rate(full, pruned) -> str:
    """Decoding time per token of the full and the pruned run ("12.3 / 11.0 ms per token"); "n/a"
    for a run that generated a single token (it comes from the prefill: no decoding step to time)."""

    def ms(run) -> str:
        return f"{run.decode_ms_per_token:.1f}" if math.isfinite(run.decode_ms_per_token) else "n/a"

    return f"{ms(full)} / {ms(pruned)} ms per token"


def report(c, lm) -> str:
    """A human report: both answers side by side, token counts and timings."""
    p = c.pruned[0]
    method = get_method(p.setting.method)
    segments = f" (S={p.setting.segments})" if method.uses_segments else ""
    width = max(60, min(shutil.get_terminal_size((100, 20)).columns, 140))
    col = (width - 3) // 2
    lines = [f"segprune · {c.model}"]
    if c.random_weights:
        lines.append(f"!! TINY MODEL, {RANDOM_WEIGHTS_NOTE} !!")
    if c.truncated_seconds > 0:
        lines.append(
            f"!! audio truncated to {lm.max_seconds:.0f} s: the last {c.truncated_seconds:.1f} s were dropped !!"
        )
    windows = len(c.tokens.window_starts)
    lines += [
        f"audio   {c.audio_seconds:.2f} s -> N = {c.tokens.n} audio tokens ({windows} window{'s' * (windows > 1)})",
        f"method  {method.label}{segments}, keep {p.setting.keep_ratio:g} -> K = {p.selection.k} of {c.tokens.n}"
        f" ({100 * p.selection.k / c.tokens.n:.1f} %)",
        f"prompt  {c.prompt}",
        "",
    ]
    left = [f"FULL MODEL ({c.full.prompt_tokens} prompt tokens)"] + _wrap(c.full.text, col)
    right = [f"PRUNED MODEL ({p.run.prompt_tokens} prompt tokens)"] + _wrap(p.run.text, col)
    left.append(f"prefill {c.full.prefill_ms:.1f} ms")
    right.append(f"prefill {p.run.prefill_ms:.1f} ms  (x{c.speedup(p):.2f}; token bound x{c.ideal_speedup(p):.2f})")
    for i in range(max(len(left), len(right))):
        a = left[i] if i < len(left) else ""
        b = right[i] if i < len(right) else ""
        lines.append(f"{a:<{col}} | {b}")
    lines += [
        "",
        f"encoder {c.tokens.encoder_ms:.1f} ms · scoring hook {c.tokens.scoring_ms:.1f} ms · selection "
        f"{p.select_ms:.3f} ms · decode {decode_rate(c.full, p.run)} · prefill medians of {c.timing_repeats}",
    ]
    return "\n".join(lines)


def _wrap(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width) or ["(empty answer)"]


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (run with --help for the usage)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


COMMANDS = [register_run, register_bench, register_eval]


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="segprune", description="Segmentwise audio token pruning for audio-LMs.")
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for register in COMMANDS:
        register(subparsers)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:
        return int(exit.code or 0)
    try:
        return args.func(args)
    except USER_ERRORS as err:
        print(f"segprune: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("segprune: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
