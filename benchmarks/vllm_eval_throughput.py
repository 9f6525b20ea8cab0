"""Evaluation throughput: the same greedy generations through transformers (one after another, as
`segprune eval` runs them) and through a vLLM server (requests sent concurrently).

    python benchmarks/vllm_eval_throughput.py --model FOLDER --vllm-python PATH \
        --clips 8 --seconds 10 --keep 0.25 --concurrency 4 --max-new-tokens 16 --json out.json

Per clip, as in `segprune eval`: encode once, then the full prompt and the pruned one (segmentwise
at --keep). The encoding runs in segprune for both engines and is timed apart; the compared wall
times are the language-model generations only: transformers `lm.generate` on each assembled
prompt in turn vs `VLLMClient.chat_many` with all the requests at --concurrency. The script starts
the vLLM server itself (float32, on loopback) and checks that every generation is identical. It
also sends the same requests to vLLM one at a time (`vllm_sequential_s`), which splits the gain
into the engine's own speed and its batching of concurrent requests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
import torch

import segprune
from segprune.bench.serving import salted
from segprune.compare import Setting, encode_clip, prune_tokens
from segprune.engines.serve import ServerProcess, free_port, is_cpu_build, serve_command, serve_env
from segprune.engines.vllm import ChatRequest, VLLMClient

PROMPT = "Describe the audio in detail."


def scene(seconds: float, seed: int, rate: int = 16000) -> np.ndarray:
    """Tone and noise bursts over quiet noise (the tests' scene), [n] float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    x = 0.01 * rng.standard_normal(t.size)
    for start in np.arange(0.5 + 0.1 * seed, seconds, 2.0):
        on = (t >= start) & (t < start + 0.4)
        x[on] += 0.5 * np.sin(2 * np.pi * (300 + 100 * start + 50 * seed) * t[on])
    return x.astype(np.float32)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="a save_pretrained folder (both engines load it)")
    p.add_argument("--vllm-python", required=True)
    p.add_argument("--clips", type=int, default=8)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--keep", type=float, default=0.25)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--max-new-tokens", type=int, default=16)
    p.add_argument("--json", dest="json_path", default=None)
    args = p.parse_args()

    lm = segprune.load_model(args.model, device="cpu", dtype=torch.float32)
    folder = Path(tempfile.mkdtemp(prefix="segprune-eval-clips-"))
    paths = []
    for i in range(args.clips):
        paths.append(folder / f"clip{i}.wav")
        soundfile.write(paths[-1], scene(args.seconds, seed=i), 16000)

    start = time.perf_counter()
    prompts = []  # (kept [K, H], assembled inputs) for the full and the pruned prompt of every clip
    for path in paths:
        clip = encode_clip(lm, str(path), PROMPT, args.max_new_tokens)
        kept = prune_tokens(clip.tokens, Setting("segmentwise", args.keep))[1]
        for embeddings in (clip.tokens.embeddings, kept):
            prompts.append((embeddings, lm.assemble(clip.inputs, [embeddings])))
    encode_s = time.perf_counter() - start

    lm.generate(prompts[0][1], 2)  # warm-up, as the server gets one below
    start = time.perf_counter()
    expected = [lm.generate(x, args.max_new_tokens)[0].token_ids for _, x in prompts]
    transformers_s = time.perf_counter() - start

    cpu = is_cpu_build(args.vllm_python)
    port = free_port()
    command = serve_command(
        args.model, args.vllm_python, port, dtype="float32", max_model_len=4096, cpu=cpu, extra=["--max-num-seqs", "8"]
    )
    with ServerProcess(command, f"http://127.0.0.1:{port}", env=serve_env(cpu, kv_cache_gib=2)) as server:
        client = VLLMClient(server.url)
        requests = [ChatRequest(PROMPT, embeddings, lm.audio_first) for embeddings, _ in prompts]
        client.chat(PROMPT, salted(prompts[0][0], 0), 2, lm.audio_first)  # warm-up, not cached for the timed run
        start = time.perf_counter()
        replies = client.chat_many(requests, args.max_new_tokens, concurrency=args.concurrency)
        vllm_s = time.perf_counter() - start
        # the same requests one at a time (new salt: nothing cached): the engine's share vs batching's
        again = [ChatRequest(PROMPT, salted(r.audio_embeds, 1), lm.audio_first) for r in requests]
        start = time.perf_counter()
        one_by_one = client.chat_many(again, args.max_new_tokens, concurrency=1)
        vllm_sequential_s = time.perf_counter() - start
        startup_s = server.startup_s
    identical = [r.token_ids for r in replies] == expected
    record = {
        "command": "python benchmarks/vllm_eval_throughput.py " + " ".join(sys.argv[1:]),
        "model": lm.name,
        "random_weights": lm.random_weights,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()},
        "clips": args.clips,
        "seconds": args.seconds,
        "generations": len(prompts),
        "new_tokens": sum(len(e) for e in expected),
        "encode_s": encode_s,
        "transformers_sequential_s": transformers_s,
        "vllm_concurrent_s": vllm_s,
        "concurrency": args.concurrency,
        "speedup": transformers_s / vllm_s,
        "vllm_sequential_s": vllm_sequential_s,
        "batching_speedup": vllm_sequential_s / vllm_s,
        "identical_generations": identical,
        "identical_one_by_one": [r.token_ids for r in one_by_one] == expected,
        "vllm_startup_s": startup_s,
    }
    print(json.dumps(record, indent=2))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(record, indent=2) + "\n")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
