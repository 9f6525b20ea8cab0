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
import sys
from pathlib import Path

import gradio as gr
import torch

import segprune
from segprune.audio import AudioError
from segprune.cli import truncation_notice
from segprune.methods import DEFAULT_METHOD, DEFAULT_SEGMENTS, METHODS, get_method
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


def readouts(c, lm) -> dict:
    """Plain-text readouts of a Comparison for pruned variant 0 (the chosen method)."""
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
        f"decoding {c.full.decode_ms_per_token:.1f} / {p.run.decode_ms_per_token:.1f} ms per token (full / pruned)",
        f"prefill times are medians of {c.timing_repeats} interleaved runs on {lm.device.type}",
    ]
    details = [" · ".join(facts)]
    if c.truncated_seconds > 0:
        details.append(f"⚠️ **Truncated:** {truncation_notice(c, lm)}")
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


def build_demo(lm, fallback_reason: str | None = None, repeats: int = 3, max_queue: int = 16) -> gr.Blocks:
    """The Blocks app serving `lm` (loaded once by the caller). Queue: one request at a time on the
    model, at most `max_queue` waiting. Launch it with `demo.launch(**launch_options())`."""

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
        progress=gr.Progress(),  # noqa: B008 - Gradio's idiom: it injects the tracker
    ):
        if not audio_path:
            raise gr.Error("No audio yet: record with the microphone, upload a file or click an example first.")
        if not prompt or not prompt.strip():
            raise gr.Error("The prompt is empty: ask the model something about the audio.")
        try:
            audio = segprune.load_audio(audio_path)
        except AudioError as err:
            raise gr.Error(str(err)) from None
        if audio.seconds > lm.max_seconds:
            gr.Warning(
                f"The clip is {audio.seconds:.1f} s long; {lm.key} takes at most {lm.max_seconds:.0f} s, "
                f"so only the first {lm.max_seconds:.0f} s are used."
            )
        names = [method] + ([m for m in METHODS if m != method] if compare_all else [])
        settings = [segprune.Setting(m, float(keep), int(segments)) for m in names]
        progress(0.1, desc="Encoding the clip once, then running the full and the pruned model")
        try:
            c = infer(audio, prompt.strip(), settings, int(max_new_tokens))
        except gr.Error:
            raise
        except (AudioError, ValueError) as err:
            raise gr.Error(str(err)) from None
        except Exception:
            log.exception("request failed")
            raise gr.Error("The model failed on this request; the server log has the details.") from None
        progress(0.95, desc="Drawing")
        heard = audio.truncated(lm.max_seconds)
        r = readouts(c, lm)
        figure = token_figure(c, 0, heard.samples, heard.sample_rate)
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
                with gr.Group():
                    preset = gr.Radio(list(PROMPTS), value="Captioning", label="Prompt preset", elem_id="preset")
                    prompt = gr.Textbox(PROMPTS["Captioning"], label="Prompt", lines=1, max_lines=4, elem_id="prompt")
                method = gr.Radio(
                    method_choices,
                    value=DEFAULT_METHOD,
                    label="Pruning method",
                    elem_id="method",
                    info=METHODS[DEFAULT_METHOD].summary,
                )
                with gr.Row():
                    keep = gr.Slider(
                        0.01, 1.0, value=DEFAULT_KEEP, step=0.01, label="Keep ratio (share kept)", elem_id="keep"
                    )
                    segments = gr.Slider(1, 50, value=DEFAULT_SEGMENTS, step=1, label="Segments S", elem_id="segments")
                with gr.Row():
                    max_new_tokens = gr.Slider(
                        1, 256, value=64, step=1, label="Max new tokens", elem_id="max-new-tokens"
                    )
                    compare_all = gr.Checkbox(
                        False, label="Compare all methods (one encoder pass)", elem_id="compare-all"
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
            [audio, method, keep, segments, prompt, max_new_tokens, compare_all],
            [summary, full_text, full_stats, pruned_text, pruned_stats, plot, details, table],
            api_name="run",
        )
    demo.queue(default_concurrency_limit=1, max_size=max_queue)
    return demo


def launch_options() -> dict:
    """Arguments for `demo.launch` that belong to the page (Gradio 6: theme and css go here)."""
    return dict(theme=gr.themes.Default(), css=CSS, allowed_paths=[str(ASSETS)])


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
    args = parser.parse_args(argv)
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
    demo = build_demo(lm, reason)
    demo.launch(server_name=args.host, server_port=args.port, **launch_options())
    return 0


if __name__ == "__main__":
    sys.exit(main())
