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
def served(lm, fallback_reason: str | None = None, repeats: int = 1):
    """The demo for `lm` on http://127.0.0.1:PORT/ for the duration of the block."""
    app = import_app()
    demo = app.build_demo(lm, fallback_reason, repeats=repeats)
    port = free_port()
    demo.launch(
        server_name="127.0.0.1",
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
        ssr_mode=False,
        **app.launch_options(),
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
    custom = plotly_array(marker_traces(fig)["kept"]["customdata"])
    return sorted(int(i) for i in custom.reshape(-1, 4)[:, 0])


def shapes_named(fig: dict, name: str) -> list[dict]:
    return [s for s in fig["layout"].get("shapes", []) if s.get("name") == name]
