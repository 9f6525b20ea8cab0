"""segprune's Gradio demo: the full and the pruned model side by side on one clip.

    python app.py                          the paper's Qwen2-Audio-7B-Instruct, or the tiny offline model
    python app.py --model tiny-qwen2-audio
    python app.py --model nvidia/audio-flamingo-3-hf --port 7861

Gradio wiring only: the model choice comes from `segprune.models.choice`, every number and figure
from `segprune.comparison` and `segprune.plot`, every sentence from `segprune.words`. The model loads
once, at start-up. Without an explicit --model the app serves the default model where it can
load and otherwise falls back to that family's tiny random-weight model, with a banner that says
why; an explicit --model never falls back. Gradio and torch are imported after the arguments are
parsed, so `python app.py --help` is quick.
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
from functools import cache
from pathlib import Path

from segprune import request
from segprune.args import DTYPES, add_engine_arguments, make_engine, positive_float, positive_int, torch_dtype
from segprune.methods import DEFAULT_METHOD, DEFAULT_SEGMENTS, METHODS, get_method
from segprune.models import DEFAULT_MODEL, registry
from segprune.request import Limits

log = logging.getLogger("segprune.app")

ASSETS = Path(__file__).resolve().parent / "assets"
PROMPTS = {
    "Captioning": "Describe the audio in detail.",
    "Question answering": "What sound events occur in this clip, and in what order?",
    "Transcription": "Transcribe the speech in this audio.",
}
DEFAULT_KEEP = 0.25
CSS = """
#banner { border-left: 6px solid #e8710a; background: #fff4e5; padding: 10px 16px; border-radius: 6px; }
#banner.info { border-left-color: #3f51b5; background: #eef0fb; }
#banner p { margin: 2px 0; }
#summary { font-size: 1.05em; }
#summary h2 { margin: 0 0 4px 0; }
.stats p { margin: 0; }
"""


def examples() -> list[list[str]]:
    listing = ASSETS / "examples.json"
    if not listing.exists():
        return []
    return [[str(ASSETS / e["file"]), e["prompt"]] for e in json.loads(listing.read_text())]


# --------------------------------------------------------------------------- requests


def check_request(method, keep, segments, prompt, max_new_tokens, compare_all, limits: Limits):
    """`segprune.request.check_request`, its ValueError as the page's one sentence (gr.Error)."""
    import gradio as gr

    try:
        return request.check_request(method, keep, segments, prompt, max_new_tokens, compare_all, limits)
    except ValueError as err:
        raise gr.Error(str(err)) from None


def _gpu(duration):
    """`spaces.GPU(duration=...)` on ZeroGPU; elsewhere the function unchanged."""
    return spaces.GPU(duration=duration) if spaces is not None else (lambda fn: fn)


def _gpu_seconds(audio, prompt, settings, max_new_tokens) -> int:
    return 30 + 10 * len(settings) + max_new_tokens // 8


def make_request(lm, limits: Limits | None = None, repeats=None, engine=None):
    """The function behind the Run button: (audio path, method, keep, segments, prompt, max new
    tokens, compare all, drop silent) -> the page's outputs, or gr.Error with one plain sentence.
    Every request has its own state; nothing is kept between requests."""
    import gradio as gr

    import segprune
    from segprune import silence, words
    from segprune.audio import AudioError
    from segprune.plot import token_figure

    limits = limits or Limits()
    max_seconds = limits.seconds_for(lm)

    @_gpu(duration=_gpu_seconds)
    def infer(audio, prompt, settings, max_new_tokens):
        c = segprune.compare(lm, audio, prompt, settings, max_new_tokens, repeats, engine=engine)
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
        try:
            drop_silent = request.check_flag(silence.LABEL, drop_silent)
        except ValueError as err:
            raise gr.Error(str(err)) from None
        try:  # never more than the limits: a huge upload is refused by size, a long one read in part
            audio = segprune.load_audio(audio_path, max_seconds=max_seconds, max_bytes=limits.max_bytes)
        except AudioError as err:
            raise gr.Error(str(err)) from None
        if audio.truncated_seconds > 0:
            gr.Warning(
                f"The clip is {words.seconds(audio.seconds + audio.truncated_seconds)} long; only its first "
                f"{max_seconds:g} s are used."
            )
        names = [method] + ([m for m in METHODS if m != method] if compare_all else [])
        settings = [
            segprune.Setting(
                m,
                keep,
                drop_silent=bool(drop_silent),
                **({"segments": segments} if get_method(m).takes("segments") else {}),
            )
            for m in names
        ]
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
        r = words.readouts(c, lm, audio, max_seconds)
        figure = token_figure(c, 0, audio.samples, audio.sample_rate)
        table = words.table_rows(c) if compare_all else None
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


# --------------------------------------------------------------------------- the page


@cache
def _components():
    """gr.Slider and gr.Radio that hand their value to the request function as it came: Gradio's
    own checks fail with a generic error on a value that is not a number or not a choice (through
    the API), and `check_request` answers every bad value with one plain sentence instead."""
    import gradio as gr

    class Slider(gr.Slider):
        is_template = True  # drawn by the frontend as a plain slider

        def preprocess(self, payload):
            return payload

    class Radio(gr.Radio):
        is_template = True

        def preprocess(self, payload):
            return payload

    return Slider, Radio


def build_demo(
    lm,
    fallback_reason: str | None = None,
    repeats=None,
    limits: Limits | None = None,
    fallback_details: str | None = None,
    engine=None,
):
    """The Blocks app serving `lm` (loaded once by the caller) within `limits` (default `Limits()`):
    `limits.concurrency` requests on the model at a time, at most `limits.max_queue` waiting.
    Launch it with `demo.launch(**launch_options(limits))`."""
    import gradio as gr

    from segprune import silence, words

    limits = limits or Limits()
    run = make_request(lm, limits, repeats, engine)
    Slider, Radio = _components()
    banner_text, banner_classes = words.banner(lm, fallback_reason, fallback_details)
    noun = "output (random weights: meaningless text)" if lm.random_weights else "answer"

    with gr.Blocks(title="segprune: audio token pruning") as demo:
        gr.Markdown(banner_text, elem_id="banner", elem_classes=banner_classes)
        gr.Markdown(
            "# segprune: the language model hears only K of the audio tokens\n"
            "Every audio token (25 per second for Qwen2-Audio and Audio Flamingo 3) is scored by the attention it "
            "receives in the audio encoder; the pruned model prefills only the K kept ones. Default method: "
            "Segmentwise Top-K (Gibier et al., *Segmentwise Pruning in Audio-Language Models*, arXiv 2511.14293)."
        )
        with gr.Row():
            with gr.Column(scale=2, min_width=320):
                audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Audio clip", elem_id="audio")
                gr.Markdown(limits.line(lm), elem_id="limits", elem_classes=["stats"])
                with gr.Group():
                    preset = gr.Radio(list(PROMPTS), value="Captioning", label="Prompt preset", elem_id="preset")
                    prompt = gr.Textbox(PROMPTS["Captioning"], label="Prompt", lines=1, max_lines=4, elem_id="prompt")
                method = Radio(
                    [(m.label, m.name) for m in METHODS.values()],
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
                        False, label=silence.LABEL, info=silence.DESCRIPTION, elem_id="drop-silent"
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
                    headers=words.TABLE_HEADERS,
                    visible=False,
                    wrap=True,
                    column_widths=["20%", "8%", "11%", "10%", "11%", "40%"],
                    max_height=800,
                    label="All methods at this keep ratio",
                    elem_id="table",
                    interactive=False,
                )

        def show_segments(name, everything):
            return gr.Slider(visible=get_method(name).takes("segments") or everything)

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
    import gradio as gr

    limits = limits or Limits()
    return dict(
        theme=gr.themes.Default(),
        css=CSS,
        allowed_paths=[str(ASSETS)],
        max_file_size=limits.max_bytes,
        show_error=False,  # a failure reaches the page as our one sentence, never as a traceback
    )


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="app.py", description=__doc__.split("\n")[0])
    keys = ", ".join(registry())
    parser.add_argument(
        "--model",
        default=None,
        help=f"registry key ({keys}), hub id or local folder; default {DEFAULT_MODEL}, falling back to its tiny twin",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    parser.add_argument("--dtype", default=None, choices=DTYPES)
    parser.add_argument(
        "--offline", action="store_true", help="do not try the Hub: serve the tiny model unless --model is given"
    )
    parser.add_argument(
        "--hub-timeout", type=positive_float, default=5.0, help="seconds to wait for the Hub before falling back"
    )
    parser.add_argument("--host", default=None, help="server address (default: Gradio's, 127.0.0.1)")
    parser.add_argument("--port", type=positive_int, default=None, help="server port (default: Gradio's, 7860)")
    Limits.add_arguments(parser)
    add_engine_arguments(parser, concurrency=False)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    limits = Limits.from_args(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)

    from segprune.models import ModelLoadError
    from segprune.models.choice import choose_model

    try:
        choice = choose_model(
            args.model or DEFAULT_MODEL,
            args.model is not None,
            args.device,
            torch_dtype(args.dtype),
            args.hub_timeout,
            args.offline,
        )
    except ModelLoadError as err:
        print(f"app.py: error: {err}", file=sys.stderr)
        return 2
    lm = choice.lm
    try:
        engine = make_engine(args, lm)
    except (ValueError, RuntimeError) as err:  # the family, or the server (VLLMError)
        print(f"app.py: error: {err}", file=sys.stderr)
        return 2
    log.info("serving %s on %s%s", lm.name, lm.device, f" (fallback: {choice.reason})" if choice.reason else "")
    demo = build_demo(lm, choice.reason, limits=limits, fallback_details=choice.details, engine=engine)
    demo.launch(server_name=args.host, server_port=args.port, **launch_options(limits))
    return 0


if __name__ == "__main__":
    sys.exit(main())
