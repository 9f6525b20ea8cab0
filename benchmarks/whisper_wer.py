"""Word error rate of every selection method on real Whisper, and where the kept frames fall.

    python benchmarks/whisper_wer.py            (needs the packages of segprune.models.packaged)

For each packaged Whisper (tiny.en, base) and each clip of the speech set (assets/speech: a tune
split and a held-out split with other voices and sentences), the clip is encoded ONCE (frames and
attention scores of the last encoder layer); then every registry method at every keep ratio,
with and without silent frames dropped first, and the Speech Segmentwise policy
(segprune/speech_policy.py), select K of the 1500 frames and the decoder transcribes from those
(greedy, all clips of a setting in one batch: K is the same for every clip). Writes the
generations to benchmarks/results/whisper-wer.json and the tables between the `generated`
markers of benchmarks/results/whisper-wer.md.
"""

import json
import math
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

import segprune
from segprune.audio import load_audio, silent_tokens
from segprune.eval.asr import normalize, word_error_rate
from segprune.methods import METHODS, keep_count, select
from segprune.models.packaged import packaged_whisper
from segprune.speech_policy import speech_segmentwise

ROOT = Path(__file__).resolve().parents[1]

# ----------------------------------------------------------------------------- configuration
MODELS = ["tiny.en", "base"]
KEEPS = [0.75, 0.5, 0.25]
METHOD_NAMES = list(METHODS)  # every registry method
DROP_SILENT = [False, True]
SEGMENTS = 10
POLICIES = {  # name -> speech_segmentwise options (the first is the default policy)
    "speech-segmentwise": {},
}
EXTRA = [(0.1, ["topk", "segmentwise", "speech-segmentwise"]), (0.05, ["topk", "segmentwise", "speech-segmentwise"])]
MANIFEST = ROOT / "assets" / "speech" / "manifest.jsonl"
OUT_JSON = ROOT / "benchmarks" / "results" / "whisper-wer.json"
OUT_MD = ROOT / "benchmarks" / "results" / "whisper-wer.md"
MAX_NEW_TOKENS = 80
THREADS = 2
FRAME = 0.02  # seconds per Whisper encoder frame
AFTER = TAIL = 50  # frames: the first second after the speech, the window's last second
# ---------------------------------------------------------------------------------------------


def load_clips() -> list[dict]:
    rows = [json.loads(line) for line in MANIFEST.read_text().splitlines() if line.strip()]
    for row in rows:
        row["path"] = str(MANIFEST.parent / row["audio"])
    return rows


def encode(lm, rows: list[dict]) -> list[dict]:
    """Each clip's frames [1500, D], scores [1500], silence mask and audio_end, encoded once."""
    out = []
    for row in rows:
        audio = load_audio(row["path"])
        tokens = lm.encode(lm.inputs(audio, "transcribe"))[0]
        silent = silent_tokens(audio.samples, audio.sample_rate, tokens.token_seconds, tokens.token_duration)
        audio_end = min(tokens.n, math.ceil(audio.seconds / FRAME))
        out.append({"row": row, "tokens": tokens, "silent": silent, "audio_end": audio_end})
    return out


def choose(setting: dict, clip: dict) -> np.ndarray:
    """Kept frame indices [K] of one clip under one setting."""
    tokens = clip["tokens"]
    if setting["method"] == "full":
        return np.arange(tokens.n)
    if setting["method"] in POLICIES:
        k = keep_count(tokens.n, setting["keep"])
        options = POLICIES[setting["method"]]
        silent = clip["silent"] if setting["drop_silent"] else None
        return speech_segmentwise(
            tokens.scores, k, audio_end=clip["audio_end"], segments=SEGMENTS, silent=silent, **options
        ).indices
    m = METHODS[setting["method"]]
    return select(
        setting["method"],
        tokens.scores,
        setting["keep"],
        segments=SEGMENTS,
        embeddings=tokens.embeddings if m.needs_embeddings else None,
        silent=clip["silent"] if setting["drop_silent"] else None,
    ).indices


def kept_frames(setting: dict, clip: dict, indices: np.ndarray) -> torch.Tensor:
    """The frames the decoder reads: originals at `indices` (VisionZip: its merged rows)."""
    tokens = clip["tokens"]
    if setting["method"] in METHODS and METHODS[setting["method"]].merges:
        m_sel = select(
            setting["method"],
            tokens.scores,
            setting["keep"],
            segments=SEGMENTS,
            embeddings=tokens.embeddings,
            silent=clip["silent"] if setting["drop_silent"] else None,
        )
        return m_sel.embeddings
    return tokens.embeddings[torch.from_numpy(indices)]


def where(indices: np.ndarray, audio_end: int, n: int) -> dict:
    """Shares of the kept frames: speech [0, audio_end), the second after it, the window's last
    second, other padding; and the share of speech frames kept."""
    after = (indices >= audio_end) & (indices < audio_end + AFTER)
    tail = (indices >= n - TAIL) & ~after & (indices >= audio_end)
    speech = indices < audio_end
    k = indices.size
    return {
        "speech": speech.sum() / k,
        "after": after.sum() / k,
        "tail": tail.sum() / k,
        "padding": 1 - (speech.sum() + after.sum() + tail.sum()) / k,
        "speech_covered": speech.sum() / audio_end,
    }


def failure(text: str, reference: str, n_ids: int, language: str = "<|en|>") -> str | None:
    """'loop' (ran to the token limit, or a 1-4 word phrase repeated 3 times in a row), 'language'
    (a language other than English detected on the kept frames), 'truncated' (at most half the
    reference's words), 'hallucination' (1.5 times as many words or more), or None."""
    words = normalize(text).split()
    ref = normalize(reference).split()
    repeated = re.search(r"\b((?:\S+\s+){0,3}\S+)(?:\s+\1\b){2,}", " ".join(words)) is not None
    if n_ids >= MAX_NEW_TOKENS or repeated:
        return "loop"
    if language != "<|en|>":
        return "language"
    if len(words) <= 0.5 * len(ref):
        return "truncated"
    if len(words) >= 1.5 * len(ref):
        return "hallucination"
    return None


def run_model(name: str) -> dict:
    folder = packaged_whisper(name)
    if folder is None:
        sys.exit(f"whisper_wer.py: error: the packages of whisper {name} are not installed")
    lm = segprune.load_model(str(folder), device="cpu", dtype=torch.float32)
    multilingual = bool(lm.model.generation_config.is_multilingual)
    rows = load_clips()
    start = time.perf_counter()
    clips = encode(lm, rows)
    settings = [{"method": "full", "keep": 1.0, "drop_silent": False}]
    for keep in KEEPS:
        for method in [*METHOD_NAMES, *POLICIES]:
            for quiet in DROP_SILENT:
                settings.append({"method": method, "keep": keep, "drop_silent": quiet})
    for keep, methods in EXTRA:  # below the paper's ratios: where the policies part ways
        settings += [{"method": method, "keep": keep, "drop_silent": False} for method in methods]
    results = []
    for setting in settings:
        if setting["method"] == "full":
            picks = [np.arange(c["tokens"].n) for c in clips]
            frames = [c["tokens"].embeddings for c in clips]
        else:
            picks = [choose(setting, c) for c in clips]
            frames = [kept_frames(setting, c, p) for c, p in zip(clips, picks)]
        x = lm.assemble(None, frames)  # the decoder prompt generate starts from: its language is detected
        languages = lm.tokenizer.convert_ids_to_tokens(x.input_ids[:, 1].tolist()) if multilingual else None
        gens = lm.generate(x, MAX_NEW_TOKENS)
        per_clip = []
        for i, (clip, pick, g) in enumerate(zip(clips, picks, gens)):
            row = clip["row"]
            language = languages[i] if languages else "<|en|>"
            per_clip.append(
                {
                    "id": row["id"],
                    "split": row["split"],
                    "text": g.text,
                    "n_ids": len(g.token_ids),
                    "audio_end": clip["audio_end"],
                    "kept": pick.tolist(),
                    "language": language,
                    "failure": failure(g.text, row["references"][0], len(g.token_ids), language),
                }
            )
        results.append({**setting, "clips": per_clip})
        print(f"{name} {setting} done ({time.perf_counter() - start:.0f} s)", flush=True)
    return {"model": name, "folder": str(folder), "seconds": time.perf_counter() - start, "settings": results}


def summary(model: dict, rows: list[dict]) -> list[dict]:
    """Per setting: WER per split, failure counts, where the kept frames fall."""
    refs = {r["id"]: r["references"][0] for r in rows}
    out = []
    for s in model["settings"]:
        clips = s["clips"]
        line = {k: s[k] for k in ("method", "keep", "drop_silent")}
        for split in ("tune", "heldout"):
            chosen = [c for c in clips if c["split"] == split]
            line[f"wer_{split}"] = word_error_rate([refs[c["id"]] for c in chosen], [c["text"] for c in chosen])["wer"]
        line["wer_all"] = word_error_rate([refs[c["id"]] for c in clips], [c["text"] for c in clips])["wer"]
        kinds = ("loop", "language", "truncated", "hallucination")
        line["failures"] = {f: sum(c["failure"] == f for c in clips) for f in kinds}
        shares = [where(np.asarray(c["kept"]), c["audio_end"], 1500) for c in clips]
        line["where"] = {k: float(np.mean([sh[k] for sh in shares])) for k in shares[0]}
        out.append(line)
    return out


def label(line: dict) -> str:
    name = "Full model" if line["method"] == "full" else line["method"]
    return name + (" + drop-silent" if line["drop_silent"] else "")


def markdown(models: list[dict], rows: list[dict]) -> str:
    parts = []
    for model in models:
        lines = summary(model, rows)
        parts.append(f"### whisper {model['model']} ({model['seconds'] / 60:.1f} min)\n")
        parts.append(
            "| keep | method | WER tune | WER held-out | WER all | loops | other language | truncated | halluc. "
            "| kept in speech | 1 s after | last 1 s | other padding | speech frames kept |"
        )
        parts.append("|" + "---|" * 14)
        for line in lines:
            f, w = line["failures"], line["where"]
            parts.append(
                f"| {line['keep']:g} | {label(line)} | {line['wer_tune']:.1f} | {line['wer_heldout']:.1f} | "
                f"{line['wer_all']:.1f} | {f['loop']} | {f['language']} | {f['truncated']} | {f['hallucination']} | "
                f"{100 * w['speech']:.0f} % | {100 * w['after']:.0f} % | {100 * w['tail']:.0f} % | "
                f"{100 * w['padding']:.0f} % | {100 * w['speech_covered']:.0f} % |"
            )
        parts.append("")
    return "\n".join(parts)


def write_markdown(text: str) -> None:
    begin, end = "<!-- generated: begin -->", "<!-- generated: end -->"
    old = OUT_MD.read_text() if OUT_MD.exists() else f"# Whisper WER under pruning\n\n{begin}\n{end}\n"
    head, rest = old.split(begin)
    OUT_MD.write_text(head + begin + "\n" + text + "\n" + end + rest.split(end)[1])


def main() -> None:
    torch.set_num_threads(THREADS)
    rows = load_clips()
    models = [run_model(name) for name in MODELS]
    OUT_JSON.write_text(json.dumps({"models": models, "config": {"max_new_tokens": MAX_NEW_TOKENS}}, indent=1))
    write_markdown(markdown(models, rows))
    print(markdown(models, rows))


if __name__ == "__main__":
    main()
