"""Command-line pieces shared by `segprune run`, `bench`, `eval`, the GPU entry, the study and
`app.py`: argument types, the model arguments and the methods' own options.

A leaf module: it imports the model registry (plain data) and the method registry, and nothing
that loads models, so that every `--help` is quick.
"""

from __future__ import annotations

import argparse
import math

from .methods import METHODS, get_method, keep_count
from .models import registry

DTYPES = ("float32", "bfloat16", "float16")


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
    """argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {value}")
    return value


def repeat_count(text: str) -> int:
    """argparse type for --repeats: a whole number from 1 to 1000 (timing rounds)."""
    value = positive_int(text)
    if value > 1000:
        raise argparse.ArgumentTypeError(f"expected at most 1000 timing rounds, got {text[:20]}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: a whole number of at least 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 0, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a finite number of at least 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a number of at least 0, got {text!r}")
    return value


def add_model_arguments(parser: argparse.ArgumentParser, default: str | None = "qwen2-audio") -> None:
    """--model, --device, --dtype: shared by every command that loads a model."""
    keys = ", ".join(registry())
    parser.add_argument("--model", default=default, help=f"registry key ({keys}), hub id or local folder")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    parser.add_argument("--dtype", default=None, choices=DTYPES, help="default: float32 on the CPU, bfloat16 on a GPU")


def add_score_layers_argument(parser: argparse.ArgumentParser) -> None:
    """--score-layers L: shared by run, bench and eval."""
    parser.add_argument(
        "--score-layers",
        type=positive_int,
        default=1,
        help="score = attention received averaged over the encoder's last L layers (paper: 1)",
    )


def _option_type(default):
    if isinstance(default, bool):
        raise TypeError("boolean method options need their own flag")
    if isinstance(default, int):  # whole numbers; each method's own check gives its lower bound
        return non_negative_int
    return non_negative_float


def option_flags() -> dict[str, tuple[object, list[str]]]:
    """Every method option in the registry: name -> (default type's argparse parser, methods having it)."""
    flags: dict[str, tuple[object, list[str]]] = {}
    for name, cls in METHODS.items():
        for option, default in cls.option_defaults().items():
            _, owners = flags.setdefault(option, (_option_type(default), []))
            owners.append(name)
    return flags


def add_method_options(parser: argparse.ArgumentParser) -> None:
    """One flag per method option of the registry (--segments, --seed, --context-ratio, ...)."""
    for option, (kind, owners) in option_flags().items():
        defaults = {get_method(m).option_defaults()[option] for m in owners}
        default = defaults.pop() if len(defaults) == 1 else None
        parser.add_argument(
            f"--{option.replace('_', '-')}",
            dest=option,
            type=kind,
            default=None,
            help=f"option of {', '.join(owners)}" + (f" (default {default})" if default is not None else ""),
        )


def method_options(args: argparse.Namespace, method: str, strict: bool = True) -> dict:
    """The method options given on the command line that `method` has. strict: an option given
    that the method does not have is a ValueError naming the options it has (for one method; a
    command running several methods passes strict=False and each gets the ones it has)."""
    cls = get_method(method)
    given = {o: getattr(args, o) for o in option_flags() if getattr(args, o, None) is not None}
    foreign = [o for o in given if not cls.takes(o)]
    if strict and foreign:
        have = ", ".join(f"--{o.replace('_', '-')}" for o in cls.option_defaults()) or "none"
        raise ValueError(f"Method {method!r} has no option --{foreign[0].replace('_', '-')}; its options: {have}.")
    return {o: v for o, v in given.items() if cls.takes(o)}


ENGINES = ("transformers", "vllm")


def add_engine_arguments(parser: argparse.ArgumentParser, concurrency: bool = True) -> None:
    """--engine, --vllm-url (and --concurrency): where the language-model half runs."""
    parser.add_argument(
        "--engine",
        default="transformers",
        choices=ENGINES,
        help="where the language model runs: in this process (exact timing) or on a vLLM server (--vllm-url)",
    )
    parser.add_argument("--vllm-url", default=None, help="the vLLM server, e.g. http://127.0.0.1:8000")
    if concurrency:
        parser.add_argument(
            "--concurrency", type=positive_int, default=4, help="requests in flight at once on the vLLM engine"
        )


def make_engine(args: argparse.Namespace, lm):
    """The engine named by --engine for `lm`: None (in process, the default) or a `VLLMEngine`.
    ValueError (one sentence) for vllm without --vllm-url, or a family vLLM cannot serve."""
    if getattr(args, "engine", "transformers") == "transformers":
        if getattr(args, "vllm_url", None):
            raise ValueError("--vllm-url is for --engine vllm.")
        return None
    if not args.vllm_url:
        raise ValueError("--engine vllm needs --vllm-url (start a server with `segprune vllm-serve MODEL`).")
    from .engines.vllm import VLLMEngine

    return VLLMEngine(lm, args.vllm_url, concurrency=getattr(args, "concurrency", 4))


def torch_dtype(name: str | None):
    """The torch dtype named by --dtype, or None."""
    if name is None:
        return None
    import torch

    return getattr(torch, name)


def load_from_args(args: argparse.Namespace):
    """The model named by --model on --device in --dtype (`segprune.models.load_model`)."""
    from .models import load_model

    return load_model(args.model, device=args.device, dtype=torch_dtype(args.dtype))


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (run with --help for the usage)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


__all__ = [
    "DTYPES",
    "ENGINES",
    "OneLineParser",
    "add_engine_arguments",
    "add_method_options",
    "add_model_arguments",
    "add_score_layers_argument",
    "keep_ratio",
    "load_from_args",
    "make_engine",
    "method_options",
    "non_negative_float",
    "non_negative_int",
    "option_flags",
    "positive_float",
    "positive_int",
    "repeat_count",
    "torch_dtype",
]
