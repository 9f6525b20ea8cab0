"""The `segprune` command.

    segprune run AUDIO --model KEY --method NAME --keep R [--segments S ...] --prompt TEXT [--json]
    segprune bench --model KEY [--preset NAME] --seconds 30 --keep 1 0.5 0.25 0.1 [--json FILE]
    segprune eval --model KEY --task NAME [--manifest FILE.jsonl] ...

Each subcommand has a `register(subparsers)` function in its own module (this one for `run`);
argument types and shared arguments come from `segprune.args`. Heavy imports (torch models,
transformers) happen after the arguments are parsed. Errors a person can fix (bad file, bad
argument, model not loadable) end with one line on stderr and exit code 2.
"""

from __future__ import annotations

import json
import sys

from .args import (
    OneLineParser,
    add_engine_arguments,
    add_method_options,
    add_model_arguments,
    add_score_layers_argument,
    keep_ratio,
    load_from_args,
    make_engine,
    method_options,
    positive_int,
    repeat_count,
)
from .audio import AudioError
from .bench.cli import register_bench
from .convert import register_convert
from .engines.serve import register_vllm_serve
from .eval.cli import register_eval
from .methods import DEFAULT_METHOD, METHODS
from .models import ModelLoadError, registry

USER_ERRORS = (AudioError, ModelLoadError, ValueError)


def register_run(subparsers) -> None:
    p = subparsers.add_parser("run", help="answer one clip with the full and the pruned model, side by side")
    p.add_argument("audio", help="audio file (WAV, FLAC, OGG, MP3)")
    add_model_arguments(p)
    p.add_argument("--method", default=DEFAULT_METHOD, choices=list(METHODS), help="selection method")
    p.add_argument("--keep", type=keep_ratio, default=0.25, help="fraction of audio tokens KEPT, in (0, 1]")
    add_method_options(p)
    p.add_argument("--prompt", default="Describe the audio in detail.", help="question or instruction")
    p.add_argument("--max-new-tokens", type=positive_int, default=64)
    p.add_argument(
        "--repeats",
        type=repeat_count,
        default=None,
        help="prefill timing rounds (default: adaptive, 5 to 30 rounds until 0.5 s is measured per prompt)",
    )
    p.add_argument("--drop-silent", action="store_true", help="drop tokens of silent stretches first")
    add_score_layers_argument(p)
    add_engine_arguments(p, concurrency=False)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the text report")
    p.set_defaults(func=run_command)


def run_command(args) -> int:
    from . import words
    from .audio import load_audio
    from .comparison import Setting, compare

    setting = Setting(args.method, args.keep, drop_silent=args.drop_silent, **method_options(args, args.method))
    spec = registry().get(args.model)  # a known model: read no more of the file than it takes
    audio = load_audio(args.audio, max_seconds=spec.family.load().max_seconds if spec else None)
    lm = load_from_args(args)
    engine = make_engine(args, lm)
    c = compare(
        lm,
        audio,
        args.prompt,
        [setting],
        max_new_tokens=args.max_new_tokens,
        repeats=args.repeats,
        score_layers=args.score_layers,
        engine=engine,
    )
    warnings = words.notices(c, lm) + (["the clip is silent; the answer describes silence."] if audio.is_silent else [])
    if args.json:
        for w in warnings:  # the text report carries them in its header
            print(f"segprune: warning: {w}", file=sys.stderr)
        print(json.dumps({**c.to_dict(0), "audio_file": args.audio, "warnings": warnings}))
    else:
        print(words.report(c, lm))
    return 0


COMMANDS = [register_run, register_bench, register_eval, register_vllm_serve, register_convert]


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
