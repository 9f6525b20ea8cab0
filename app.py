"""segprune's Gradio demo: the full and the pruned model side by side on one clip.

    python app.py                          the paper's Qwen2-Audio-7B-Instruct, or the tiny offline model
    python app.py --model tiny-qwen2-audio
    python app.py --model nvidia/audio-flamingo-3-hf --port 7861

Gradio wiring only: the model choice comes from `segprune.models.choice`, the functions behind Run and
behind a change of the selection from `segprune.demo` (a visitor's cached clip is a
`segprune.session.Session`), every number and figure from `segprune.comparison` and `segprune.plot`,
every sentence from `segprune.words`, the components that answer in sentences from
`segprune.widgets`. Endpoints: `/run` (the models) and `/select` (re-selection). The model loads
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
import json
import logging
import sys
from pathlib import Path

from segprune.args import DTYPES, add_engine_arguments, make_engine, positive_float, positive_int, torch_dtype
from segprune.demo import CSS, make_request, make_selection, on_page
from segprune.methods import DEFAULT_METHOD, DEFAULT_SEGMENTS, METHODS, get_method
from segprune.models import DEFAULT_MODEL, registry
from segprune.request import Limits

log = logging.getLogger("segprune.app")

ASSETS = Path(__file__).resolve().parent / "assets"
PROMPTS = {
    "Captioning": "Describe the audio in detail.",
    "Question answering": "What sound events occur in this clip, and in what order?",
    "Transcription": "Transcribe the speech in this audio.",
    "Music": "Describe the music: the instruments, the tempo and the mood.",
}
DEFAULT_KEEP = 0.25
SESSION_SECONDS = 1800  # a visitor's cached clip lives this long after its last use (one clip per tab)


def examples() -> list[list[str]]:
    """[path, preset, prompt] per bundled example: each prompt is one of the presets."""
    listing = ASSETS / "examples.json"
    if not listing.exists():
        return []
    preset = {text: name for name, text in PROMPTS.items()}
    return [[str(ASSETS / e["file"]), preset.get(e["prompt"]), e["prompt"]] for e in json.loads(listing.read_text())]


# --------------------------------------------------------------------------- the page


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

    from segprune import silence, widgets, words

    limits = limits or Limits()
    run = make_request(lm, limits, repeats, engine)
    t = words.terms(lm)
    banner_text, banner_classes = words.banner(lm, fallback_reason, fallback_details)
    noun = "output (random weights: meaningless text)" if lm.random_weights else "answer"

    with widgets.Page(title="segprune: audio token pruning", delete_cache=(600, 3600)) as demo:
        gr.Markdown(banner_text, elem_id="banner", elem_classes=banner_classes)
        gr.Markdown(words.intro(lm), elem_id="intro")
        session = gr.State(None, time_to_live=SESSION_SECONDS)
        with gr.Row(elem_id="main"):
            with gr.Column(elem_id="input-col", min_width=0):
                audio = widgets.AudioInput(
                    sources=["upload", "microphone"], type="filepath", label="Audio clip", elem_id="audio"
                )
                gr.Markdown(limits.line(lm), elem_id="limits", elem_classes=["stats"])
                button = gr.Button("Run", variant="primary", elem_id="run")
                example_slot = gr.Column(min_width=0)
            with gr.Column(elem_id="results-col", min_width=0):
                summary = gr.Markdown(words.status_waiting(lm), elem_id="summary")
                with gr.Column(visible=False, elem_id="answers", min_width=0) as answers:
                    status = gr.Markdown(elem_id="status")
                    with gr.Row(equal_height=True):
                        with gr.Column(min_width=240):
                            full_text = gr.Textbox(
                                label=f"Full model {noun}", lines=3, interactive=False, elem_id="full-text"
                            )
                            full_stats = gr.Markdown(elem_id="full-stats", elem_classes=["stats"])
                        with gr.Column(min_width=240):
                            pruned_text = gr.Textbox(
                                label=f"Pruned model {noun}", lines=3, interactive=False, elem_id="pruned-text"
                            )
                            pruned_stats = gr.Markdown(elem_id="pruned-stats", elem_classes=["stats"])
                    plot = gr.Plot(label="What the pruned model kept", show_label=False, elem_id="plot")
                    listen = widgets.ListeningTrack(
                        label="Listen: what the pruned model hears",
                        interactive=False,
                        buttons=["download"],
                        elem_id="listen",
                    )
                    gr.Markdown(
                        f"The clip's length, silent over the dropped {t.units}.", elem_classes=["stats", "note"]
                    )
                    details = gr.Markdown(elem_id="details")
                    methods_plot = gr.Plot(visible=False, show_label=False, elem_id="methods-plot")
                    table = gr.Dataframe(
                        headers=words.TABLE_HEADERS,
                        visible=False,
                        wrap=True,
                        column_widths=words.TABLE_WIDTHS,
                        max_height=800,
                        label="All methods at this keep ratio, from one encoder pass",
                        elem_id="table",
                        interactive=False,
                    )
            with gr.Column(elem_id="settings-col", min_width=0):
                method = widgets.Radio(
                    [(m.label, m.name) for m in METHODS.values()],
                    value=DEFAULT_METHOD,
                    label="Pruning method",
                    elem_id="method",
                )
                method_info = gr.Markdown(METHODS[DEFAULT_METHOD].summary, elem_id="method-info")
                with gr.Row():
                    keep = widgets.Number(
                        DEFAULT_KEEP,
                        step=0.05,
                        label="Keep ratio: share kept, in (0, 1]",
                        elem_id="keep",
                        min_width=140,
                    )
                    segments = widgets.Number(
                        DEFAULT_SEGMENTS, step=1, label="Segments S (1 or more)", elem_id="segments", min_width=140
                    )
                check = gr.Markdown(elem_id="check")
                max_new_tokens = widgets.Number(
                    min(64, limits.max_new_tokens),
                    step=1,
                    label=f"Max new tokens (1 to {limits.max_new_tokens})",
                    elem_id="max-new-tokens",
                )
                compare_all = gr.Checkbox(False, label="Compare all methods (one encoder pass)", elem_id="compare-all")
                drop_silent = gr.Checkbox(False, label=silence.LABEL, info=silence.DESCRIPTION, elem_id="drop-silent")
                preset = gr.Radio(
                    list(PROMPTS), value="Captioning", label="Prompt preset", elem_id="preset", visible=lm.uses_prompt
                )
                prompt = gr.Textbox(
                    PROMPTS["Captioning"],
                    label="Prompt",
                    lines=1,
                    max_lines=4,
                    elem_id="prompt",
                    visible=lm.uses_prompt,
                )
                if not lm.uses_prompt:
                    gr.Markdown(
                        f"**No prompt:** {lm.name} transcribes; it reads no instruction, so the prompt controls are hidden.",
                        elem_id="no-prompt",
                    )
        if clips := examples():
            with example_slot:
                fields = [audio, preset, prompt] if lm.uses_prompt else [audio]
                rows = [row if lm.uses_prompt else row[:1] for row in clips]
                names = [
                    f"{Path(path).stem} · {preset}" if lm.uses_prompt else Path(path).stem for path, preset, _ in clips
                ]
                gr.Examples(
                    rows, fields, cache_examples=False, label="Examples (click one, then Run)", example_labels=names
                )

        def show_segments(name, everything):
            return gr.Number(visible=get_method(name).takes("segments") or everything)

        ui = dict(queue=False, api_visibility="private")  # instant, never behind a model run
        method.change(lambda name: METHODS[name].summary if name in METHODS else "", method, method_info, **ui)
        gr.on([method.change, compare_all.change], show_segments, [method, compare_all], segments, **ui)
        compare_all.change(
            lambda on: (gr.Dataframe(visible=on), gr.Plot(visible=on)), compare_all, [table, methods_plot], **ui
        )
        preset.change(lambda name: PROMPTS.get(name, gr.skip()), preset, prompt, **ui)
        prompt.input(
            lambda text: next((n for n, p in PROMPTS.items() if p == text.strip()), None), prompt, preset, **ui
        )
        inputs = [audio, method, keep, segments, prompt, max_new_tokens, compare_all, drop_silent, session]
        outputs = [
            summary,
            full_text,
            full_stats,
            pruned_text,
            pruned_stats,
            plot,
            details,
            table,
            listen,
            status,
            methods_plot,
            session,
        ]
        cleared = {full_text: "", full_stats: "", pruned_text: "", pruned_stats: "", details: ""}
        cleared |= {plot: None, table: None, listen: None, methods_plot: None}
        running = {
            answers: gr.update(visible=True),
            summary: "## Running…",
            status: words.status_running(lm),
            **cleared,
        }
        button.click(lambda: running, None, list(running), **ui).then(
            on_page(run), inputs, [*outputs, answers], api_visibility="private", show_progress_on=[summary]
        )
        gr.Button(visible=False).click(run, inputs, outputs, api_name="run")  # the API: refusals are gr.Error
        gr.on(
            [method.change, keep.change, segments.change, drop_silent.change],
            make_selection(lm),
            [method, keep, segments, drop_silent, session],
            [plot, listen, status, check, summary, pruned_text, pruned_stats, details, session],
            api_name="select",
            show_progress="hidden",
            concurrency_limit=4,
            concurrency_id="select",
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
