"""segprune's Gradio demo: the full and the pruned model side by side on one clip.

    python app.py                          the paper's Qwen2-Audio-7B-Instruct, or the tiny offline model
    python app.py --model tiny-qwen2-audio
    python app.py --model nvidia/audio-flamingo-3-hf --port 7861

Gradio wiring only: every number and figure comes from `segprune.compare` and `segprune.plot`.
The model loads once, at start-up. Without an explicit --model the app serves the default model
where it can load and otherwise falls back to that family's tiny random-weight model, with a
banner that says why; an explicit --model never falls back.
"""

from __future__ import annotations

try:  # Hugging Face ZeroGPU: `spaces` must come before torch; elsewhere it is absent or a no-op
    import spaces
except ImportError:
    spaces = None

import argparse
import dataclasses
import json
import logging
import math
import numbers
import sys
from pathlib import Path

import gradio as gr
import torch

import segprune
from segprune.audio import ACCEPTED_FORMATS, MAX_CHANNELS, MAX_RATE, MIN_RATE, AudioError
from segprune.cli import decode_rate, truncation_notice
from segprune.methods import DEFAULT_METHOD, DEFAULT_SEGMENTS, METHODS, get_method, keep_count
from segprune.models import DEFAULT_MODEL, ModelLoadError, default_device, registry
from segprune.plot import token_figure

log = logging.getLogger("segprune.app")

ASSETS = Path(__file__).resolve().parent / "assets"
PROMPTS = {
    "Captioning": "Describe the audio in detail.",
    "Question answering": "What sound events occur in this clip, and in what order?",
    "Transcription": "Transcribe the speech in this audio.",
}
DEFAULT_KEEP = 0.25
TABLE_HEADERS = ["method", "K kept", "prompt tokens", "prefill ms", "speedup", "answer"]


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one request may ask of the demo. The defaults suit a public Space; `python app.py
    --help` lists the flags that change them, and the page shows them under the audio input."""

    max_seconds: float = 120.0  # audio read per clip (and never more than the model takes); the rest is cut
    max_upload_mb: float = 50.0  # larger uploads are refused before they are read
    max_new_tokens: int = 256  # the longest answer a visitor can ask for
    max_queue: int = 16  # requests waiting for the model; more are turned away
    max_prompt_chars: int = 2000
    concurrency: int = 1  # requests on the model at once (one at a time on one GPU)

    @property
    def max_bytes(self) -> int:
        return int(self.max_upload_mb * 2**20)

    def seconds_for(self, lm) -> float:
        """The clip length actually used: this demo's limit or the model's own, whichever is smaller."""
        return min(self.max_seconds, lm.max_seconds)

    def line(self, lm) -> str:
        """The one line under the audio input that says what is accepted."""
        return (
            f"Accepted: {ACCEPTED_FORMATS} files up to {self.max_upload_mb:g} MB, at {MIN_RATE // 1000} to "
            f"{MAX_RATE // 1000} kHz with up to {MAX_CHANNELS} channels (resampled to 16 kHz mono); the first "
            f"{self.seconds_for(lm):g} s of a clip are used. "
            f"Answers up to {self.max_new_tokens} new tokens, prompts up to {self.max_prompt_chars} characters; "
            f"{self.max_queue} requests can wait in the queue."
        )


CSS = """
#banner { border-left: 6px solid #e8710a; background: #fff4e5; padding: 10px 16px; border-radius: 6px; }
#banner.info { border-left-color: #3f51b5; background: #eef0fb; }
#banner p { margin: 2px 0; }
#summary { font-size: 1.05em; }
#summary h2 { margin: 0 0 4px 0; }
.stats p { margin: 0; }
"""


# --------------------------------------------------------------------------- model at start-up


def hub_problem(hub_id: str, timeout: float):
    """(model info, None) if the Hub answers about `hub_id` within `timeout` seconds, or (None, why
    not) as a phrase; (None, None) when the Hub does not answer but the model is in the local cache.

    One request with a short timeout, so that an unreachable Hub costs seconds rather than the
    half minute of download retries that `from_pretrained` spends before it gives up."""
    from huggingface_hub import HfApi, try_to_load_from_cache

    try:
        return HfApi().model_info(hub_id, timeout=timeout), None
    except Exception as err:  # noqa: BLE001 - offline mode, DNS, timeouts, HTTP errors: none of them loads it
        if isinstance(try_to_load_from_cache(hub_id, "config.json"), str):
            return None, None
        reason = _first_line(err)
        return None, f"the Hugging Face Hub could not be reached in {timeout:g} s ({reason}) and it is not cached here"


def memory_problem(info, device: torch.device, dtype: torch.dtype | None):
    """Why the model of hub `info` does not fit in the free memory of `device` (a phrase), or None."""
    params = getattr(getattr(info, "safetensors", None), "total", None)
    if not params:
        return None
    need = params * torch.finfo(dtype or torch.bfloat16).bits / 8 * 1.1  # weights + 10 % for activations
    try:
        if device.type == "cuda":
            free, where = torch.cuda.mem_get_info(device)[0], f"free GPU memory on {device}"
        else:
            import psutil

            free, where = psutil.virtual_memory().available, "free RAM and no GPU"
    except Exception:  # noqa: BLE001 - e.g. ZeroGPU has no device at start-up: unknown, so try to load
        return None
    if free < need:
        return f"it needs about {need / 1e9:.0f} GB and this machine has {free / 1e9:.0f} GB of {where}"
    return None


def load_for_demo(
    model: str,
    explicit: bool,
    device: str | None = None,
    dtype: torch.dtype | None = None,
    hub_timeout: float = 5.0,
    offline: bool = False,
):
    """Load the model to serve: (lm, fallback_reason). fallback_reason is None unless the default
    model could not be served and its tiny random-weight twin is served instead.

    An explicit model is loaded as asked or raises ModelLoadError (one sentence), quickly when the
    Hub is unreachable."""
    spec = registry().get(model)
    if spec is not None and spec.tiny:
        return segprune.load_model(model, device=device, dtype=dtype), None
    hub_id = spec.hub_id if spec is not None else model
    if explicit or spec is None:
        if not Path(model).is_dir() and not offline:
            _, problem = hub_problem(hub_id, hub_timeout)
            if problem:
                tiny = " or ".join(k for k, s in registry().items() if s.tiny)
                raise ModelLoadError(f"Could not load '{hub_id}': {problem}; offline, use --model {tiny}.")
        return segprune.load_model(model, device=device, dtype=dtype), None
    target = torch.device(device) if device else default_device()
    if offline:
        reason = "the app was started with --offline"
    else:
        info, reason = hub_problem(hub_id, hub_timeout)
        reason = reason or memory_problem(info, target, dtype)
    if reason is None:
        try:
            return segprune.load_model(model, device=device, dtype=dtype), None
        except (ModelLoadError, MemoryError, torch.OutOfMemoryError) as err:
            reason = _first_line(err)
    fallback = f"tiny-{spec.family.key}"
    log.warning("serving %s instead of %s: %s", fallback, model, reason)
    return segprune.load_model(fallback, device=device), f"{hub_id} could not be loaded: {reason}"


def _first_line(err: Exception) -> str:
    lines = str(err).strip().splitlines()
    return lines[0][:200] if lines else type(err).__name__


def banner(lm, fallback_reason: str | None) -> tuple[str, list[str]]:
    """The banner's Markdown and CSS classes: a warning for random weights, else the model line."""
    where = f"{lm.device.type}, {str(lm.dtype).removeprefix('torch.')}"
    if not lm.random_weights:
        return f"**Model:** {lm.name} ({where})", ["info"]
    why = (
        f"the default model {fallback_reason}."
        if fallback_reason
        else f"it was chosen explicitly (`--model {lm.name}`)."
    )
    text = (
        f"### ⚠️ Offline demo model with random weights: {lm.name}\n"
        f"**Its answers are meaningless text.** Which audio tokens are kept, the token counts and the timings "
        f"are real.\n\n"
        f"Why this model: {why} Run `python app.py --model qwen2-audio` on a GPU machine with Hub access for "
        f"real answers."
    )
    return text, ["warn"]


# --------------------------------------------------------------------------- readouts


def readouts(c, lm, audio=None, max_seconds: float | None = None) -> dict:
    """Plain-text readouts of a Comparison for pruned variant 0 (the chosen method). audio: the
    loaded clip, to say what it was converted from; max_seconds: the demo's limit on clip length."""
    p = c.pruned[0]
    method = get_method(p.setting.method)
    s_eff = f", S = {len(p.selection.segment_bounds) - 1}" if p.selection.segment_bounds is not None else ""
    n, k = c.tokens.n, p.selection.k
    summary = (
        f"## Pruned prefill: {_faster(c.speedup(p))} ({c.full.prefill_ms:.1f} ms → {p.run.prefill_ms:.1f} ms)\n"
        f"Kept **K = {k}** of **N = {n}** audio tokens (**{100 * k / n:.1f} %**) with {method.label}{s_eff}. "
        f"Prompt {c.full.prompt_tokens} → {p.run.prompt_tokens} tokens: the token count alone bounds the "
        f"speedup at {c.ideal_speedup(p):.2f}×."
    )
    windows = len(c.tokens.window_starts)
    facts = [
        f"{c.audio_seconds:.1f} s of audio → N = {n} tokens in {windows} encoder window{'s' * (windows > 1)}",
        f"encoder {c.tokens.encoder_ms:.1f} ms (one pass for both models)",
        f"scoring hook {c.tokens.scoring_ms:.1f} ms",
        f"selection {p.select_ms:.2f} ms",
        f"decoding {decode_rate(c.full, p.run)} (full / pruned)",
        f"prefill times are medians of {c.timing_repeats} interleaved runs on {lm.device.type}",
    ]
    if audio is not None and (audio.source_rate != audio.sample_rate or audio.source_channels > 1):
        channels = f", {audio.source_channels} channels" if audio.source_channels > 1 else ""
        facts.insert(1, f"input {audio.source_rate / 1000:g} kHz{channels} → {audio.sample_rate / 1000:g} kHz mono")
    if c.tokens.silent is not None and c.tokens.silent.any():
        quiet = int(c.tokens.silent.sum())
        kept_quiet = int(c.tokens.silent[p.selection.indices].sum())
        how = "dropped first" if p.setting.drop_silent else "treated like the others"
        facts.append(f"{quiet} silent tokens (shaded), {how}: {kept_quiet} kept")
    details = [" · ".join(facts)]
    if c.truncated_seconds > 0:
        details.append(f"⚠️ **Truncated:** {truncation_notice(c, lm, max_seconds)}")
    return {
        "full_text": c.full.text or "(empty answer)",
        "pruned_text": p.run.text or "(empty answer)",
        "full_stats": f"**{c.full.prompt_tokens}** prompt tokens ({n} audio) · prefill **{c.full.prefill_ms:.1f} ms**",
        "pruned_stats": (
            f"**{p.run.prompt_tokens}** prompt tokens ({k} audio) · prefill **{p.run.prefill_ms:.1f} ms** "
            f"· {_faster(c.speedup(p))}"
        ),
        "summary": summary,
        "details": "\n\n".join(details),
    }


def _faster(speedup: float) -> str:
    return f"{speedup:.2f}× faster" if speedup >= 1 else f"{1 / speedup:.2f}× slower"


def table_rows(c) -> list[list]:
    """One row for the full model, then one per pruned variant, in the order they ran (TABLE_HEADERS)."""
    rows = [
        ["Full model (no pruning)", c.tokens.n, c.full.prompt_tokens, round(c.full.prefill_ms, 1), 1.0, c.full.text]
    ]
    for p in c.pruned:
        label = get_method(p.setting.method).label
        if p.selection.segment_bounds is not None:
            label += f" (S = {len(p.selection.segment_bounds) - 1})"
        speedup = round(c.speedup(p), 2)
        rows.append([label, p.selection.k, p.run.prompt_tokens, round(p.run.prefill_ms, 1), speedup, p.run.text])
    return rows


def examples() -> list[list[str]]:
    listing = ASSETS / "examples.json"
    if not listing.exists():
        return []
    return [[str(ASSETS / e["file"]), e["prompt"]] for e in json.loads(listing.read_text())]


# --------------------------------------------------------------------------- the app


def _gpu(duration):
    """`spaces.GPU(duration=...)` on ZeroGPU; elsewhere the function unchanged."""
    return spaces.GPU(duration=duration) if spaces is not None else (lambda fn: fn)


def _gpu_seconds(audio, prompt, settings, max_new_tokens) -> int:
    return 30 + 10 * len(settings) + max_new_tokens // 8


class Slider(gr.Slider):
    """gr.Slider that hands its value to the request function as it came: Gradio's own range check
    fails with a generic error on a value that is not a number (through the API), and
    `check_request` answers every bad value with one plain sentence instead."""

    is_template = True  # drawn by the frontend as a plain slider

    def preprocess(self, payload):
        return payload


class Radio(gr.Radio):
    """gr.Radio whose value reaches `check_request` unchecked (see `Slider`)."""

    is_template = True

    def preprocess(self, payload):
        return payload


def check_request(method, keep, segments, prompt, max_new_tokens, compare_all, limits: Limits):
    """The request's settings, validated: (method, keep, segments, prompt, max_new_tokens, compare_all).
    Raises gr.Error with one sentence that says what is wrong and what is accepted."""
    if not isinstance(method, str) or method not in METHODS:
        raise gr.Error(f"Unknown pruning method {_shown(method)}; choose one of {', '.join(METHODS)}.")
    keep_text = "a number in (0, 1], the share of audio tokens kept"
    if not _is_number(keep):
        raise gr.Error(f"The keep ratio must be {keep_text}; got {_shown(keep)}.")
    try:
        keep_count(1, keep)
    except ValueError:
        raise gr.Error(f"The keep ratio must be {keep_text}; got {_shown(keep)}.") from None
    if not _is_number(segments) or segments != int(segments) or segments < 1:
        raise gr.Error(
            f"S (segments) must be a whole number of at least 1 (more than the kept tokens is allowed: "
            f"S = min(S, K) is used); got {_shown(segments)}."
        )
    if not _is_number(max_new_tokens) or max_new_tokens != int(max_new_tokens):
        max_new_tokens = None
    if max_new_tokens is None or not 1 <= max_new_tokens <= limits.max_new_tokens:
        raise gr.Error(f"Max new tokens must be a whole number from 1 to {limits.max_new_tokens}.")
    if not isinstance(prompt, str) or not prompt.strip():
        raise gr.Error("The prompt is empty: ask the model something about the audio.")
    if len(prompt) > limits.max_prompt_chars:
        raise gr.Error(
            f"The prompt has {len(prompt)} characters; this demo accepts prompts of up to "
            f"{limits.max_prompt_chars} characters."
        )
    if compare_all not in (None, True, False):
        raise gr.Error(f"'Compare all methods' must be true or false; got {_shown(compare_all)}.")
    return method, float(keep), int(segments), prompt.strip(), int(max_new_tokens), bool(compare_all)


def _shown(value) -> str:
    """A visitor's value as an error message quotes it: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def make_request(lm, limits: Limits | None = None, repeats: int = 3):
    """The function behind the Run button: (audio path, method, keep, segments, prompt, max new
    tokens, compare all, silent tokens first out) -> the page's outputs, or gr.Error with one plain sentence. Every request
    has its own state (the model's hooks live only inside its own encoder pass); nothing is kept
    between requests."""
    limits = limits or Limits()
    max_seconds = limits.seconds_for(lm)

    @_gpu(duration=_gpu_seconds)
    def infer(audio, prompt, settings, max_new_tokens):
        c = segprune.compare(lm, audio, prompt, settings, max_new_tokens=max_new_tokens, repeats=repeats)
        # Hand back host tensors only (ZeroGPU returns results from another process).
        c.tokens.embeddings = c.tokens.embeddings.cpu()
        c.pruned = [
            dataclasses.replace(p, selection=dataclasses.replace(p.selection, embeddings=None)) for p in c.pruned
        ]
        return c

    def run(
        audio_path,
        method,
        keep,
        segments,
        prompt,
        max_new_tokens,
        compare_all,
        drop_silent=False,
        progress=gr.Progress(),  # noqa: B008 - Gradio's idiom: it injects the tracker
    ):
        if not audio_path:
            raise gr.Error("No audio yet: record with the microphone, upload a file or click an example first.")
        if not isinstance(audio_path, (str, Path)):
            raise gr.Error("The audio must be an uploaded file or a recording.")
        method, keep, segments, prompt, max_new_tokens, compare_all = check_request(
            method, keep, segments, prompt, max_new_tokens, compare_all, limits
        )
        try:  # never more than the limits: a huge upload is refused by size, a long one read in part
            audio = segprune.load_audio(audio_path, max_seconds=max_seconds, max_bytes=limits.max_bytes)
        except AudioError as err:
            raise gr.Error(str(err)) from None
        if audio.truncated_seconds > 0:
            gr.Warning(
                f"The clip is {audio.seconds + audio.truncated_seconds:.1f} s long; only its first "
                f"{max_seconds:g} s are used."
            )
        if drop_silent not in (None, True, False):
            raise gr.Error(f"'Silent tokens first out' must be true or false; got {_shown(drop_silent)}.")
        names = [method] + ([m for m in METHODS if m != method] if compare_all else [])
        settings = [segprune.Setting(m, keep, segments, drop_silent=bool(drop_silent)) for m in names]
        progress(0.1, desc="Encoding the clip once, then running the full and the pruned model")
        try:
            c = infer(audio, prompt, settings, max_new_tokens)
        except gr.Error:
            raise
        except (AudioError, ValueError) as err:
            raise gr.Error(str(err)) from None
        except Exception:
            log.exception("request failed")
            raise gr.Error("The model failed on this request; the server log has the details.") from None
        progress(0.95, desc="Drawing")
        r = readouts(c, lm, audio, max_seconds)
        figure = token_figure(c, 0, audio.samples, audio.sample_rate)
        table = table_rows(c) if compare_all else None
        return (
            r["summary"],
            r["full_text"],
            r["full_stats"],
            r["pruned_text"],
            r["pruned_stats"],
            figure,
            r["details"],
            table,
        )

    return run


def build_demo(lm, fallback_reason: str | None = None, repeats: int = 3, limits: Limits | None = None) -> gr.Blocks:
    """The Blocks app serving `lm` (loaded once by the caller) within `limits` (default `Limits()`):
    `limits.concurrency` requests on the model at a time, at most `limits.max_queue` waiting.
    Launch it with `demo.launch(**launch_options(limits))`."""
    limits = limits or Limits()
    run = make_request(lm, limits, repeats)

    banner_text, banner_classes = banner(lm, fallback_reason)
    noun = "output (random weights: meaningless text)" if lm.random_weights else "answer"
    method_choices = [(m.label, m.name) for m in METHODS.values()]

    with gr.Blocks(title="segprune: audio token pruning") as demo:
        gr.Markdown(banner_text, elem_id="banner", elem_classes=banner_classes)
        gr.Markdown(
            "# segprune: the language model hears only K of the audio tokens\n"
            "Every audio token (25 per second for Qwen2-Audio and Audio Flamingo 3) is scored by the attention it receives in the audio encoder; the "
            "pruned model prefills only the K kept ones. Default method: Segmentwise Top-K (Gibier et al., "
            "*Segmentwise Pruning in Audio-Language Models*, arXiv 2511.14293)."
        )
        with gr.Row():
            with gr.Column(scale=2, min_width=320):
                audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Audio clip", elem_id="audio")
                gr.Markdown(limits.line(lm), elem_id="limits", elem_classes=["stats"])
                with gr.Group():
                    preset = gr.Radio(list(PROMPTS), value="Captioning", label="Prompt preset", elem_id="preset")
                    prompt = gr.Textbox(PROMPTS["Captioning"], label="Prompt", lines=1, max_lines=4, elem_id="prompt")
                method = Radio(
                    method_choices,
                    value=DEFAULT_METHOD,
                    label="Pruning method",
                    elem_id="method",
                    info=METHODS[DEFAULT_METHOD].summary,
                )
                with gr.Row():
                    keep = Slider(
                        0.01, 1.0, value=DEFAULT_KEEP, step=0.01, label="Keep ratio (share kept)", elem_id="keep"
                    )
                    segments = Slider(1, 50, value=DEFAULT_SEGMENTS, step=1, label="Segments S", elem_id="segments")
                with gr.Row():
                    max_new_tokens = Slider(
                        1,
                        limits.max_new_tokens,
                        value=min(64, limits.max_new_tokens),
                        step=1,
                        label="Max new tokens",
                        elem_id="max-new-tokens",
                    )
                    compare_all = gr.Checkbox(
                        False, label="Compare all methods (one encoder pass)", elem_id="compare-all"
                    )
                    drop_silent = gr.Checkbox(
                        False,
                        label="Silent tokens first out",
                        info="keep tokens of silent stretches only once all others are kept",
                        elem_id="drop-silent",
                    )
                button = gr.Button("Run", variant="primary", elem_id="run")
                if clips := examples():
                    gr.Examples(
                        clips, inputs=[audio, prompt], cache_examples=False, label="Examples (click one, then Run)"
                    )
            with gr.Column(scale=3, min_width=480):
                summary = gr.Markdown("## Pick a clip and press Run", elem_id="summary")
                with gr.Row(equal_height=True):
                    with gr.Column():
                        full_text = gr.Textbox(
                            label=f"Full model {noun}", lines=3, interactive=False, elem_id="full-text"
                        )
                        full_stats = gr.Markdown(elem_id="full-stats", elem_classes=["stats"])
                    with gr.Column():
                        pruned_text = gr.Textbox(
                            label=f"Pruned model {noun}", lines=3, interactive=False, elem_id="pruned-text"
                        )
                        pruned_stats = gr.Markdown(elem_id="pruned-stats", elem_classes=["stats"])
                plot = gr.Plot(label="What the pruned model kept", show_label=False, elem_id="plot")
                details = gr.Markdown(elem_id="details")
                table = gr.Dataframe(
                    headers=TABLE_HEADERS,
                    visible=False,
                    wrap=True,
                    column_widths=["20%", "8%", "11%", "10%", "11%", "40%"],
                    max_height=800,
                    label="All methods at this keep ratio",
                    elem_id="table",
                    interactive=False,
                )

        def show_segments(name, everything):
            return gr.Slider(visible=get_method(name).uses_segments or everything)

        ui = dict(queue=False, api_visibility="private")  # instant, never behind a model run
        method.change(lambda name: gr.Radio(info=METHODS[name].summary), method, method, **ui)
        method.change(show_segments, [method, compare_all], segments, **ui)
        compare_all.change(show_segments, [method, compare_all], segments, **ui)
        compare_all.change(lambda everything: gr.Dataframe(visible=everything), compare_all, table, **ui)
        preset.change(lambda name: PROMPTS[name], preset, prompt, **ui)
        button.click(
            run,
            [audio, method, keep, segments, prompt, max_new_tokens, compare_all, drop_silent],
            [summary, full_text, full_stats, pruned_text, pruned_stats, plot, details, table],
            api_name="run",
        )
    demo.queue(default_concurrency_limit=limits.concurrency, max_size=limits.max_queue)
    return demo


def launch_options(limits: Limits | None = None) -> dict:
    """Arguments for `demo.launch` that belong to the page (Gradio 6: theme and css go here) and to
    what it exposes: uploads over the size limit are refused by the server before anything reads
    them, and the only files served besides a visitor's own uploads are those in `assets/`. No
    public share link (`share` stays off; a Space needs none)."""
    limits = limits or Limits()
    return dict(
        theme=gr.themes.Default(),
        css=CSS,
        allowed_paths=[str(ASSETS)],
        max_file_size=limits.max_bytes,
        show_error=False,  # a failure reaches the page as our one sentence, never as a traceback
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="app.py", description=__doc__.split("\n")[0])
    keys = ", ".join(registry())
    parser.add_argument(
        "--model",
        default=None,
        help=f"registry key ({keys}), hub id or local folder; default {DEFAULT_MODEL}, falling back to its tiny twin",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    parser.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"])
    parser.add_argument(
        "--offline", action="store_true", help="do not try the Hub: serve the tiny model unless --model is given"
    )
    parser.add_argument(
        "--hub-timeout", type=float, default=5.0, help="seconds to wait for the Hub before falling back"
    )
    parser.add_argument(
        "--host", default=None, help="server address (default: Gradio's, 127.0.0.1 or $GRADIO_SERVER_NAME)"
    )
    parser.add_argument("--port", type=int, default=None, help="server port (default: Gradio's, 7860)")
    d = Limits()
    parser.add_argument(
        "--max-seconds",
        type=_positive(float),
        default=d.max_seconds,
        help=f"seconds of each clip used; longer clips are cut, with a warning (default {d.max_seconds:g}, "
        "and never more than the model takes)",
    )
    parser.add_argument(
        "--max-upload-mb", type=_positive(float), default=d.max_upload_mb, help=f"(default {d.max_upload_mb:g})"
    )
    parser.add_argument(
        "--max-new-tokens", type=_positive(int), default=d.max_new_tokens, help=f"(default {d.max_new_tokens})"
    )
    parser.add_argument(
        "--max-queue", type=_positive(int), default=d.max_queue, help=f"requests waiting (default {d.max_queue})"
    )
    parser.add_argument(
        "--concurrency",
        type=_positive(int),
        default=d.concurrency,
        help=f"requests run on the model at once (default {d.concurrency})",
    )
    args = parser.parse_args(argv)
    limits = Limits(
        max_seconds=args.max_seconds,
        max_upload_mb=args.max_upload_mb,
        max_new_tokens=args.max_new_tokens,
        max_queue=args.max_queue,
        concurrency=args.concurrency,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)

    dtype = getattr(torch, args.dtype) if args.dtype else None
    try:
        lm, reason = load_for_demo(
            args.model or DEFAULT_MODEL, args.model is not None, args.device, dtype, args.hub_timeout, args.offline
        )
    except ModelLoadError as err:
        print(f"app.py: error: {err}", file=sys.stderr)
        return 2
    log.info("serving %s on %s%s", lm.name, lm.device, f" (fallback: {reason})" if reason else "")
    demo = build_demo(lm, reason, limits=limits)
    demo.launch(server_name=args.host, server_port=args.port, **launch_options(limits))
    return 0


def _positive(kind):
    """argparse type: a number of `kind` above 0."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__} above 0, got {text!r}") from None
        if not value > 0 or not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__} above 0, got {text!r}")
        return value

    return parse


if __name__ == "__main__":
    sys.exit(main())
