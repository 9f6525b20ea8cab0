"""Long audio: prefill time and peak memory against clip duration, Audio Flamingo Next's 30 minutes.

    python benchmarks/long_audio.py                                   # CPU: tiny-audio-flamingo-next
    python benchmarks/long_audio.py --preset full --device cuda --dtype bfloat16 --repeats 5   # a GPU
    python benchmarks/long_audio.py --write-wav /tmp/long_30min.wav --minutes 30   # a clip for `segprune run`

For each duration (default 1, 5, 10, 20, 30 minutes) a CHILD process (so each peak is its own):
build the model, make a synthetic clip (noise plus a gliding tone that comes and goes), compute the
processor inputs and encode once (encoder + scoring); then for each keep ratio in ascending order
(default 0.1, 0.25, 1) select with Segmentwise, assemble and time the language model's prefill
(`--repeats` rounds after one warm-up, median). Peaks: on the CPU the process's peak resident set
(VmHWM), reset before each phase through /proc/self/clear_refs, so the prefill's peak is the
prefill's own plus what stays resident (model, clip, features, embeddings); on a GPU also
torch.cuda.max_memory_allocated, reset before each phase. Prints a markdown table; `--out` writes
the rows as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

MINUTES = [1.0, 5.0, 10.0, 20.0, 30.0]
KEEP = [0.1, 0.25, 1.0]
SAMPLE_RATE = 16_000


def synthetic_clip(minutes: float, seed: int = 0) -> np.ndarray:
    """float32 [minutes * 60 * 16000]: noise at 0.05 plus a 0.3 tone gliding around 220 Hz, on for
    6.5 s of every 13 s (so scores vary over the clip), made in 60 s blocks (no float64 copy)."""
    n = round(minutes * 60 * SAMPLE_RATE)
    rng = np.random.default_rng(seed)
    out = np.empty(n, dtype=np.float32)
    block = 60 * SAMPLE_RATE
    for start in range(0, n, block):
        t = np.arange(start, min(n, start + block)) / SAMPLE_RATE
        tone = 0.3 * np.sin(2 * np.pi * (220 + 200 * np.sin(2 * np.pi * t / 97)) * t) * (np.sin(2 * np.pi * t / 13) > 0)
        out[start : start + len(t)] = 0.05 * rng.standard_normal(len(t)) + tone
    return out


def reset_peak() -> bool:
    """Reset this process's peak RSS (VmHWM) to its current RSS; False where the kernel refuses."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """VmHWM of this process in MB (the peak since the last reset), or ru_maxrss where /proc has none."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(args) -> dict:
    """One duration, in this process: the row of measurements (see the module docstring)."""
    import torch

    from segprune.audio import Audio
    from segprune.bench.presets import build
    from segprune.comparison import Setting, encode_clip, prepare
    from segprune.models.musicflamingo import AudioFlamingoNextLM
    from segprune.timing import interleaved

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"

    def gpu_reset():
        if cuda:
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)

    def gpu_peak():
        return round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if cuda else None

    lm = build(AudioFlamingoNextLM, args.preset, device, getattr(torch, args.dtype))
    row = {"minutes": args.child, "preset": args.preset, "device": str(device), "dtype": args.dtype}
    row["model_rss_mb"] = round(peak_rss_mb(), 1)
    audio = Audio(synthetic_clip(args.child))
    resettable = reset_peak()
    gpu_reset()
    start = time.perf_counter()
    clip = encode_clip(lm, audio, "Describe the audio in detail.", max_new_tokens=1)
    row.update(
        n=clip.tokens.n,
        encode_s=round(time.perf_counter() - start, 2),
        encoder_ms=round(clip.tokens.encoder_ms, 1),
        scoring_ms=round(clip.tokens.scoring_ms, 1),
        encode_peak_rss_mb=round(peak_rss_mb(), 1),
        encode_peak_gpu_mb=gpu_peak(),
        peak_reset=resettable,
    )
    row["keeps"] = []
    for keep in args.keep:
        reset_peak()
        gpu_reset()
        (variant,) = prepare(lm, clip, [Setting("segmentwise", keep)], full=False)
        x = variant.inputs
        samples = interleaved({"prefill": lambda x=x: lm.prefill(x)}, args.repeats, device, warmup=1)
        row["keeps"].append(
            {
                "keep": keep,
                "k": variant.selection.k,
                "prompt_tokens": x.prompt_tokens,
                "prefill_ms": round(samples["prefill"].median, 1),
                "prefill_ms_min": round(samples["prefill"].min, 1),
                "peak_rss_mb": round(peak_rss_mb(), 1),
                "peak_gpu_mb": gpu_peak(),
            }
        )
        del variant, x
    # the peak of the whole process (ru_maxrss follows the resets too, so the phases' peaks it is)
    row["process_peak_rss_mb"] = max(
        [row["model_rss_mb"], row["encode_peak_rss_mb"]] + [k["peak_rss_mb"] for k in row["keeps"]]
    )
    return row


def table(rows: list[dict]) -> str:
    keeps = [k["keep"] for k in rows[0]["keeps"]]
    gpu = rows[0]["device"].startswith("cuda")
    head = ["min", "N", "encode s", "encode peak RSS MB"] + (["encode peak GPU MB"] if gpu else [])
    for keep in keeps:
        head += [f"K @ {keep:g}", f"prefill ms @ {keep:g}", f"peak RSS MB @ {keep:g}"]
        head += [f"peak GPU MB @ {keep:g}"] if gpu else []
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [f"{r['minutes']:g}", f"{r['n']:,}", f"{r['encode_s']:.1f}", f"{r['encode_peak_rss_mb']:.0f}"]
        cells += [f"{r['encode_peak_gpu_mb']:.0f}"] if gpu else []
        for k in r["keeps"]:
            cells += [f"{k['k']:,}", f"{k['prefill_ms']:.1f}", f"{k['peak_rss_mb']:.0f}"]
            cells += [f"{k['peak_gpu_mb']:.0f}"] if gpu else []
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, nargs="+", default=MINUTES)
    p.add_argument("--keep", type=float, nargs="+", default=KEEP)
    p.add_argument(
        "--preset", default="tiny", help="tiny (default) or full (segprune/presets/full-audio-flamingo-next.json)"
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch threads on the CPU (default 1)")
    p.add_argument("--out", help="write the rows as JSON here")
    p.add_argument("--write-wav", help="only write a synthetic clip of --minutes (the first) to this WAV and stop")
    p.add_argument("--child", type=float, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    if args.write_wav:
        import soundfile

        soundfile.write(args.write_wav, synthetic_clip(args.minutes[0]), SAMPLE_RATE, subtype="PCM_16")
        return 0
    if args.child is not None:
        print(json.dumps(child(args)))
        return 0
    rows = []
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    for minutes in args.minutes:
        own = ["--child", str(minutes), "--keep", *map(str, args.keep), "--preset", args.preset]
        own += ["--device", args.device, "--dtype", args.dtype, "--repeats", str(args.repeats)]
        own += ["--threads", str(args.threads)]
        out = subprocess.run([sys.executable, __file__, *own], capture_output=True, text=True, env=env, check=False)
        if out.returncode:
            sys.stderr.write(out.stderr)
            return out.returncode
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"[long] {minutes:g} min: {json.dumps(rows[-1])}", file=sys.stderr, flush=True)
        if args.out:
            Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
