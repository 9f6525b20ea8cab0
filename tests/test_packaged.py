"""segprune.models.packaged: finding checkpoint packages, converting once, the cache folder."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from segprune.models import packaged
from segprune.models.packaged import PACKAGED, Packaged, available_packaged, packaged_source, packaged_whisper


def test_default_cache_dir_is_read_when_called(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert packaged.default_cache_dir() == tmp_path / "xdg" / "segprune"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert packaged.default_cache_dir() == tmp_path / "home" / ".cache" / "segprune"


def test_tiny_en_is_found_and_converted_once(tiny_en_folder):
    assert "tiny.en" in available_packaged()
    assert [p.name for p in packaged_source("tiny.en")] == ["model.bin"]
    cache = tiny_en_folder.parent
    stamp = (tiny_en_folder / "model.safetensors").stat().st_mtime_ns
    assert packaged_whisper("tiny.en", cache_dir=cache) == tiny_en_folder  # a cache hit: nothing rewritten
    assert (tiny_en_folder / "model.safetensors").stat().st_mtime_ns == stamp
    assert tiny_en_folder.name.startswith("whisper-tiny.en-")
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no temporary folder left
    assert json.loads((tiny_en_folder / "config.json").read_text())["model_type"] == "whisper"


def test_a_missing_package_gives_none_and_writes_nothing(monkeypatch, tmp_path):
    fake = Packaged(
        files=(("segprune_no_such_package", "model.bin"),), distributions=("x",), multilingual=False, note=""
    )
    monkeypatch.setitem(PACKAGED, "fake", fake)
    assert packaged_source("fake") is None and "fake" not in available_packaged()
    assert packaged_whisper("fake", cache_dir=tmp_path / "cache") is None
    assert not (tmp_path / "cache").exists()
    with pytest.raises(ValueError, match="Unknown packaged Whisper checkpoint 'large'"):
        packaged_whisper("large", cache_dir=tmp_path)


def test_install_keeps_the_first_finished_folder(tmp_path):
    final = tmp_path / "whisper-x"
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(name)
    assert packaged._install(tmp_path / "a", final) == final
    assert packaged._install(tmp_path / "b", final) == final  # the race's loser keeps the winner's folder
    assert (final / "config.json").read_text() == "a"


def test_two_processes_racing_share_one_folder(tmp_path):
    """Two processes convert into one empty cache at the same time: both get the same complete folder."""
    code = "import sys; from segprune.models.packaged import packaged_whisper; print(packaged_whisper('tiny.en', sys.argv[1]))"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=env)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outs[0] == outs[1] and Path(outs[0]).parent == tmp_path
    assert sorted(p.name for p in tmp_path.iterdir()) == [Path(outs[0]).name]
    assert (Path(outs[0]) / "model.safetensors").stat().st_size > 100_000_000
