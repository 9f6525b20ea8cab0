"""`segprune bench` on the command line (registered in `segprune.cli.COMMANDS`).

    segprune bench --model KEY [--random-weights] [--preset NAME] --seconds 10 30 60 \
        --keep 1 0.5 0.25 0.1 --methods segmentwise topk --repeats 5 [--json FILE] [--html FILE] \
        [--selection-n 15000 45000 --selection-keep 0.25 --selection-hidden 896]
    segprune bench --from-json FILE [--html FILE]      # report again from a saved run

The markdown report goes to stdout, progress to stderr.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..args import (
    add_engine_arguments,
    add_method_options,
    add_model_arguments,
    add_score_layers_argument,
    keep_ratio,
    non_negative_int,
    option_flags,
    positive_float,
    positive_int,
    repeat_count,
    torch_dtype,
)
from ..methods import DEFAULT_METHOD, METHODS
from .result import SELECTION_KEEP, SELECTION_N


def register_bench(subparsers) -> None:

    p = subparsers.add_parser(
        "bench",
        help="time prefill (full vs pruned), encoder, scoring hook, selection, decode and memory",
        description="Benchmark a model with random or real weights; prints a markdown report.",
    )
    add_model_arguments(p)
    p.add_argument("--random-weights", action="store_true", help="build --model's architecture with random weights")
    p.add_argument("--preset", default=None, help="size of the random-weight model: full (the real one), mid, tiny")
    p.add_argument("--seconds", type=positive_float, nargs="+", default=[30.0], help="audio lengths to time")
    p.add_argument("--keep", type=keep_ratio, nargs="+", default=[1.0, 0.5, 0.25, 0.1], help="keep ratios")
    p.add_argument(
        "--methods",
        nargs="+",
        default=[DEFAULT_METHOD],
        choices=list(METHODS),
        metavar="METHOD",
        help=f"selection methods ({', '.join(METHODS)}); the first chooses the prefilled tokens",
    )
    add_method_options(p)
    p.add_argument("--repeats", type=repeat_count, default=5, help="timed runs per measurement")
    p.add_argument("--warmup", type=non_negative_int, default=1, help="untimed rounds before the timed ones")
    p.add_argument(
        "--decode-tokens", type=non_negative_int, default=8, help="greedy steps for decode ms/token (0: skip)"
    )
    p.add_argument(
        "--baseline-seconds",
        type=positive_float,
        nargs="*",
        default=[30.0],
        help="lengths at which to run the output_attentions baseline (none: skip)",
    )
    p.add_argument(
        "--selection-n",
        type=positive_int,
        nargs="+",
        default=list(SELECTION_N),
        metavar="N",
        help="token counts of the synthetic selection test, which times every registry method (default: "
        + " ".join(map(str, SELECTION_N))
        + ", 10 and 30 minutes of audio)",
    )
    p.add_argument(
        "--selection-keep", type=keep_ratio, default=SELECTION_KEEP, help="keep ratio of the synthetic selection test"
    )
    p.add_argument(
        "--selection-hidden",
        type=positive_int,
        default=None,
        metavar="H",
        help="embedding width of the synthetic selection test (default: the model's LLM width)",
    )
    p.add_argument(
        "--selection-repeats", type=positive_int, default=20, help="timed runs of each quick selection method"
    )
    add_score_layers_argument(p)
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--json", dest="json_path", default=None, help="write the result as JSON (schema: bench/result.py)")
    p.add_argument("--html", default=None, help="write the plotly figures as a self-contained HTML file")
    p.add_argument("--from-json", default=None, help="report a saved result instead of measuring")
    add_engine_arguments(p)  # --engine vllm: the serving benchmark (requests/s, TTFT) against a vLLM server
    p.add_argument("--requests", type=positive_int, default=16, help="vLLM engine: requests per keep ratio")
    p.set_defaults(func=bench_command)


def load_bench_model(args):
    """The model to time: a preset with random weights, or `load_model` (real or tiny)."""
    import torch

    from ..args import load_from_args
    from ..models import ModelLoadError, default_device, default_dtype, registry
    from .presets import TINY, build

    spec = registry().get(args.model)
    preset = args.preset or (("full" if not spec.tiny else TINY) if args.random_weights and spec else None)
    if preset is None:
        try:
            return load_from_args(args), TINY if spec and spec.tiny else None
        except ModelLoadError as err:
            hint = "to time the architecture without its weights, add --random-weights (full size) or --preset mid"
            raise ModelLoadError(f"{err} For `segprune bench`: {hint}.") from None
    if spec is None:
        raise ModelLoadError(
            f"--preset needs a registry key for --model ({', '.join(registry())}), not {args.model!r}."
        )
    if spec.tiny and preset != TINY:
        raise ValueError(f"{args.model} is the tiny variant; for --preset {preset} use --model {spec.family.key}.")
    device = torch.device(args.device) if args.device else default_device()
    dtype = torch_dtype(args.dtype) or default_dtype(device, random_weights=True)
    return build(spec.family.load(), preset, device, dtype), preset


def bench_command(args) -> int:
    from . import report
    from .measure import Options
    from .result import Result
    from .run import benchmark

    if args.engine == "vllm":
        from .serving import serving_command

        return serving_command(args)
    if args.from_json:
        try:
            result = Result.from_dict(json.loads(Path(args.from_json).read_text()))
        except OSError as err:
            raise ValueError(f"Cannot read {args.from_json}: {err.strerror}.") from None
    else:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        from ..models import registry
        from .measure import log_progress
        from .run import check_lengths

        spec = registry().get(args.model)
        if spec is not None:  # refuse a length before anything is built
            check_lengths(spec.family.load(), args.seconds)
        start = time.perf_counter()
        if args.preset not in (None, "tiny") or args.random_weights:
            log_progress(f"building the {args.preset or 'full'} preset of {args.model} with random weights")
        lm, preset = load_bench_model(args)
        check_lengths(lm, args.seconds)
        params = lm.parameter_counts()["total"] / 1e6
        log_progress(f"{lm.name}: {params:.1f} M parameters, ready in {time.perf_counter() - start:.1f} s")
        opts = Options(
            seconds=list(args.seconds),
            keep=sorted(set(args.keep) | {1.0}, reverse=True),
            methods=list(dict.fromkeys(args.methods)),
            options={o: getattr(args, o) for o in option_flags() if getattr(args, o, None) is not None},
            repeats=args.repeats,
            warmup=args.warmup,
            decode_tokens=args.decode_tokens,
            baseline_seconds=list(args.baseline_seconds),
            selection_n=list(dict.fromkeys(args.selection_n)),
            selection_keep=args.selection_keep,
            selection_hidden=args.selection_hidden,
            selection_repeats=args.selection_repeats,
            score_layers=args.score_layers,
        )
        result = benchmark(lm, opts, preset)
        if args.json_path:
            Path(args.json_path).write_text(json.dumps(result.to_dict(), indent=1) + "\n")
    if args.html:
        report.write_html(result, args.html)
    print(report.markdown(result), end="")
    return 0
