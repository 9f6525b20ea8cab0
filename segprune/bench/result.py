"""What `segprune bench` measures, as plain dataclasses: this module IS the JSON schema.

`--json FILE` writes `Result.to_dict()`: one object with the keys of `Result` below, each list
holding objects with the keys of its row class. Times are in ms, memory in MiB, audio in
seconds. Medians and minima are over `options.repeats` timed runs after `options.warmup`
untimed rounds, with the compared functions interleaved in one process (`segprune.timing`).
`schema` names this layout ("segprune-bench/4"; 3 added the prefill spread and the speedup's interval
and verdict, 4 the selection rows' width, CPU time and arithmetic floor); a change of any key changes the number.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

SCHEMA = "segprune-bench/4"
READABLE = ("segprune-bench/3", SCHEMA)  # 3 reads as 4 with the new selection fields left empty
SELECTION_N = [15_000, 45_000]  # N of the synthetic selection test: 10 and 30 minutes of audio at 25 tokens/s
SELECTION_KEEP = 0.25  # its keep ratio
SELECTION_SLOW_MS = 500.0  # a selection slower than this once is timed SELECTION_SLOW_REPEATS times, alone
SELECTION_SLOW_REPEATS = 3
RANDOM_WEIGHTS_NOTE = (
    "RANDOM WEIGHTS: the model has the real architecture but random weights; token counts, "
    "timings and memory are real, the scores and any generated text are meaningless."
)


@dataclass
class PrefillRow:
    """The language model's prefill on one clip, full vs pruned to K tokens, timed interleaved."""

    seconds: float  # audio length
    n: int  # N, audio tokens of the clip
    keep_ratio: float  # fraction kept; 1.0 is the full model
    k: int  # K, audio tokens the pruned prompt keeps
    method: str  # whose kept tokens were prefilled (the cost depends on K only)
    prompt_tokens_full: int  # text + N
    prompt_tokens: int  # text + K
    prefill_ms: float  # median
    prefill_ms_min: float
    full_prefill_ms: float  # the full model's median in the same interleaved loop
    full_prefill_ms_min: float
    speedup: float  # full_prefill_ms / prefill_ms (ratio of medians)
    bound: float  # ideal speedup from token counts: prompt_tokens_full / prompt_tokens
    of_bound: float  # speedup / bound
    prefill_cpu_ms: float | None  # median process CPU time of one prefill (CPU devices; else None)
    cpu_speedup: float | None  # full / pruned median CPU time: robust to other processes on the machine
    decode_ms_per_token: float | None  # mean greedy step after the prefill (None: not measured)
    peak_mb: float  # memory one prefill adds at its peak (see Result.machine["memory"])
    prefill_ms_spread: list[float] | None = None  # [q1, q3] of the timed prefills
    speedup_interval: list[float] | None = None  # [q1 full / q3 pruned, q3 full / q1 pruned] (timing.Speedup)
    verdict: str = ""  # "no pruning", "within noise", "faster" or "slower" (timing.speedup)
    suspect: bool = False  # speedup above the square of the token bound: noise or a measuring error


@dataclass
class EncoderRow:
    """One encoder pass (features -> embeddings + scores) with segprune's scoring hook."""

    seconds: float
    n: int
    windows: int  # 30 s encoder windows
    encode_ms: float  # median wall time of the whole pass, hook included
    encode_ms_min: float
    encoder_ms: float  # median, the hook's own time excluded
    scoring_ms: float  # median time spent inside the hook
    scoring_share: float  # median over runs of scoring_ms / encoder_ms
    peak_mb: float  # memory the pass adds at its peak
    baseline_note: str | None = None  # why this family has no output_attentions baseline, if it has none


@dataclass
class BaselineRow:
    """Scores the peers' way (eager encoder, output_attentions=True) vs segprune's hook, interleaved."""

    seconds: float
    n: int
    ours_ms: float  # median of the whole pass with the hook (SDPA encoder)
    ours_ms_min: float
    peers_ms: float  # median of the whole pass with eager attention and output_attentions
    peers_ms_min: float
    ours_peak_mb: float
    peers_peak_mb: float
    memory_ratio: float  # peers_peak_mb / ours_peak_mb
    time_ratio: float  # peers_ms / ours_ms
    max_score_diff: float  # max |peers' score - ours| over the N tokens, both on the same eager pass
    max_score_diff_backends: float  # max |peers' score - ours from the model's own (SDPA) pass|: rounding of
    # the earlier layers under another attention backend, not a difference of definition


@dataclass
class SelectionRow:
    """One selection method on one score vector (and N x H embeddings), timed interleaved.

    For the methods whose work is a matrix product's (`methods.selection_multiply_adds` > 0:
    divprune, visionzip where its window holds every target), `floor_ms` is that many multiply-adds as one float32
    product of the embeddings [N, H] with a random [H, C] matrix (C = multiply_adds / (N * H),
    in column blocks into one reused buffer), timed in the same interleaved loop: the arithmetic
    floor the method is measured against (`of_floor` = select_ms / floor_ms).
    """

    method: str
    n: int
    keep_ratio: float
    k: int
    select_ms: float  # median wall time of one selection
    select_ms_min: float
    source: str  # "clip": the clip's own scores; "synthetic": random scores of length n
    hidden: int = 0  # H of the embeddings
    repeats: int = 0  # timed runs
    select_cpu_ms: float | None = None  # median process CPU time (all threads) of one selection; None off CPU
    multiply_adds: int = 0  # the product-like work of the method (0: a few passes over N)
    floor_ms: float | None = None  # median wall time of those multiply-adds as one matrix product
    floor_cpu_ms: float | None = None
    of_floor: float | None = None  # select_ms / floor_ms


@dataclass
class ScalingFit:
    """Prefill time against audio length at one keep ratio: time ~ seconds ** exponent. The text
    part of the prompt is fixed, so against the prompt length the exponent is larger."""

    keep_ratio: float
    exponent: float | None  # least-squares slope of log(ms) on log(seconds); None below 2 lengths
    exponent_prompt: float | None  # the same against the prompt length (text tokens included)
    seconds: list[float]
    prompt_tokens: list[int]
    prefill_ms: list[float]


@dataclass
class Target:
    """One of issue 4's targets, checked on this run where it applies."""

    name: str
    value: float
    target: str  # e.g. ">= 0.90"
    met: bool
    detail: str


ROWS = {
    "prefill": PrefillRow,
    "encoder": EncoderRow,
    "baseline": BaselineRow,
    "selection": SelectionRow,
    "scaling": ScalingFit,
    "targets": Target,
}


@dataclass
class Result:
    schema: str
    note: str  # RANDOM_WEIGHTS_NOTE, or "" for real weights
    model: dict  # key, name, preset, random_weights, dtype, device, params, audio/text sizes
    machine: dict  # platform, processor, cpus, threads, torch, transformers, gpu, load, memory
    options: dict  # the run's arguments (seconds, keep, methods, repeats, warmup, ...)
    prefill: list[PrefillRow] = field(default_factory=list)
    encoder: list[EncoderRow] = field(default_factory=list)
    baseline: list[BaselineRow] = field(default_factory=list)
    selection: list[SelectionRow] = field(default_factory=list)
    scaling: list[ScalingFit] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Result:
        """Read back a `to_dict()` (e.g. a JSON file from a GPU run); ValueError on a schema not in READABLE."""
        if data.get("schema") not in READABLE:
            raise ValueError(f"Not a {SCHEMA} result (schema: {data.get('schema')!r}).")
        try:
            plain = {f.name: data[f.name] for f in fields(cls) if f.name not in ROWS}
            rows = {name: [row(**r) for r in data.get(name, [])] for name, row in ROWS.items()}
        except (KeyError, TypeError) as err:
            raise ValueError(f"A {SCHEMA} result with a missing or unknown field ({err}).") from None
        return cls(**plain, **rows)
