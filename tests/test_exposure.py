"""What the public app allows and exposes: configurable limits, shown on the page and passed to the
loader and the server; no file served outside the visitor's own uploads and `assets/`; no share
link; no remote code, nothing user-supplied unpickled or executed; and the request function, fed
random values, answers only with results or one plain sentence."""

import json
import re

import gradio as gr
import httpx
import numpy as np
import pytest
import soundfile
from apphelpers import ROOT, figure_dict, import_app, named, no_nan_in_figure, no_nan_in_text, one_sentence, served
from hypothesis import given, settings
from hypothesis import strategies as st

import segprune
from segprune import demo, widgets
from segprune.methods import METHODS
from tests.conftest import scene

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning:gradio.queueing"),
    pytest.mark.filterwarnings("ignore:The clip is:UserWarning"),  # gr.Warning outside a served request
]


@pytest.fixture(scope="module")
def app():
    return import_app()


@pytest.fixture(scope="module")
def lm(tiny_models):
    return tiny_models["tiny-qwen2-audio"]


def component(demo, elem_id) -> dict:
    return next(c for c in demo.config["components"] if c["props"].get("elem_id") == elem_id)["props"]


def test_limits_are_configurable_and_shown(app, lm):
    limits = app.Limits(max_seconds=12, max_upload_mb=3, max_new_tokens=32, max_queue=5, concurrency=2)
    demo = app.build_demo(lm, limits=limits)
    line = component(demo, "limits")["value"]
    for shown in ("up to 3 MB", "first 12 s", "32 new tokens", "5 requests", "MP3"):
        assert shown in line, line
    assert component(demo, "max-new-tokens")["label"] == "Max new tokens (1 to 32)"
    assert demo._queue.max_size == 5 and demo._queue.default_concurrency_limit == 2
    options = app.launch_options(limits)
    assert options["max_file_size"] == 3 * 2**20 and options["allowed_paths"] == [str(ROOT / "assets")]
    assert not options.get("share")
    # defaults for a public Space; the model's own maximum wins when it is shorter
    default = app.Limits()
    assert (default.max_upload_mb, default.max_new_tokens, default.max_queue, default.concurrency) == (50, 256, 16, 1)
    assert "first 30 s" in default.line(lm)  # tiny-qwen2-audio takes 30 s, below the default 120 s


def test_app_flags_set_the_limits_and_never_share(app, monkeypatch):
    launched = {}
    monkeypatch.setattr(gr.Blocks, "launch", lambda demo, **kw: launched.update(demo=demo, **kw))
    argv = ["--model", "tiny-qwen2-audio", "--device", "cpu", "--max-seconds", "10", "--max-upload-mb", "2"]
    assert app.main(argv + ["--max-new-tokens", "16", "--max-queue", "3", "--concurrency", "2"]) == 0
    demo = launched["demo"]
    assert launched["max_file_size"] == 2 * 2**20 and not launched.get("share")
    assert demo._queue.max_size == 3 and demo._queue.default_concurrency_limit == 2
    assert "first 10 s" in component(demo, "limits")["value"]
    assert component(demo, "max-new-tokens")["label"] == "Max new tokens (1 to 16)"
    with pytest.raises(SystemExit):
        app.main(["--max-upload-mb", "0"])


def test_the_loader_gets_the_limits(app, lm, tmp_path, monkeypatch):
    """A long clip is read only up to the limit (never whole), a big one not at all."""
    clip = tmp_path / "eight_seconds.wav"
    soundfile.write(clip, scene(8.0), 16000)
    reads = []
    real = segprune.load_audio
    monkeypatch.setattr(segprune, "load_audio", lambda *a, **kw: reads.append(kw) or real(*a, **kw))
    run = app.make_request(lm, app.Limits(max_seconds=5, max_upload_mb=0.3), repeats=1)
    details = run(str(clip), "topk", 0.5, 10, "Describe.", 2, False)[6]  # 256 KB
    assert reads[-1] == {"max_seconds": 5, "max_bytes": int(0.3 * 2**20)}
    assert "this demo reads at most 5 s: the last 3.0 s were dropped" in details
    soundfile.write(clip, scene(8.0), 16000, subtype="FLOAT")  # 512 KB
    with pytest.raises(gr.Error, match=r"is 0.5 MB; files up to 0.3 MB are accepted"):
        run(str(clip), "topk", 0.5, 10, "Describe.", 2, False)


def test_no_file_outside_uploads_and_assets_is_served(app, lm, tmp_path):
    outside = tmp_path / "secret.wav"
    soundfile.write(outside, scene(1.0), 16000)
    with served(lm, limits=app.Limits(max_upload_mb=0.05)) as url, httpx.Client(base_url=url, timeout=60) as http:

        def status(path):
            return http.get(f"gradio_api/file={path}").status_code

        assert status(ROOT / "assets" / "speech.flac") == 200
        for path in ["/etc/passwd", outside, ROOT / "app.py", f"{ROOT / 'assets'}/../app.py", "../../etc/passwd"]:
            assert status(path) in (403, 404), path
        upload = http.post("gradio_api/upload", files={"files": ("clip.wav", outside.read_bytes()[:20000])})
        assert upload.status_code == 200 and status(upload.json()[0]) == 200  # a visitor's own upload
        too_big = http.post("gradio_api/upload", files={"files": ("big.wav", bytes(60_000))})
        assert too_big.status_code == 413  # over the limit: refused before anything reads it

        # what is not an upload is refused before the request function, with a sentence, and reads nothing
        def refusal(audio, raw=None, **changes):
            """The error sentence for one request; `raw` replaces a field's JSON text (name, text)."""
            names = ["method", "keep", "segments", "prompt", "max_new", "all", "quiet"]
            values = dict(zip(names, ["topk", 0.3, 5, "Hi.", 2, False, False]))
            values.update(changes)
            if raw:
                values[raw[0]] = "RAW"
            body = json.dumps({"data": [audio, *values.values(), None]}).replace('"RAW"', raw[1] if raw else "")
            event = http.post("gradio_api/call/run", content=body, headers={"content-type": "application/json"})
            answer = http.get(f"gradio_api/call/run/{event.json()['event_id']}").text
            assert "event: error" in answer and "root:" not in answer and "Pruned" not in answer
            return json.loads(answer.split("data: ", 1)[1])["error"]

        for path in ["/etc/passwd", str(outside)]:
            assert refusal({"path": path, "meta": {"_type": "gradio.FileData"}}) == widgets.SERVER_PATH
        url_audio = {
            "path": "http://127.0.0.1:9/a.wav",
            "url": "http://127.0.0.1:9/a.wav",
            "meta": {"_type": "gradio.FileData"},
        }
        assert refusal(url_audio) == widgets.NO_URLS
        for malformed in ["clip.wav", 42, {"path": 5, "meta": {"_type": "gradio.FileData"}}, {"name": "x"}]:
            assert refusal(malformed) == widgets.MALFORMED
        # huge numbers, as JSON numbers, get the fields' sentences
        mine = {"path": upload.json()[0], "meta": {"_type": "gradio.FileData"}}
        huge = 10**400
        one_sentence(refusal(mine, keep=huge), "(0, 1]", "about 400 digits")
        one_sentence(refusal(mine, segments=0), "at least 1")
        one_sentence(refusal(mine, max_new=huge), "from 1 to 256")
        one_sentence(refusal(mine, raw=("keep", "-1e400")), "(0, 1]", "got -inf")
        short = http.post("gradio_api/call/run", json={"data": [mine, "topk"]})
        answer = http.get(f"gradio_api/call/run/{short.json()['event_id']}").text
        assert "This request takes 8 values (Audio clip, Pruning method" in answer and "it sent 2." in answer


SCANNED = [ROOT / "app.py", *sorted((ROOT / "segprune").rglob("*.py")), *sorted((ROOT / "assets").rglob("*.py"))]
FORBIDDEN = {
    "remote code": r"trust_remote_code",
    "unpickling": r"\bpickle\b|torch\.load\(|\bnp\.load\(|numpy\.load\(|allow_pickle|weights_only\s*=\s*False",
    "executing text": r"(?<![\w.])(eval|exec|compile)\(|__import__\(|shell\s*=\s*True",
}


@pytest.mark.parametrize("what", FORBIDDEN)
def test_no_remote_code_and_nothing_unpickled_or_executed(what):
    assert len(SCANNED) > 20
    hits = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in SCANNED
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(FORBIDDEN[what], line)
    ]
    assert not hits, hits


# --------------------------------------------------------------------------- fuzz


def test_request_checks_say_what_is_accepted(app):
    limits = app.Limits(max_new_tokens=8, max_prompt_chars=20)
    check = demo.check_request
    cases = [
        (("nope", 0.3, 5, "Hi.", 4, False), "choose one of segmentwise"),
        (("topk", float("nan"), 5, "Hi.", 4, False), "(0, 1]"),
        (("topk", True, 5, "Hi.", 4, False), "(0, 1]"),
        (("topk", 0.3, 2.5, "Hi.", 4, False), "whole number of at least 1"),
        (("topk", 10**5000, 5, "Hi.", 4, False), "about 5,000 digits"),
        (("topk", 0.3, 5, "Hi.", 9, False), "from 1 to 8"),
        (("topk", 0.3, 5, "x" * 21, 4, False), "up to 20 characters"),
        (("topk", 0.3, 5, "Hi.", 4, "yes"), "true or false"),
    ]
    for args, needle in cases:
        with pytest.raises(gr.Error) as err:
            check(*args, limits)
        one_sentence(err.value.message, needle)
    assert check("topk", 1, 7.0, " Hi. ", 8.0, None, limits) == ("topk", 1.0, 7, "Hi.", 8, False)


@pytest.fixture(scope="module")
def fuzz_run(app, lm, tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    good, junk = folder / "good.wav", folder / "junk.wav"
    soundfile.write(good, scene(1.0), 16000)
    junk.write_bytes(np.random.default_rng(0).bytes(3000))
    run = app.make_request(lm, app.Limits(max_new_tokens=3), repeats=1)
    return run, [str(good), str(good), str(good), None, "", str(junk), str(folder / "missing.wav"), str(folder), 42]


def anything(*valid):
    """A valid value, or anything else a client could send."""
    return st.one_of(
        st.sampled_from(valid),
        st.none(),
        st.booleans(),
        st.integers(-5, 10**6),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=6),
    )


FIELDS = {  # the request's fields: valid values (the first is the default)
    "method": list(METHODS),
    "keep": [0.25, 1.0, 0.01],
    "segments": [10, 1, 1000],
    "prompt": ["Describe the audio."],
    "max_new_tokens": [2, 1, 3],
    "compare_all": [False, True],
}


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_fuzz_the_request_function_only_clean_answers(fuzz_run, data):
    """A valid request with up to two of its fields replaced by random values (of any type): a full
    answer without NaN, or one plain sentence."""
    run, paths = fuzz_run
    request = {name: data.draw(st.sampled_from(valid), label=name) for name, valid in FIELDS.items()}
    for name in data.draw(st.sets(st.sampled_from(list(FIELDS)), max_size=2), label="replaced"):
        request[name] = data.draw(anything(*FIELDS[name]), label=name)
    audio = data.draw(st.sampled_from(paths), label="audio")
    try:
        out = run(audio, *request.values())
    except gr.Error as err:
        one_sentence(err.message)
        return
    out = named(out)
    no_nan_in_figure(figure_dict({"type": "plotly", "plot": out["plot"].to_json()}))
    no_nan_in_text(out["summary"], out["full_stats"], out["pruned_stats"], out["details"], out["status"])
