"""Serving benchmark: pruned audio through a vLLM server, throughput and latency per keep ratio.

    rows = serving_benchmark(VLLMClient(url), lm, ["a.wav", "b.wav"], concurrency=4, requests=16)
    print(markdown(rows))

    python -m segprune.bench.serving --vllm-url URL --model FOLDER --clips a.wav b.wav \
        --concurrency 4 --requests 16 --json out.json --md out.md

segprune encodes each clip ONCE and selects the kept tokens for every keep ratio; the server runs
the language model. Requests go in waves of `concurrency` concurrent requests (one keep ratio per
wave, the clips in turn), and the waves of the keep ratios are interleaved round robin, the order
rotating every round, so that drift in the machine's speed hits every keep ratio alike. Every
request generates exactly `max_tokens` tokens (``ignore_eos``), so every keep ratio does the same
decoding work and only the prompt differs. Every request's embeddings differ from all others in
the last bit of one element (`salted`): vLLM's prefix cache would otherwise serve a repeated clip's
audio tokens from the KV cache without any prefill (a service does not hear the same clip twice).

Per keep ratio: requests/s (its requests / the summed wall time of its waves), time to first token
(p50, p99 over its requests; measured by the client from sending to the first streamed token),
time per output token (median over requests of (total - TTFT) / (tokens - 1)), end-to-end latency
p50 and the prompt tokens the server reports (mean). Each also as a ratio value / value at keep 1
from the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Sequence

import numpy as np
import torch

from ..comparison import Setting, encode_clip, prune_tokens
from ..engines.vllm import ChatRequest, VLLMClient, check_family, salted
from ..methods import DEFAULT_METHOD, get_method
from ..models.base import AudioLM

DEFAULT_PROMPT = "Describe the audio in detail."
RATIO_FIELDS = ("requests_per_s", "ttft_p50_ms", "ttft_p99_ms", "tpot_ms", "latency_p50_ms", "prompt_tokens")


def serving_benchmark(
    client: VLLMClient,
    lm: AudioLM,
    clips: Sequence,
    keep_ratios: Sequence[float] = (1.0, 0.5, 0.25, 0.1),
    concurrency: int = 4,
    requests: int = 16,
    method: str = DEFAULT_METHOD,
    prompt: str = DEFAULT_PROMPT,
    max_tokens: int = 32,
    options: dict | None = None,
    warmup_waves: int = 1,
    log=None,
) -> list[dict]:
    """Send `requests` requests per keep ratio at `concurrency`; one row (dict) per keep ratio.

    clips: audio paths or `Audio`s (each encoded once by `lm`, the model the server serves).
    Keep 1 is always measured (added first if missing): the ratios are against it. A wave is
    `concurrency` requests of one keep ratio sent at once; the last wave of a round may be smaller.
    warmup_waves: untimed rounds (every keep ratio once) before the timed ones. options: the
    method's own options (those it does not have are left out).
    """
    check_family(lm.key)
    if not clips:
        raise ValueError("The serving benchmark needs at least one clip.")
    if requests < 1 or concurrency < 1:
        raise ValueError("requests and concurrency must be at least 1.")
    ratios = [1.0] + [float(r) for r in keep_ratios if float(r) != 1.0]
    own = {k: v for k, v in (options or {}).items() if get_method(method).takes(k)}
    log = log or (lambda message: None)
    encoded = [encode_clip(lm, clip, prompt, max_tokens) for clip in clips]
    kept = {
        r: [prune_tokens(c.tokens, Setting(method, r, **own))[1] for c in encoded] for r in ratios
    }  # r -> [K_i, H] per clip
    client.served_model()

    serial = iter(range(1 << 62))

    def wave(r: float, first: int, size: int):
        batch = [
            ChatRequest(prompt, salted(kept[r][(first + i) % len(clips)], next(serial)), lm.audio_first)
            for i in range(size)
        ]
        start = time.perf_counter()
        replies = client.chat_many(batch, max_tokens, concurrency=size, ignore_eos=True)
        return replies, time.perf_counter() - start

    for _ in range(warmup_waves):
        for r in ratios:
            wave(r, 0, concurrency)
    replies = {r: [] for r in ratios}
    wall = dict.fromkeys(ratios, 0.0)
    sent, round_index = 0, 0
    while sent < requests:
        size = min(concurrency, requests - sent)
        order = ratios[round_index % len(ratios) :] + ratios[: round_index % len(ratios)]
        for r in order:
            got, seconds = wave(r, sent, size)
            replies[r].extend(got)
            wall[r] += seconds
        sent += size
        round_index += 1
        log(f"serving: {sent}/{requests} requests per keep ratio")
    rows = [_row(r, replies[r], wall[r], kept[r], concurrency, max_tokens) for r in ratios]
    base = rows[0]
    for row in rows:
        row["ratio"] = {f: row[f] / base[f] if base[f] else float("nan") for f in RATIO_FIELDS}
    return rows


def _row(keep: float, replies, wall_s: float, kept, concurrency: int, max_tokens: int) -> dict:
    ttft = np.array([r.ttft_ms for r in replies])
    total = np.array([r.total_ms for r in replies])
    tpot = [r.decode_ms_per_token for r in replies if len(r.token_ids) > 1]
    return {
        "keep_ratio": keep,
        "k_mean": float(np.mean([k.shape[0] for k in kept])),
        "requests": len(replies),
        "concurrency": concurrency,
        "max_tokens": max_tokens,
        "output_tokens_mean": float(np.mean([len(r.token_ids) for r in replies])),
        "prompt_tokens": float(np.mean([r.prompt_tokens for r in replies])),
        "wall_s": wall_s,
        "requests_per_s": len(replies) / wall_s,
        "ttft_p50_ms": float(np.percentile(ttft, 50)),
        "ttft_p99_ms": float(np.percentile(ttft, 99)),
        "tpot_ms": float(np.median(tpot)) if tpot else float("nan"),
        "latency_p50_ms": float(np.percentile(total, 50)),
    }


def markdown(rows: list[dict]) -> str:
    """The serving table: each value with its ratio against keep 1 measured in the same run."""

    def cell(row, field, digits=1):
        return f"{row[field]:.{digits}f} (x{row['ratio'][field]:.2f})"

    lines = [
        "| keep | K | prompt tokens | req/s | TTFT p50 ms | TTFT p99 ms | ms / output token | latency p50 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['keep_ratio']:g} | {row['k_mean']:.0f} | {cell(row, 'prompt_tokens', 0)} "
            f"| {cell(row, 'requests_per_s', 3)} | {cell(row, 'ttft_p50_ms', 0)} | {cell(row, 'ttft_p99_ms', 0)} "
            f"| {cell(row, 'tpot_ms')} | {cell(row, 'latency_p50_ms', 0)} |"
        )
    first = rows[0]
    lines.append("")
    lines.append(
        f"{first['requests']} requests per keep ratio in waves of {first['concurrency']} concurrent requests, "
        f"{first['max_tokens']} output tokens each (ignore_eos); (xR) = value / value at keep 1, same run. "
        "TTFT: client-side, request sent to first streamed token."
    )
    return "\n".join(lines)


def machine() -> dict:
    """Where the client ran (the server is on the same machine in the CPU runs)."""
    from .run import cpu_name, load_average

    return {"platform": platform.platform(), "processor": cpu_name(), "cpus": os.cpu_count(), "load": load_average()}


def serving_command(args) -> int:
    """`segprune bench --engine vllm --vllm-url URL --concurrency C --requests R`: the serving
    benchmark against a running server that serves --model, on 4 synthetic clips of each --seconds
    length, at every --keep ratio; prints the markdown table (and --json FILE)."""
    from ..args import load_from_args, option_flags
    from .measure import synthetic_audio

    if not args.vllm_url:
        raise ValueError("--engine vllm needs --vllm-url (start a server with `segprune vllm-serve MODEL`).")
    lm = load_from_args(args)
    clips = [synthetic_audio(s, seed=i) for s in args.seconds for i in range(4)]
    client = VLLMClient(args.vllm_url)
    start = time.perf_counter()
    options = {o: getattr(args, o) for o in option_flags() if getattr(args, o, None) is not None}
    rows = serving_benchmark(
        client,
        lm,
        clips,
        args.keep,
        args.concurrency,
        args.requests,
        args.methods[0],
        options=options,
        log=lambda m: print(f"[bench] {m}", file=sys.stderr, flush=True),
    )
    table = markdown(rows)
    print(table)
    if args.json_path:
        record = {
            "command": "segprune bench " + shlex.join(sys.argv[2:]),
            "model": lm.name,
            "random_weights": lm.random_weights,
            "served_model": client.served_model(),
            "machine": machine(),
            "seconds": time.perf_counter() - start,
            "rows": rows,
        }
        with open(args.json_path, "w") as f:
            json.dump(record, f, indent=2)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m segprune.bench.serving", description=__doc__.split("\n\n")[0])
    server = p.add_mutually_exclusive_group(required=True)
    server.add_argument("--vllm-url", help="a running server that serves --model")
    server.add_argument("--vllm-python", help="start (and stop) a server for --model with this python of vLLM's venv")
    p.add_argument("--server-args", default="", help="further vLLM flags for the started server, one quoted string")
    p.add_argument("--model", required=True, help="the folder (or hub id) the server serves, loaded here to encode")
    p.add_argument("--clips", nargs="+", required=True, help="audio files, sent in turn")
    p.add_argument("--keep", type=float, nargs="+", default=[1.0, 0.5, 0.25, 0.1])
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--requests", type=int, default=16, help="requests per keep ratio")
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--method", default=DEFAULT_METHOD)
    p.add_argument("--prompt", default=DEFAULT_PROMPT)
    p.add_argument("--device", default="cpu", help="where segprune encodes (the server has its own device)")
    p.add_argument(
        "--dtype", default=None, choices=["float32", "bfloat16", "float16"], help="segprune's and the server's"
    )
    p.add_argument("--json", dest="json_path", default=None)
    p.add_argument("--md", default=None)
    args = p.parse_args(argv)

    from ..models import load_model

    lm = load_model(args.model, device=args.device, dtype=getattr(torch, args.dtype) if args.dtype else None)
    with contextlib.ExitStack() as stack:
        url, server_command = args.vllm_url, None
        if args.vllm_python:
            from ..engines.serve import ServerProcess, free_port, is_cpu_build, serve_command, serve_env

            cpu, port = is_cpu_build(args.vllm_python), free_port()
            server_command = serve_command(
                args.model,
                args.vllm_python,
                port,
                dtype=args.dtype or "auto",
                cpu=cpu,
                extra=shlex.split(args.server_args),
            )
            url = stack.enter_context(ServerProcess(server_command, f"http://127.0.0.1:{port}", env=serve_env(cpu))).url
        client = VLLMClient(url)
        start = time.perf_counter()
        rows = serving_benchmark(
            client,
            lm,
            args.clips,
            args.keep,
            args.concurrency,
            args.requests,
            args.method,
            args.prompt,
            args.max_tokens,
            log=lambda m: print(m, file=sys.stderr, flush=True),
        )
        record = {
            "command": "python -m segprune.bench.serving " + shlex.join(argv if argv is not None else sys.argv[1:]),
            "server_command": shlex.join(server_command) if server_command else None,
            "model": lm.name,
            "random_weights": lm.random_weights,
            "served_model": client.served_model(),
            "machine": machine(),
            "seconds": time.perf_counter() - start,
            "rows": rows,
        }
    table = markdown(rows)
    print(table)
    if args.json_path:
        with open(args.json_path, "w") as f:
            json.dump(record, f, indent=2)
    if args.md:
        with open(args.md, "w") as f:
            f.write(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
