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
