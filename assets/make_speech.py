"""Regenerate the speech set assets/speech/*.flac and its manifest assets/speech/manifest.jsonl.

    python assets/make_speech.py          (needs espeak-ng: apt-get install espeak-ng)

English sentences read by espeak-ng in several voices and speeds, some mixed with pink noise at
10 dB SNR, 16 kHz mono FLAC with 0.3 s of silence around the speech. Two splits with disjoint
voices and sentences:

- tune     (15 clips) what the Whisper selection policy was designed and tuned on;
- heldout  (8 clips)  other voices and other sentences, to check that it carries over.

None of the sentences overlaps assets/speech.flac's. The manifest has one JSON object per line:
{"id", "audio" (relative to the manifest), "references": [text], "voice", "speed", "snr_db"
(null: clean), "split", "seconds"}: the form `segprune.eval.asr` reads. Reruns give the same
files: espeak-ng is deterministic for a given version (1.51 here) and the noise is seeded.
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
OUT = HERE / "speech"
PAD_SECONDS = 0.3
PEAK = 0.3
SNR_DB = 10.0

# (id, split, voice, words per minute, noisy, sentence)
CLIPS = [
    ("tune-01", "tune", "en-us", 160, False, "The train to the airport leaves every twenty minutes."),
    ("tune-02", "tune", "en-gb", 150, False, "My sister planted tomatoes and beans in the garden last spring."),
    ("tune-03", "tune", "en-us+f3", 170, False, "Could you send me the report before the meeting on Friday?"),
    ("tune-04", "tune", "en-gb-x-rp", 140, True, "The museum is closed on Mondays."),
    ("tune-05", "tune", "en-029", 165, False, "He bought a red bicycle with a basket for his daily ride to work."),
    ("tune-06", "tune", "en-us+m3", 180, False, "Water boils at one hundred degrees at sea level."),
    ("tune-07", "tune", "en-gb+f2", 155, True, "Please write your name at the top of every page."),
    (
        "tune-08",
        "tune",
        "en-us",
        145,
        False,
        (
            "The children watched the birds build a nest in the old oak tree behind the school, "
            "and every morning they counted the eggs."
        ),
    ),
    ("tune-09", "tune", "en-gb", 190, False, "Turn left at the bakery and the library is on your right."),
    ("tune-10", "tune", "en-us+f3", 135, False, "Rain is expected tonight in the north."),
    ("tune-11", "tune", "en-gb-x-rp", 160, False, "The doctor told him to drink more water and to sleep eight hours."),
    ("tune-12", "tune", "en-029", 150, True, "We are going to the beach this weekend if the weather is nice."),
    ("tune-13", "tune", "en-gb+f2", 175, False, "The chef added salt, pepper and a little lemon juice to the soup."),
    (
        "tune-14",
        "tune",
        "en-us",
        170,
        False,
        (
            "After the storm the streets were full of branches, so the city sent trucks to clear them "
            "before the morning traffic."
        ),
    ),
    ("tune-15", "tune", "en-gb", 140, False, "I left my umbrella on the bus this morning."),
    ("heldout-01", "heldout", "en-us-nyc", 160, False, "The library will open an hour later on public holidays."),
    (
        "heldout-02",
        "heldout",
        "en-gb-scotland",
        150,
        False,
        "Our neighbours are painting their fence a bright shade of blue.",
    ),
    ("heldout-03", "heldout", "en-gb-x-gbclan+m4", 170, True, "Keep the milk in the fridge and close the door."),
    (
        "heldout-04",
        "heldout",
        "en-us+f4",
        155,
        False,
        "The football match was cancelled because the field was covered in snow.",
    ),
    ("heldout-05", "heldout", "en-gb-x-gbcwmd", 145, False, "She plays the violin in the city orchestra every Sunday."),
    ("heldout-06", "heldout", "en-us-nyc+m5", 185, True, "The printer on the second floor is out of paper again."),
    (
        "heldout-07",
        "heldout",
        "en-gb-scotland+f4",
        160,
        False,
        "When the sun went down the mountain air turned cold, and the hikers lit a small fire to cook their dinner.",
    ),
    ("heldout-08", "heldout", "en-us+m5", 140, False, "Thank you for waiting, your table is ready."),
]


def espeak(text: str, voice: str, speed: int) -> np.ndarray:
    """espeak-ng reading `text` with `voice` at `speed` words per minute, at 16 kHz, [n] float64."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "x.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(wav), text], check=True)
        x, rate = soundfile.read(wav, dtype="float64")
    return resample_poly(x, RATE, rate) if rate != RATE else x


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS pink (1/f power) noise [n]: white noise shaped by 1/sqrt(f) in the frequency domain."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n)
    spectrum[1:] /= np.sqrt(f[1:] / f[1])
    spectrum[0] = 0.0
    x = np.fft.irfft(spectrum, n)
    return x / np.sqrt(np.mean(x**2))


def clip(text: str, voice: str, speed: int, noisy: bool, rng: np.random.Generator) -> np.ndarray:
    speech = espeak(text, voice, speed)
    pad = np.zeros(int(PAD_SECONDS * RATE))
    x = np.concatenate([pad, speech, pad])
    if noisy:  # SNR over the speech span: speech power / noise power = 10^(SNR/10)
        power = np.mean(speech**2)
        x = x + pink_noise(x.size, rng) * np.sqrt(power / 10 ** (SNR_DB / 10))
    return PEAK * x / np.abs(x).max()


def main() -> None:
    if shutil.which("espeak-ng") is None:
        sys.exit("make_speech.py: error: espeak-ng is needed (apt-get install espeak-ng)")
    OUT.mkdir(exist_ok=True)
    rng = np.random.default_rng(13)
    lines, total = [], 0
    for clip_id, split, voice, speed, noisy, text in CLIPS:
        x = clip(text, voice, speed, noisy, rng).astype(np.float32)
        path = OUT / f"{clip_id}.flac"
        soundfile.write(path, x, RATE, format="FLAC", subtype="PCM_16", compression_level=1.0)
        total += path.stat().st_size
        record = {
            "id": clip_id,
            "audio": path.name,
            "references": [text],
            "voice": voice,
            "speed": speed,
            "snr_db": SNR_DB if noisy else None,
            "split": split,
            "seconds": round(x.size / RATE, 2),
        }
        lines.append(json.dumps(record))
        print(f"{path.name}: {x.size / RATE:.1f} s, {path.stat().st_size / 1024:.0f} KiB")
    (OUT / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    print(f"{len(lines)} clips, {total / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
