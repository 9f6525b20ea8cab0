"""Audio loading: every kind of input becomes 16 kHz mono float32 or one plain sentence."""

import io
import math
import struct
import time
from fractions import Fraction

import numpy as np
import pytest
import soundfile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segprune import audio as audio_module
from segprune.audio import ACCEPTED_FORMATS, AudioError, from_samples, load_audio, resample


def tone(freq=1000.0, seconds=1.0, rate=16000, channels=1):
    t = np.arange(int(seconds * rate)) / rate
    x = 0.5 * np.sin(2 * np.pi * freq * t)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def peak_hz(samples, rate):
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return np.fft.rfftfreq(len(samples), 1 / rate)[np.argmax(spectrum)]


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000, 96000])
def test_sample_rates_are_resampled_to_16k_keeping_the_pitch(tmp_path, rate):
    path = tmp_path / f"tone_{rate}.wav"
    soundfile.write(path, tone(1000.0, 1.0, rate), rate)
    audio = load_audio(path)
    assert audio.sample_rate == 16000 and audio.source_rate == rate
    assert len(audio.samples) == pytest.approx(16000, abs=2)
    assert peak_hz(audio.samples, 16000) == pytest.approx(1000.0, abs=2.0)


def test_resampling_quality_44k1_tone_stays_at_1khz_without_aliasing():
    x = tone(1000.0, 2.0, 44100) + 0.3 * tone(11000.0, 2.0, 44100)  # 11 kHz is above 16 kHz's Nyquist
    y = resample(x.astype(np.float32), 44100, 16000)
    assert peak_hz(y, 16000) == pytest.approx(1000.0, abs=1.0)
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    freqs = np.fft.rfftfreq(len(y), 1 / 16000)
    alias = spectrum[(freqs > 4500) & (freqs < 5500)].max()  # 11 kHz would alias to 5 kHz
    assert alias < 1e-3 * spectrum.max()


@pytest.mark.parametrize("rate", [44101, 767999])
def test_odd_sample_rates_resample_fast_and_in_tune(rate):
    """The exact ratio 16000/767999 would need a 15-million-tap filter (3 s of CPU for 0.05 s of audio).
    Measured: 0.01 s of CPU for this second of audio (this thread's CPU time, whatever else runs)."""
    x = tone(1000.0, 1.0, rate)
    start = time.thread_time()
    audio = load_audio((rate, x))
    assert time.thread_time() - start < 1.0
    assert len(audio.samples) == pytest.approx(16000, abs=2)
    assert peak_hz(audio.samples, 16000) == pytest.approx(1000.0, abs=2.0)


@pytest.mark.parametrize("channels", [2, 6])
def test_multichannel_is_mixed_down(tmp_path, channels):
    path = tmp_path / "multi.wav"
    soundfile.write(path, tone(440.0, 0.5, 16000, channels), 16000)
    audio = load_audio(path)
    assert audio.samples.ndim == 1 and audio.source_channels == channels
    np.testing.assert_allclose(audio.samples, tone(440.0, 0.5), atol=1e-4)


def straightforward(path) -> np.ndarray:
    """The whole file decoded at once, mean of its channels, one resample_poly call: the reference."""
    from scipy.signal import resample_poly

    samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
    ratio = Fraction(16000, rate).limit_denominator(1000)
    mono = samples.mean(axis=1, dtype=np.float64)
    return mono.astype(np.float32) if rate == 16000 else resample_poly(mono, ratio.numerator, ratio.denominator)


def distinct_channels(seconds, rate, channels, seed=0):
    """[n, channels]: a different tone and noise level in every channel."""
    t = np.arange(int(seconds * rate))[:, None] / rate
    freqs = 100 + 37 * np.arange(channels)
    noise = np.random.default_rng(seed).standard_normal((len(t), channels))
    return (0.4 * np.sin(2 * np.pi * freqs * t) + 0.05 * noise).astype(np.float32) / 2


@pytest.mark.parametrize(
    "fmt,subtype,rate,channels",
    [
        ("WAV", "FLOAT", 48000, 64),
        ("WAV", "PCM_16", 16000, 64),
        ("WAV", "PCM_24", 192000, 3),
        ("FLAC", "PCM_16", 44100, 8),
        ("OGG", "VORBIS", 48000, 64),
    ],
)
@pytest.mark.parametrize("block", [None, 1000])  # the default BLOCK_SAMPLES; blocks of a few frames
def test_block_wise_decoding_equals_the_mean_of_the_channels_decoded_whole(
    tmp_path, monkeypatch, fmt, subtype, rate, channels, block
):
    path = tmp_path / f"many.{fmt.lower()}"
    soundfile.write(path, distinct_channels(0.3, rate, channels), rate, format=fmt, subtype=subtype)
    if block is not None:
        monkeypatch.setattr(audio_module, "BLOCK_SAMPLES", block)
    audio = load_audio(path)
    want = straightforward(path)
    assert audio.source_channels == channels and audio.samples.shape == want.shape
    np.testing.assert_allclose(audio.samples, want, atol=2e-6)
    assert np.abs(want).max() > 0.05  # not silence


@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.float64])
def test_arrays_are_mixed_down_block_wise_like_the_whole(monkeypatch, dtype):
    x = distinct_channels(0.5, 44100, 6)
    if dtype == np.int16:
        x = (x * 32767).astype(np.int16)
    elif dtype == np.uint8:
        x = (x * 127 + 128).astype(np.uint8)
    whole = load_audio((44100, x.astype(dtype))).samples
    monkeypatch.setattr(audio_module, "BLOCK_SAMPLES", 1000)
    np.testing.assert_allclose(load_audio((44100, x.astype(dtype))).samples, whole, atol=1e-6)
    scaled = audio_module._to_float(x.astype(dtype), np.float64).mean(axis=1)
    np.testing.assert_allclose(whole, resample(scaled, 44100, 16000), atol=1e-6)


@pytest.mark.parametrize("rate", [1000, 8000, 22050, 44100, 44101, 96000, 767999, 768000])
@pytest.mark.parametrize("block", [1, 777, 1 << 18])
def test_block_wise_resampling_equals_one_resample_poly_call(monkeypatch, rate, block):
    """Blocks as short as the ratio's denominator, odd lengths, one block: the same samples as scipy."""
    from scipy.signal import resample_poly

    x = np.random.default_rng(rate).standard_normal(rate // 2 + 17).astype(np.float32)
    ratio = Fraction(16000, rate).limit_denominator(1000)
    want = resample_poly(x.astype(np.float64), ratio.numerator, ratio.denominator).astype(np.float32)
    monkeypatch.setattr(audio_module, "BLOCK_SAMPLES", block)
    got = resample(x, rate, 16000)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-6)


def wav_bytes(seconds=1.0, rate=16000) -> bytearray:
    buf = io.BytesIO()
    soundfile.write(buf, tone(440.0, seconds, rate), rate, format="WAV", subtype="PCM_16")
    data = bytearray(buf.getvalue())
    assert data[36:40] == b"data"  # soundfile writes a plain 44-byte header
    return data


def test_a_wav_whose_header_claims_more_data_than_it_holds_says_so(tmp_path):
    claims = wav_bytes(1.0)
    claims[40:44] = struct.pack("<I", 10 * 32000)  # the data chunk claims 10 s; 1 s follows
    (tmp_path / "claims.wav").write_bytes(claims)
    audio = load_audio(tmp_path / "claims.wav")
    assert audio.seconds == pytest.approx(1.0) and audio.missing_seconds == pytest.approx(9.0)
    assert audio.truncated_seconds == 0.0

    cut = wav_bytes(1.0)[: 44 + 8000]  # a download cut off after 0.25 s
    (tmp_path / "cut.wav").write_bytes(cut)
    audio = load_audio(tmp_path / "cut.wav")
    assert audio.seconds == pytest.approx(0.25) and audio.missing_seconds == pytest.approx(0.75)

    long = wav_bytes(4.0)[: 44 + 3 * 32000]  # 3 of 4 s present, 2 s wanted: 1 s dropped, 1 s missing
    (tmp_path / "long.wav").write_bytes(long)
    audio = load_audio(tmp_path / "long.wav", max_seconds=2.0)
    assert audio.seconds == pytest.approx(2.0) and audio.truncated_seconds == pytest.approx(1.0)
    assert audio.missing_seconds == pytest.approx(1.0)
    assert audio.truncated(1.0).missing_seconds == pytest.approx(1.0)  # kept through truncation


def test_complete_and_streaming_wavs_miss_nothing(tmp_path):
    (tmp_path / "whole.wav").write_bytes(wav_bytes(1.0))
    streaming = wav_bytes(1.0)
    streaming[40:44] = b"\xff" * 4  # "length unknown", as a recorder writing to a pipe leaves it
    (tmp_path / "streaming.wav").write_bytes(streaming)
    for name in ("whole.wav", "streaming.wav"):
        audio = load_audio(tmp_path / name)
        assert audio.seconds == pytest.approx(1.0) and audio.missing_seconds == 0.0, name
    flac = tmp_path / "whole.flac"
    soundfile.write(flac, distinct_channels(1.0, 16000, 2), 16000, format="FLAC")
    assert load_audio(flac).missing_seconds == 0.0 == load_audio(np.zeros(16000, np.float32)).missing_seconds


def test_a_cut_off_mp3_reports_the_missing_part_not_a_truncation(tmp_path):
    buf = io.BytesIO()
    soundfile.write(buf, tone(500.0, 3.0), 16000, format="MP3", subtype="MPEG_LAYER_III")
    data = buf.getvalue()
    (tmp_path / "cut.mp3").write_bytes(data[: len(data) // 2])  # its header still announces 3 s
    audio = load_audio(tmp_path / "cut.mp3")
    assert 1.0 < audio.seconds < 2.0 and audio.truncated_seconds == 0.0
    assert audio.seconds + audio.missing_seconds == pytest.approx(3.0, abs=1e-3)


@pytest.mark.parametrize(
    "fmt,subtype",
    [
        ("WAV", "PCM_U8"),
        ("WAV", "PCM_16"),
        ("WAV", "PCM_24"),
        ("WAV", "PCM_32"),
        ("WAV", "FLOAT"),
        ("FLAC", "PCM_16"),
        ("OGG", "VORBIS"),
        ("OGG", "OPUS"),
        ("MP3", "MPEG_LAYER_III"),
    ],
)
def test_formats_and_bit_depths(tmp_path, fmt, subtype):
    path = tmp_path / f"clip.{fmt.lower()}"
    soundfile.write(path, tone(500.0, 1.0), 16000, format=fmt, subtype=subtype)
    audio = load_audio(path)
    assert audio.seconds == pytest.approx(1.0, abs=0.08)  # codecs pad a little
    assert peak_hz(audio.samples, 16000) == pytest.approx(500.0, abs=3.0)
    assert np.all(np.isfinite(audio.samples))


def write_bad(tmp_path, kind):
    path = tmp_path / f"{kind}.wav"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "zero_samples":
        soundfile.write(path, np.zeros(0, dtype=np.float32), 16000)
    elif kind == "random_bytes":
        path.write_bytes(np.random.default_rng(1).bytes(5000))
    elif kind == "png":
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(200))
    elif kind == "corrupt_header":
        buf = io.BytesIO()
        soundfile.write(buf, tone(), 16000, format="WAV")
        data = bytearray(buf.getvalue())
        data[20:36] = b"\xff" * 16  # destroy the fmt chunk
        path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(
    "kind,needle",
    [
        ("empty", "empty"),
        ("zero_samples", "no samples"),
        ("random_bytes", ACCEPTED_FORMATS),
        ("png", ACCEPTED_FORMATS),
        ("corrupt_header", "could not be read"),
    ],
)
def test_bad_files_give_one_plain_sentence(tmp_path, kind, needle):
    with pytest.raises(AudioError) as err:
        load_audio(write_bad(tmp_path, kind))
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_missing_file_folder_and_size_limit(tmp_path):
    with pytest.raises(AudioError, match="No such audio file"):
        load_audio(tmp_path / "nope.wav")
    with pytest.raises(AudioError, match="folder"):
        load_audio(tmp_path)
    path = tmp_path / "big.wav"
    soundfile.write(path, tone(seconds=2.0), 16000)
    with pytest.raises(AudioError, match="MB are accepted"):
        load_audio(path, max_bytes=10_000)


def test_long_file_is_read_only_up_to_max_seconds(tmp_path):
    path = tmp_path / "long.wav"
    soundfile.write(path, tone(seconds=12.0, rate=8000), 8000)
    audio = load_audio(path, max_seconds=5.0)
    assert audio.seconds == pytest.approx(5.0, abs=1e-3)
    assert audio.truncated_seconds == pytest.approx(7.0, abs=1e-3)
    again = audio.truncated(3.0)
    assert again.seconds == pytest.approx(3.0) and again.truncated_seconds == pytest.approx(9.0, abs=1e-3)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_refused(bad):
    x = tone().astype(np.float32)
    x[100] = bad
    with pytest.raises(AudioError, match="NaN or infinite"):
        load_audio((16000, x))


def test_integer_arrays_from_a_microphone_are_scaled():
    x = (tone() * 32767).astype(np.int16)
    audio = load_audio((16000, x))
    np.testing.assert_allclose(audio.samples, tone(), atol=1e-4)
    audio = load_audio((16000, (tone() * 127 + 128).astype(np.uint8)))
    assert np.abs(audio.samples).max() <= 1.0


def test_silence_and_clipping_are_accepted():
    assert load_audio(np.zeros(16000, dtype=np.float32)).is_silent
    loud = np.clip(np.random.default_rng(0).standard_normal(16000) * 4, -1, 1).astype(np.float32)
    audio = load_audio(loud)
    assert not audio.is_silent and np.abs(audio.samples).max() == 1.0


@pytest.mark.parametrize("rate", [0, -8000, "abc", None, math.nan])
def test_bad_sample_rates(rate):
    with pytest.raises(AudioError, match="sample rate"):
        load_audio((rate, tone()))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(min_size=0, max_size=3000), suffix=st.sampled_from([".wav", ".flac", ".ogg", ".mp3", ""]))
def test_fuzz_random_bytes_only_clean_errors(tmp_path_factory, data, suffix):
    path = tmp_path_factory.mktemp("fuzz") / f"f{suffix}"
    path.write_bytes(data)
    try:
        audio = load_audio(path)
    except AudioError as err:
        assert str(err) and "\n" not in str(err)
    else:  # bytes that happen to decode must still be valid audio
        assert audio.samples.dtype == np.float32 and np.all(np.isfinite(audio.samples))


@settings(max_examples=80, deadline=None)
@given(
    rate=st.one_of(st.integers(-10, 200_000), st.floats(allow_nan=True), st.text(max_size=3)),
    n=st.integers(0, 500),
    channels=st.integers(0, 3),
)
def test_fuzz_raw_arrays_only_clean_errors(rate, n, channels):
    shape = (n,) if channels == 0 else (n, channels)
    x = np.random.default_rng(n).standard_normal(shape).astype(np.float32)
    try:
        audio = from_samples(x, rate)
    except AudioError as err:
        assert str(err)
    else:
        assert audio.samples.ndim == 1 and audio.samples.dtype == np.float32


def test_silent_tokens_follow_signal_energy():
    from segprune.silence import silent_tokens, token_rms

    rate = 16000
    x = np.zeros(rate * 2, dtype=np.float32)
    x[: rate // 2] = 0.3 * np.sin(2 * np.pi * 440 * np.arange(rate // 2) / rate)  # 0.5 s tone, then silence
    x[rate:] = 1e-3 * np.random.default_rng(0).standard_normal(rate)  # -60 dBFS noise: 50 dB below the tone
    starts = np.arange(50) * 0.04
    rms = token_rms(x, rate, starts, 0.04)
    assert rms[:12] == pytest.approx(0.3 / np.sqrt(2), rel=0.05)
    silent = silent_tokens(x, rate, starts, 0.04)
    assert not silent[:12].any() and silent[13:].all()
    quiet = x * 0.01  # the same clip 40 dB quieter: the tone is still audible
    assert not silent_tokens(quiet, rate, starts, 0.04)[:12].any()
    past_the_end = token_rms(x, rate, np.array([5.0]), 0.04)
    assert past_the_end.tolist() == [0.0]
