"""What the demo page does, apart from its layout (`app.py`): the functions behind Run and
behind a change of the selection settings, the Run button's error state, and the page's style.

    run = make_request(lm, limits)      # Run: one encoder pass, the full and the pruned models
    reselect = make_selection(lm)       # method / keep / S / silence: the cached encoding only
    page_run = on_page(run)             # Run on the page: a refusal clears every output

Every sentence comes from `segprune.words`, every check from `segprune.request`. Gradio is imported
inside the functions (so importing this module, and `python app.py --help`, stay quick).
"""

from __future__ import annotations

import logging
from pathlib import Path

try:  # Hugging Face ZeroGPU (app.py imports it before torch); elsewhere absent or a no-op
    import spaces
except ImportError:
    spaces = None

from . import request
from .methods import METHODS, get_method
from .request import Limits

log = logging.getLogger("segprune.app")

CSS = """
#banner { border-left: 6px solid #e8710a; background: #fff4e5; padding: 10px 16px; border-radius: 6px; }
#banner.info { border-left-color: #3f51b5; background: #eef0fb; }
#banner p, #banner h3 { margin: 2px 0; }
#banner details code { white-space: pre-wrap; overflow-wrap: anywhere; }  /* long paths and URLs wrap on a phone */
#main { display: grid !important; grid-template-columns: minmax(300px, 2fr) minmax(0, 3fr); gap: 16px;
        grid-template-areas: "input results" "settings results"; grid-template-rows: auto 1fr; align-items: start; }
#main > * { min-width: 0 !important; width: auto !important; }
#input-col { grid-area: input; } #results-col { grid-area: results; } #settings-col { grid-area: settings; }
@media (max-width: 900px) {
  #main { grid-template-columns: minmax(0, 1fr); grid-template-areas: "input" "results" "settings";
          grid-template-rows: auto; }
}
#summary h2 { margin: 0 0 4px 0; font-size: 1.3em; }
#status p { margin: 2px 0; }
#check p { color: #b3261e; font-weight: 600; margin: 0; }
#method-info p { margin: 0; color: var(--body-text-color); }
.stats p { margin: 0; }
#table .table-wrap, #table .table-wrap * { font-family: "Source Sans Pro", ui-sans-serif, system-ui, sans-serif !important; word-break: normal !important; overflow-wrap: normal !important; }
.note p { font-size: 0.85em; color: var(--body-text-color-subdued); margin: -6px 0 4px 0; }
@media (max-width: 600px) { #limits p { font-size: 0.8em; } #intro p { font-size: 0.9em; } }
"""


def check_request(method, keep, segments, prompt, max_new_tokens, compare_all, limits: Limits):
    """`segprune.request.check_request`, its ValueError as the page's one sentence (gr.Error)."""
    import gradio as gr

    try:
        return request.check_request(method, keep, segments, prompt, max_new_tokens, compare_all, limits)
    except ValueError as err:
        raise gr.Error(str(err), print_exception=False) from None


def _gpu(duration):
    """`spaces.GPU(duration=...)` on ZeroGPU; elsewhere the function unchanged."""
    return spaces.GPU(duration=duration) if spaces is not None else (lambda fn: fn)


def _gpu_seconds(audio, prompt, settings, max_new_tokens) -> int:
    return 30 + 10 * len(settings) + max_new_tokens // 8


def settings_for(names, keep, segments, drop_silent) -> list:
    """One `Setting` per method name, S for the methods that take it."""
    from .comparison import Setting

    def options(m):
        return {"segments": segments} if get_method(m).takes("segments") else {}

    return [Setting(m, keep, drop_silent=bool(drop_silent), **options(m)) for m in names]


def make_request(lm, limits: Limits | None = None, repeats=None, engine=None):
    """The function behind Run: (audio path, method, keep, segments, prompt, max new tokens, compare
    all, drop silent, session) -> the page's outputs (OUTPUTS) and the visitor's new Session, or
    gr.Error with one plain sentence. The session (one clip, host-side) is what instant
    re-selection works on; the request itself keeps nothing else. engine: where the language model
    runs (None: in process; see `segprune.comparison.Engine`)."""
    import gradio as gr

    import segprune

    from . import listen, words
    from .audio import AudioError
    from .plot import methods_figure, token_figure
    from .session import Session

    limits = limits or Limits()
    max_seconds = limits.seconds_for(lm)

    @_gpu(duration=_gpu_seconds)
    def infer(audio, prompt, settings, max_new_tokens):
        c = segprune.compare(lm, audio, prompt, settings, max_new_tokens, repeats, engine=engine)
        return Session.of(c, audio)  # host tensors only (ZeroGPU returns results from another process)

    def run(
        audio_path,
        method,
        keep,
        segments,
        prompt,
        max_new_tokens,
        compare_all,
        drop_silent=False,
        session=None,
        progress=gr.Progress(),  # noqa: B008 - Gradio's idiom: it injects the tracker
    ):
        if not audio_path:
            raise gr.Error(
                "No audio yet: record with the microphone, upload a file or click an example first.",
                print_exception=False,
            )
        if not isinstance(audio_path, (str, Path)):
            raise gr.Error("The audio must be an uploaded file or a recording.", print_exception=False)
        method, keep, segments, prompt, max_new_tokens, compare_all = check_request(
            method, keep, segments, prompt, max_new_tokens, compare_all, limits
        )
        try:
            drop_silent = request.check_flag(words.silence.LABEL, drop_silent)
            audio = segprune.load_audio(audio_path, max_seconds=max_seconds, max_bytes=limits.max_bytes)
        except ValueError as err:  # AudioError too: never more than the limits, a long upload read in part
            raise gr.Error(str(err), print_exception=False) from None
        if audio.truncated_seconds > 0:
            gr.Warning(
                f"The clip is {words.seconds(audio.seconds + audio.truncated_seconds)} long; only its first {max_seconds:g} s are used."
            )
        names = [method] + ([m for m in METHODS if m != method] if compare_all else [])
        for warning in filter(
            None,
            (
                words.slow_selection_warning(
                    m, int(audio.seconds / lm.token_duration), keep, lm.architecture()["llm_hidden"], lm.device
                )
                for m in names
            ),
        ):
            gr.Warning(warning)
        progress(0.1, desc="Encoding the clip once, then running the full and the pruned model")
        try:
            session = infer(audio, prompt, settings_for(names, keep, segments, drop_silent), max_new_tokens)
        except gr.Error:
            raise
        except (AudioError, ValueError) as err:
            raise gr.Error(str(err), print_exception=False) from None
        except Exception:
            log.exception("request failed")
            raise gr.Error(
                "The model failed on this request; the server log has the details.", print_exception=False
            ) from None
        progress(0.95, desc="Drawing")
        c, pruned = session.comparison, session.comparison.pruned[0]
        t = c.tokens
        heard = listen.heard_seconds(
            t.token_seconds, t.token_duration, pruned.selection.indices, audio.sample_rate, len(session.pcm)
        )
        r = words.readouts(c, lm, audio, max_seconds, heard)
        return (
            r["summary"],
            r["full_text"],
            r["full_stats"],
            r["pruned_text"],
            r["pruned_stats"],
            token_figure(c, 0, audio.samples, audio.sample_rate, words.terms(lm).units),
            r["details"],
            words.table_rows(c) if compare_all else None,
            (session.sample_rate, session.track(pruned)),
            words.status_of_run(c),
            methods_figure(c) if compare_all else None,
            session,
        )

    return run


def make_selection(lm):
    """The function behind a change of method, keep ratio, S or the silence option: (method, keep,
    segments, drop silent, session) -> (plot, listening track, status, settings note, headline,
    pruned answer, pruned stats, details, session). It re-selects on the session's cached
    encoding (no encoder pass, no language model); the answers change only where the Run has
    them (the same setting, or compare-all's). An invalid value answers in the settings note."""
    import gradio as gr

    from . import listen, words
    from .plot import token_figure

    keep_as_is = gr.skip

    def reselect(method, keep, segments, drop_silent, session):
        unchanged = (keep_as_is(),) * 3
        try:
            method, keep, segments, drop_silent = request.check_selection(method, keep, segments, drop_silent)
        except ValueError as err:
            return (*unchanged, f"⚠️ {err}", *(keep_as_is(),) * 4, session)
        if session is None:
            return (*unchanged, "", *(keep_as_is(),) * 4, session)
        setting = settings_for([method], keep, segments, drop_silent)[0]
        index, c = session.ran(setting), session.comparison
        warning = words.slow_selection_warning(method, c.tokens.n, keep, c.tokens.embeddings.shape[1], lm.device)
        if warning and index is None:
            return (
                *unchanged,
                f"⚠️ {warning} It is not re-selected here: press Run to select with it.",
                *(keep_as_is(),) * 4,
                session,
            )
        pruned = c.pruned[index] if index is not None else session.select(setting)
        t = c.tokens
        heard = listen.heard_seconds(
            t.token_seconds, t.token_duration, pruned.selection.indices, session.sample_rate, len(session.pcm)
        )
        figure = token_figure(session.view(pruned), 0, session.samples(), session.sample_rate, words.terms(lm).units)
        track = (session.sample_rate, session.track(pruned))
        if index is None:
            status = words.status_of_selection(c, lm, pruned, session.shown, session.prompt_tokens(pruned), heard)
            return figure, track, status, "", *(keep_as_is(),) * 4, session
        session.shown = index
        return (
            figure,
            track,
            words.status_of_run(c, index),
            "",
            words.headline(c, lm, index),
            words.answer(pruned.run, c.random_weights),
            words.run_stats(c, lm, index),
            words.details(c, lm, index, session.audio, None, heard),
            session,
        )

    return reselect


def on_page(run):
    """The Run button's function on the page: `run`, but a refusal clears every output and says
    its one sentence in the headline (no stale result, no error badge on each output). Its outputs
    are `run`'s and then the results column (hidden after a refusal)."""
    import gradio as gr

    def hidden():
        return gr.update(visible=False)

    from . import words

    def page_run(
        audio,
        method,
        keep,
        segments,
        prompt,
        max_new_tokens,
        compare_all,
        drop_silent,
        session,
        progress=gr.Progress(),  # noqa: B008 - Gradio's idiom: it injects the tracker
    ):
        try:
            out = run(
                audio, method, keep, segments, prompt, max_new_tokens, compare_all, drop_silent, session, progress
            )
        except gr.Error as err:
            return (words.error_headline(err.message), "", "", "", "", None, "", None, None, "", None, None, hidden())
        return (*out, gr.update(visible=True))

    return page_run


__all__ = ["CSS", "check_request", "make_request", "make_selection", "on_page", "settings_for"]
