"""Shared fixtures: tiny real models (built once per session) and generated audio files."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # a forgotten hub access fails fast instead of hanging
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

import numpy as np
import pytest
import soundfile
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

TINY_KEYS = ["tiny-qwen2-audio", "tiny-audio-flamingo-3"]


def scene(seconds: float, rate: int = 16000, seed: int = 0) -> np.ndarray:
    """A sound scene with distinct events: tone bursts and noise bursts over quiet noise, [n] float32."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    x = 0.01 * rng.standard_normal(n)
    for start in np.arange(0.5, seconds, 2.0):
        on = (t >= start) & (t < start + 0.4)
        x[on] += 0.5 * np.sin(2 * np.pi * (300 + 100 * start) * t[on])
    for start in np.arange(1.5, seconds, 3.0):
        on = (t >= start) & (t < start + 0.2)
        x[on] += 0.3 * rng.standard_normal(on.sum())
    return x.astype(np.float32)


@pytest.fixture(scope="session")
def tiny_models():
    from segprune import load_model

    return {key: load_model(key, device="cpu") for key in TINY_KEYS}


@pytest.fixture(scope="session")
def wav_factory(tmp_path_factory):
    folder = tmp_path_factory.mktemp("audio")
    made = {}

    def make(seconds: float, rate: int = 16000, seed: int = 0) -> str:
        key = (seconds, rate, seed)
        if key not in made:
            path = folder / f"scene_{seconds}s_{rate}_{seed}.wav"
            soundfile.write(path, scene(seconds, rate, seed), rate)
            made[key] = str(path)
        return made[key]

    return make
