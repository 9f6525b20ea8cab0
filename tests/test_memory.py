"""Decoding memory is bounded by the 16 kHz mono clip, whatever the channel count and sample rate.

Silence compresses to almost nothing: a 60 KB Ogg/Vorbis file holds 30 s of 64 channels at 192 kHz
(1.4 GB as float32). Decoding every channel before the mixdown made `segprune run` on that file
peak at 1.9 GB; `segprune.audio` now decodes, mixes down and resamples a block at a time and refuses
more than MAX_CHANNELS channels from the header. Peak memory is read from the kernel: the child's
own rusage for the CLI, the resident high-water mark (reset before the phase) for a direct decode,
so the limits hold whatever else the machine runs.
"""

import io
import struct
import sys

import numpy as np
import pytest
import soundfile
from audiohelpers import peak_rss_mb, vorbis_silence

from segprune.audio import MAX_CHANNELS, AudioError, load_audio
from segprune.bench.memory import PeakMemory


def cli_run(path) -> list[str]:
    args = ["run", str(path), "--model", "tiny-qwen2-audio", "--json", "--repeats", "1", "--max-new-tokens", "2"]
    return [sys.executable, "-m", "segprune.cli", *args, "--device", "cpu"]


def without_serials(data: bytes) -> bytes:
    """An Ogg stream with every page's stream serial number and CRC zeroed."""
    out, pos = bytearray(data), 0
    while pos < len(out):
        out[pos + 14 : pos + 18] = out[pos + 22 : pos + 26] = bytes(4)
        lacing = out[pos + 27 : pos + 27 + out[pos + 26]]
        pos += 27 + len(lacing) + sum(lacing)
    return bytes(out)


def test_the_silence_maker_writes_what_libvorbis_writes(tmp_path):
    made = vorbis_silence(tmp_path / "made.ogg", 3.0, 2)
    buf = io.BytesIO()
    soundfile.write(buf, np.zeros((3 * 192_000, 2), np.float32), 192_000, format="OGG", subtype="VORBIS")
    assert without_serials(made.read_bytes()) == without_serials(buf.getvalue())
    info = soundfile.info(str(made))
    assert (info.frames, info.channels, info.samplerate) == (3 * 192_000, 2, 192_000)
    assert struct.unpack("<I", made.read_bytes()[22:26])[0] != 0  # CRCs are set (libsndfile checks them)


def test_segprune_run_on_64_channels_at_192khz_stays_small(tmp_path):
    """The issue's file: 60 KB, 30 s of 64 channels at 192 kHz (MAX_CHANNELS, Vorbis's highest usual rate).

    Measured peak RSS of this command (2-core machine, tiny-qwen2-audio): 469 MB; 1879 MB when every
    channel was decoded before the mixdown; 443 MB for a 30 s mono 16 kHz WAV. The limit is the
    issue's 1.5 GB.
    """
    path = vorbis_silence(tmp_path / "64ch.ogg", 30.0, MAX_CHANNELS)
    assert path.stat().st_size < 100_000
    code, err, peak = peak_rss_mb(cli_run(path))
    assert code == 0, err
    assert peak < 1500, f"segprune run peaked at {peak:.0f} MB"


def test_segprune_run_refuses_255_channels_before_decoding(tmp_path):
    """255 channels (Vorbis's most), 30 s at 192 kHz, 0.2 MB: refused from the header with one sentence.

    Measured peak RSS (2-core machine): 380 MB; 6076 MB (and 45 s) when it was decoded whole.
    """
    path = vorbis_silence(tmp_path / "255ch.ogg", 30.0, 255)
    code, err, peak = peak_rss_mb(cli_run(path))
    assert (
        code == 2
        and err.strip() == f"segprune: error: 255ch.ogg has 255 channels; files with up to {MAX_CHANNELS} are accepted."
    )
    assert peak < 1500, f"segprune run peaked at {peak:.0f} MB"


def decode_peak_mb(path) -> float:
    load_audio(path, max_seconds=0.5)  # imports and first-call allocations outside the measurement
    with PeakMemory("cpu") as mem:
        audio = load_audio(path)
    assert audio.seconds == pytest.approx(5.0, abs=1e-3)
    return mem.mb


def test_decoding_memory_does_not_grow_with_channels_or_rate(tmp_path):
    """5 s each: 2 channels at 16 kHz; 64 channels at 192 kHz (61 M samples, 234 MiB as float32);
    mono at 768 kHz (the float64 resampling copy alone was 29 MiB). Measured on a 2-core machine:
    2.9 / 4.9 / 5.5 MiB above the resident memory at the start; before the block-wise decoding
    1.1 / 248 / 48 MiB. The result is 0.3 MiB; a block (BLOCK_SAMPLES) 1 MiB of float32, 2 of float64.
    """
    stereo = vorbis_silence(tmp_path / "2ch.ogg", 5.0, 2, rate=16_000)
    many = vorbis_silence(tmp_path / "64ch.ogg", 5.0, 64)
    fast = tmp_path / "768k.wav"
    soundfile.write(fast, 0.1 * np.sin(np.arange(5 * 768_000) / 100), 768_000, subtype="PCM_16")
    base, wide, high = (decode_peak_mb(p) for p in (stereo, many, fast))
    assert wide < base + 16 and high < base + 16, f"2 ch {base:.1f}, 64 ch {wide:.1f}, 768 kHz {high:.1f} MiB"


def test_more_channels_than_the_maximum_are_refused_from_the_header(tmp_path):
    path = tmp_path / "many.wav"
    soundfile.write(path, np.zeros((100, MAX_CHANNELS + 1), np.float32), 16000)
    refusal = rf"^many.wav has {MAX_CHANNELS + 1} channels; files with up to {MAX_CHANNELS} are accepted.$"
    with pytest.raises(AudioError, match=refusal):
        load_audio(path)
    with pytest.raises(
        AudioError, match=r"has 16000 channels; at most 64 are accepted, laid out as \[samples, channels\]"
    ):
        load_audio((16000, np.zeros((2, 16000), np.float32)))  # [channels, samples] by mistake
