"""Gradio pieces of the demo that answer with sentences: components that hand the request
function what the visitor sent (so that `segprune.request` can answer a bad value with its one
sentence), an audio input that refuses what is not an upload in words, a listening-track output
that writes lossless FLAC, and a Blocks page that turns Gradio's own refusals before the request
function (a server path, malformed file data, too few values) into sentences.

What Gradio does not let us word: a file over the upload limit is refused by the server with HTTP
413 before any Python of ours runs (gradio_client and the page refuse it first, with Gradio's own
message); a full queue answers with Gradio's "queue is full" message; a request body that is not
JSON is refused by FastAPI (HTTP 422).

Imports gradio: only `app.py` imports this module, inside its functions.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import gradio as gr
import numpy as np
import pydantic
from gradio.exceptions import InvalidPathError

from . import listen

UPLOAD_ONLY = "The audio must be a file uploaded to this page (or a recording made on it)"
SERVER_PATH = f"{UPLOAD_ONLY}; this demo reads none of its server's own files."
NO_URLS = f"{UPLOAD_ONLY}; this demo does not fetch URLs."
MALFORMED = (
    f"{UPLOAD_ONLY}: the request's audio field must be the file data that /gradio_api/upload returned, "
    "and it was something else."
)


class Number(gr.Number):
    """gr.Number whose value reaches the request function as it came (any JSON value), so that a
    value out of range is refused with the README's sentence instead of Gradio's bounds message.
    Its page box never clamps: what the visitor typed is what is checked."""

    is_template = True  # drawn by the frontend as a plain number box

    def preprocess(self, payload):
        return payload


class Radio(gr.Radio):
    """gr.Radio whose value reaches the request function as it came (an unknown choice gets our sentence)."""

    is_template = True

    def preprocess(self, payload):
        return payload


class AudioInput(gr.Audio):
    """gr.Audio (type "filepath") that refuses, in one sentence, what is not an upload: a URL is
    never fetched, and Gradio's own preprocessing errors become sentences."""

    is_template = True

    async def async_move_resource_to_block_cache(self, url_or_file_path):
        if url_or_file_path is not None and str(url_or_file_path).lower().startswith(("http://", "https://")):
            raise gr.Error(NO_URLS, print_exception=False)
        return await super().async_move_resource_to_block_cache(url_or_file_path)

    def preprocess(self, payload):
        try:
            return super().preprocess(payload)
        except gr.Error:
            raise
        except (ValueError, TypeError, OSError, AttributeError):
            raise gr.Error(MALFORMED, print_exception=False) from None


class ListeningTrack(gr.Audio):
    """An audio output for a (sample_rate, int16 samples [n]) pair, written as 16-bit FLAC into
    Gradio's cache under its content hash: lossless (a silenced span stays exactly silent), at
    its own level (gr.Audio would normalise a numpy array by its peak), and a 30-minute track with
    its dropped spans silenced is about a quarter of the WAV's size."""

    is_template = True

    def postprocess(self, value):
        if isinstance(value, tuple):
            rate, samples = value
            data = listen.flac_bytes(np.asarray(samples), int(rate))
            folder = Path(self.GRADIO_CACHE) / "segprune-listen"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{hashlib.sha256(data).hexdigest()[:24]}.flac"
            if not path.exists():
                path.write_bytes(data)
            value = str(path)
        return super().postprocess(value)


class Page(gr.Blocks):
    """gr.Blocks whose refusals before the request function runs are sentences (gr.Error): a
    server path instead of an upload, malformed file data, fewer values than the endpoint takes.
    A raw HTTP client may leave out the trailing session-state slot (gradio_client fills it in)."""

    async def preprocess_data(self, block_fn, inputs, state, explicit_call=False):
        values = [b for b in block_fn.inputs if not b.stateful]
        tail = len(block_fn.inputs) - next(
            (i + 1 for i in reversed(range(len(block_fn.inputs))) if not block_fn.inputs[i].stateful), 0
        )
        if tail and len(inputs) == len(block_fn.inputs) - tail:  # a raw client may leave out the session's slot
            inputs = [*inputs, *([None] * tail)]
        if len(inputs) < len(block_fn.inputs):
            names = ", ".join(getattr(b, "label", None) or type(b).__name__ for b in values)
            raise gr.Error(
                f"This request takes {len(values)} values ({names}); it sent {len(inputs)}.", print_exception=False
            )
        try:
            return await super().preprocess_data(block_fn, inputs, state, explicit_call)
        except InvalidPathError:
            raise gr.Error(SERVER_PATH, print_exception=False) from None
        except (pydantic.ValidationError, TypeError):
            raise gr.Error(MALFORMED, print_exception=False) from None


__all__ = ["MALFORMED", "NO_URLS", "SERVER_PATH", "AudioInput", "ListeningTrack", "Number", "Page", "Radio"]
