"""Helpers for the app tests: import app.py, serve it in-process on a free port, read its plots."""

from __future__ import annotations

import base64
import json
import os
import socket
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np

os.environ.setdefault("GRADIO_NUM_PORTS", "1")  # read when gradio is imported: a busy port fails, never moves

ROOT = Path(__file__).resolve().parents[1]


def import_app():
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import app

    return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served(lm, fallback_reason: str | None = None, repeats: int = 1, limits=None):
    """The demo for `lm` (within `limits`, default app.Limits()) on http://127.0.0.1:PORT/ for the
    duration of the block."""
    app = import_app()
    demo = app.build_demo(lm, fallback_reason, repeats=repeats, limits=limits)
    port = free_port()
    demo.launch(
        server_name="127.0.0.1",
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
        ssr_mode=False,
        **app.launch_options(limits),
    )
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


RUN_OUTPUTS = [  # what /run returns, in order (the session state is not part of the API)
    "summary",
    "full_text",
    "full_stats",
    "pruned_text",
    "pruned_stats",
    "plot",
    "details",
    "table",
    "listen",
    "status",
    "methods_plot",
]
SELECT_OUTPUTS = ["plot", "listen", "status", "check", "summary", "pruned_text", "pruned_stats", "details"]


def named(out, names=RUN_OUTPUTS) -> dict:
    """An endpoint's outputs (gradio_client's tuple, or the request function's with its session
    last) by name."""
    return dict(zip(names, out))


def plotly_array(value) -> np.ndarray:
    """A plotly JSON array: a list, or plotly >= 6's {"dtype", "bdata" (base64), "shape"}."""
    if isinstance(value, dict) and "bdata" in value:
        out = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        if "shape" in value:
            out = out.reshape([int(n) for n in str(value["shape"]).split(",")])
        return out
    return np.asarray(value, dtype=float)


def figure_dict(plot_output) -> dict:
    """gradio_client's gr.Plot output ({"type": "plotly", "plot": JSON text}) as a dict."""
    assert isinstance(plot_output, dict) and plot_output.get("type") == "plotly", plot_output
    plot = plot_output["plot"]
    return json.loads(plot) if isinstance(plot, str) else plot


def marker_traces(fig: dict) -> dict[str, dict]:
    """The plot's token marker traces by legend group ("kept", "dropped")."""
    return {t["legendgroup"]: t for t in fig["data"] if t.get("mode") == "markers"}


def kept_indices(fig: dict) -> list[int]:
    """The token indices of the kept markers (column 0 of their customdata rows)."""
    kept = marker_traces(fig)["kept"]
    custom = plotly_array(kept["customdata"])
    return sorted(int(i) for i in custom.reshape(len(plotly_array(kept["x"])), -1)[:, 0])


def shapes_named(fig: dict, name: str) -> list[dict]:
    return [s for s in fig["layout"].get("shapes", []) if s.get("name") == name]


def no_nan_in_figure(fig: dict) -> None:
    """Every number of the plot is finite, except the gaps (every third point) that separate the
    waveform's vertical strokes."""
    for trace in fig["data"]:
        for axis in ("x", "y", "customdata"):
            if axis not in trace:
                continue
            values = plotly_array(trace[axis]).astype(float).reshape(-1)
            if trace.get("mode") == "lines" and trace.get("connectgaps") is False:
                values = values.reshape(-1, 3)[:, :2]
            assert np.all(np.isfinite(values)), (trace.get("name"), axis)
    layout = json.dumps(fig["layout"])  # a float NaN or infinity would be written as a bare token
    assert "NaN" not in layout and "Infinity" not in layout


def no_nan_in_text(*texts: str) -> None:
    """No readout shows a number as nan or inf."""
    for text in texts:
        words = text.lower().replace("*", " ").replace("(", " ").split()
        assert "nan" not in words and "inf" not in words, text


def one_sentence(message: str, *needles: str) -> None:
    """`message` is one plain sentence (no traceback, one line, a full stop) holding every needle."""
    assert "Traceback" not in message and "\n" not in message.strip(), message
    assert message.strip().endswith("."), message
    for needle in needles:
        assert needle in message, (needle, message)


# --------------------------------------------------------------------------- hand-made comparisons


class FakeModel:
    """What the words read of a model: its name, key, device, limits and family (an LLM unless
    `encoder_decoder`)."""

    def __init__(self, encoder_decoder: bool = False, random_weights: bool = False):
        import torch

        self.name = self.key = "whisper-test" if encoder_decoder else "test-llm"
        self.device, self.dtype = torch.device("cpu"), torch.float32
        self.max_seconds, self.window_seconds = 30.0, 30.0
        self.token_duration = 0.02 if encoder_decoder else 0.04
        self.uses_prompt = not encoder_decoder
        self.random_weights = random_weights
        self.model = type("Model", (), {"config": type("Config", (), {"is_encoder_decoder": encoder_decoder})()})()


def samples_around(median_ms: float, spread: float = 0.01, count: int = 9):
    """Timing samples with this median and a small symmetric spread (± spread x median)."""
    from segprune.timing import Samples

    offsets = np.linspace(-spread, spread, count)
    return Samples([float(median_ms * (1 + o)) for o in offsets])


def made_comparison(
    full_ms: float = 40.0,
    pruned_ms: float = 10.0,
    n: int = 250,
    k: int = 52,
    text_tokens: int = 48,
    random_weights: bool = False,
    encoder_ms: float = 300.0,
    scoring_ms: float = 12.0,
    spread: float = 0.01,
    full_text: str = "a dog barks twice and a car passes",
    pruned_text: str = "a dog barks and a car passes by",
):
    """A Comparison made by hand: N tokens of 40 ms (one 10 s window), the full prefill timed at
    `full_ms` and a Top-K variant keeping K at `pruned_ms` (medians, ± `spread`)."""
    import torch

    from segprune.comparison import Comparison, PrunedRun, Run, Setting
    from segprune.methods import Selection
    from segprune.models.types import AudioTokens

    tokens = AudioTokens(
        embeddings=torch.zeros(n, 4),
        scores=np.linspace(0.5, 1.5, n),
        window_starts=np.array([0]),
        token_duration=0.04,
        window_seconds=30.0,
        encoder_ms=encoder_ms,
        scoring_ms=scoring_ms,
        silent=np.zeros(n, dtype=bool),
    )
    full = Run(full_text, [1] * 5, text_tokens + n, n, samples_around(full_ms, spread), 90.0, 8.0)
    pruned = Run(pruned_text, [2] * 5, text_tokens + k, k, samples_around(pruned_ms, spread), 60.0, 7.0)
    selection = Selection(np.arange(n - k, n), n)
    p = PrunedRun(Setting("topk", k / n), selection, 0.05, pruned)
    return Comparison("test-llm", random_weights, "Describe.", n * 0.04, 0.0, tokens, full, [p])
