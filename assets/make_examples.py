"""Regenerate the demo's example clips (assets/*.flac) and their prompts (assets/examples.json).

    python assets/make_examples.py

- speech.flac  a spoken sentence from espeak-ng (Debian: apt-get install espeak-ng)
- scene.flac   a sound scene with distinct events: doorbell, footsteps, a dog-like bark, a car horn
- music.flac   a short piano-like melody over a bass line, 120 beats per minute

Everything but the speech is synthesised with numpy from a fixed seed, so reruns give the same
samples. 16 kHz mono FLAC (the models' own rate) keeps the files small.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile
from scipy.signal import resample_poly

RATE = 16_000
HERE = Path(__file__).resolve().parent
SENTENCE = "Please turn off the lights in the kitchen, and do not forget to lock the back door before you leave."


def speech(rng: np.random.Generator) -> np.ndarray:
    """espeak-ng's US English voice reading SENTENCE, resampled to 16 kHz, with 0.4 s of silence around it."""
    if shutil.which("espeak-ng") is None:
        sys.exit("make_examples.py: error: espeak-ng is needed for speech.flac (apt-get install espeak-ng)")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav), SENTENCE], check=True)
        x, rate = soundfile.read(wav, dtype="float32")
    x = resample_poly(x, RATE, rate) if rate != RATE else x
    x = np.concatenate([np.zeros(int(0.4 * RATE)), x, np.zeros(int(0.4 * RATE))])
    return 0.8 * x / np.abs(x).max()


def _t(seconds: float) -> np.ndarray:
    return np.arange(int(seconds * RATE)) / RATE


def _place(out: np.ndarray, at: float, sound: np.ndarray) -> None:
    start = int(at * RATE)
    out[start : start + sound.size] += sound[: out.size - start]


def _envelope(t: np.ndarray, attack: float, decay: float) -> np.ndarray:
    return np.minimum(t / attack, 1.0) * np.exp(-t / decay)


def scene(rng: np.random.Generator) -> np.ndarray:
    """8 s: doorbell ding-dong at 0.5 s, four footsteps from 2.2 s, a bark at 4.6 s and 5.1 s,
    a car horn at 6.2 s; faint background noise throughout."""
    out = 0.001 * rng.standard_normal(int(8.0 * RATE))
    t = _t(1.0)
    for at, f in [(0.5, 660.0), (1.0, 523.0)]:  # ding-dong: decaying bell partials
        bell = sum(a * np.sin(2 * np.pi * f * m * t) for a, m in [(1.0, 1.0), (0.4, 2.76), (0.2, 5.4)])
        _place(out, at, 0.35 * bell * _envelope(t, 0.005, 0.35))
    step_t = _t(0.12)
    for i in range(4):  # footsteps: low thumps with a noisy click
        thump = np.sin(2 * np.pi * 90 * step_t) + 0.6 * rng.standard_normal(step_t.size)
        _place(out, 2.2 + 0.5 * i, 0.4 * thump * _envelope(step_t, 0.002, 0.03))
    bark_t = _t(0.25)
    for at in (4.6, 5.1):  # bark: a harmonic burst with a falling pitch, through a noisy formant
        f0 = 450 - 500 * bark_t
        phase = 2 * np.pi * np.cumsum(f0) / RATE
        bark = sum(np.sin(k * phase) / k for k in range(1, 8)) + 0.5 * rng.standard_normal(bark_t.size)
        _place(out, at, 0.3 * bark * _envelope(bark_t, 0.01, 0.08))
    horn_t = _t(0.9)
    horn = sum(np.sign(np.sin(2 * np.pi * f * horn_t)) for f in (370.0, 440.0))  # two square waves
    _place(out, 6.2, 0.12 * horn * np.minimum(1.0, np.minimum(horn_t, 0.9 - horn_t) / 0.02))
    return out


def music(rng: np.random.Generator) -> np.ndarray:
    """8 s at 120 bpm: a C-major piano-like melody (decaying harmonics) over a sustained bass."""
    out = np.zeros(int(8.0 * RATE))
    beat = 0.5
    melody = [60, 64, 67, 72, 71, 67, 64, 62, 60, 62, 64, 65, 67, 69, 71, 72]  # MIDI notes, one per beat
    bass = [48, 43, 45, 41]  # C, G, A, F: one per bar of four beats
    t = _t(1.2)
    for i, note in enumerate(melody):
        f = 440.0 * 2 ** ((note - 69) / 12)
        tone = sum(np.sin(2 * np.pi * f * k * t) * 0.6**k for k in range(1, 6))
        _place(out, i * beat, 0.3 * tone * _envelope(t, 0.004, 0.3))
    bar_t = _t(4 * beat)
    for i, note in enumerate(bass):
        f = 440.0 * 2 ** ((note - 69) / 12)
        tone = np.sin(2 * np.pi * f * bar_t) + 0.3 * np.sin(4 * np.pi * f * bar_t)
        _place(out, i * 4 * beat, 0.25 * tone * _envelope(bar_t, 0.02, 1.5))
    return out


EXAMPLES = [
    ("speech.flac", speech, "Transcribe the speech in this audio."),
    ("scene.flac", scene, "What sound events occur in this clip, and in what order?"),
    ("music.flac", music, "Describe the music: the instruments, the tempo and the mood."),
]


def main() -> None:
    rng = np.random.default_rng(0)
    listing = []
    for name, make, prompt in EXAMPLES:
        x = make(rng)
        x = np.clip(x, -1.0, 1.0).astype(np.float32)
        soundfile.write(HERE / name, x, RATE, format="FLAC", subtype="PCM_16")
        listing.append({"file": name, "prompt": prompt})
        print(f"{name}: {x.size / RATE:.1f} s, {(HERE / name).stat().st_size / 1024:.0f} KiB")
    (HERE / "examples.json").write_text(json.dumps(listing, indent=2) + "\n")


if __name__ == "__main__":
    main()
