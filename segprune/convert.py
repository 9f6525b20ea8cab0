"""CTranslate2 Whisper checkpoints (faster-whisper's format) -> a transformers Whisper folder.

    read_ct2("ct2-folder/model.bin")                  -> (variables, aliases)
    convert_whisper("ct2-folder", "whisper-tiny.en")  -> Path("whisper-tiny.en")
    segprune convert-whisper SRC OUT                   (SRC: a folder, or the model.bin part files in order)

The `model.bin` of a CTranslate2 model (binary version 6) is, little-endian:

    u32 version | str spec | u32 revision | u32 n_vars
    n_vars  x  str name | u8 rank | u32 dims[rank] | u8 dtype | u32 nbytes | nbytes raw bytes
    u32 n_aliases  x  str alias | str target

where a `str` is a u16 length (including a final NUL) followed by UTF-8 bytes and the NUL, and
dtype ids 0..5 are float32, int8, int16, int32, float16, bfloat16. Scalars (`num_heads`,
`activation`, ...) are rank-0 variables. A model split into parts (`model.bin.part1`, ...) is the
byte concatenation of its parts.

Whisper's variables map one to one onto `WhisperForConditionalGeneration` (a layer's
`self_attention/linear_0` is the fused [q; k; v] projection, `linear_1` the output;
cross-attention `linear_0` is q, `linear_1` the fused [k; v], `linear_2` the output;
`layer_norm/{gamma,beta}` are weight/bias; `ffn/linear_0`/`linear_1` are fc1/fc2). The key bias
of the fused projections is dropped: transformers' Whisper has none, and a bias added to every key
shifts all of a query's logits equally, so the softmax does not change. Weights are stored as
float32 (the published checkpoints are float16; float16 -> float32 is exact).

The processor is a `WhisperFeatureExtractor` (the checkpoint's mel bins, 16 kHz, 30 s windows) and
a `WhisperTokenizer` built from the package's `tokenizer.json`; timestamp tokens `<|0.00|>` ...
are appended when the tokenizer lacks them, as CTranslate2's own converter names them. The
generation config takes the special ids from the tokenizer and, from the package's `config.json`,
the suppress lists (`suppress_ids`, `suppress_ids_begin`: CTranslate2's converter copied them from
OpenAI's generation config) and the alignment heads. Multilingual checkpoints (a `<|en|>` token
after `<|startoftranscript|>`, 51865 tokens) also get `lang_to_id`, `task_to_id` and
`task="transcribe"`, so that `generate` prompts `<|startoftranscript|><|lang|><|transcribe|>
<|notimestamps|>` with the language detected; English-only ones prompt
`<|startoftranscript|><|notimestamps|>`.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import numpy as np

__all__ = ["CheckpointError", "convert_whisper", "read_ct2", "register_convert"]

BINARY_VERSION = 6
SPEC = "WhisperSpec"
# dtype ids of CTranslate2's binary format, in order; bfloat16 is read as uint16 and widened
_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
_NUMPY = {"float32": "<f4", "int8": "i1", "int16": "<i2", "int32": "<i4", "float16": "<f2", "bfloat16": "<u2"}
_TASKS = ("transcribe", "translate")


class CheckpointError(ValueError):
    """A CTranslate2 checkpoint could not be read or converted; the message is one sentence."""


# ---------------------------------------------------------------------------------------- reading


class _Reader:
    """Sequential little-endian reads over a buffer; running past its end raises CheckpointError."""

    def __init__(self, data: memoryview, where: str):
        self.data, self.where, self.pos = data, where, 0

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise CheckpointError(
                f"{self.where} ends early (at byte {len(self.data)}, {self.pos + n} needed): the file is "
                "truncated, or a part of a split model.bin is missing or out of order."
            )
        view = self.data[self.pos : self.pos + n]
        self.pos += n
        return view

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return struct.unpack("<H", self.take(2))[0]

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def string(self) -> str:
        raw = bytes(self.take(self.u16()))
        if not raw or raw[-1] != 0:
            raise CheckpointError(f"{self.where} is not a CTranslate2 model file (a name is not NUL-terminated).")
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError:
            raise CheckpointError(f"{self.where} is not a CTranslate2 model file (a name is not UTF-8).") from None


def _model_files(source) -> list[Path]:
    """The model.bin file(s) named by `source`: a model.bin, a folder holding model.bin or
    model.bin.part1, part2, ... (taken in numeric order), or a list of part files (taken as given)."""
    if isinstance(source, (list, tuple)):
        parts = [Path(p) for p in source]
        if not parts:
            raise CheckpointError("No model.bin part files were given.")
    else:
        path = Path(source)
        if path.is_dir():
            whole = path / "model.bin"
            found = sorted(path.glob("model.bin.part*"), key=lambda p: [int(d) for d in re.findall(r"\d+", p.name)])
            parts = [whole] if whole.is_file() else found
            if not parts:
                raise CheckpointError(f"{path} holds no model.bin (nor model.bin.part1, part2, ...).")
        else:
            parts = [path]
    for part in parts:
        if not part.is_file():
            raise CheckpointError(f"{part} does not exist or is not a file.")
    return parts


def read_ct2(model_bin_or_parts) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read a CTranslate2 `model.bin` (binary version 6, spec WhisperSpec).

    model_bin_or_parts: a model.bin path, a folder holding it (or its parts), or the list of part
    files in order (their bytes are concatenated).
    Returns (variables, aliases): variables maps each name to its array in the stored dtype
    (bfloat16 arrives as its uint16 bit pattern; rank-0 scalars are 0-d arrays), aliases maps an
    alias name to the variable it stands for. Raises CheckpointError (one sentence) on a truncated
    file, a wrong version or spec, an unknown dtype, a size mismatch or trailing bytes.
    """
    parts = _model_files(model_bin_or_parts)
    where = str(parts[0]) if len(parts) == 1 else f"The concatenation of {', '.join(p.name for p in parts)}"
    data = b"".join(p.read_bytes() for p in parts) if len(parts) > 1 else parts[0].read_bytes()
    r = _Reader(memoryview(data), where)
    version = r.u32()
    if version != BINARY_VERSION:
        raise CheckpointError(
            f"{where} is CTranslate2 binary version {version}, not {BINARY_VERSION} (the only one this reader knows)."
            if version < 100
            else f"{where} is not a CTranslate2 model file (it does not start with a binary version number)."
        )
    spec = r.string()
    if spec != SPEC:
        raise CheckpointError(f"{where} holds a CTranslate2 {spec!r} model, not a Whisper model ({SPEC}).")
    r.u32()  # the spec's revision
    variables: dict[str, np.ndarray] = {}
    for _ in range(r.u32()):
        name = r.string()
        dims = [r.u32() for _ in range(r.u8())]
        dtype_id = r.u8()
        if dtype_id >= len(_DTYPES):
            raise CheckpointError(f"{where}: variable {name!r} has an unknown dtype id {dtype_id}.")
        dtype = np.dtype(_NUMPY[_DTYPES[dtype_id]])
        nbytes = r.u32()
        if nbytes != dtype.itemsize * int(np.prod(dims, dtype=np.int64)):
            raise CheckpointError(f"{where}: variable {name!r} of shape {dims} has {nbytes} bytes, not a whole array.")
        variables[name] = np.frombuffer(r.take(nbytes), dtype=dtype).reshape(dims)
    aliases = {}
    for _ in range(r.u32()):
        alias = r.string()
        aliases[alias] = r.string()
    if r.pos != len(data):
        raise CheckpointError(
            f"{where} has {len(data) - r.pos} bytes after its last entry: not one CTranslate2 model "
            "(parts in the wrong order, or a part given twice?)."
        )
    return variables, aliases


# ------------------------------------------------------------------------------------ conversion


def _float32(x: np.ndarray, name: str) -> np.ndarray:
    if x.dtype == np.uint16:  # bfloat16 bit patterns: the high half of a float32
        return (x.astype(np.uint32) << 16).view(np.float32)
    if x.dtype in (np.float16, np.float32):
        return x.astype(np.float32)
    raise CheckpointError(f"Variable {name!r} is stored as {x.dtype}: quantized (int8) checkpoints are not supported.")


def _state_dict(variables: dict[str, np.ndarray], aliases: dict[str, str]) -> tuple[dict[str, np.ndarray], dict]:
    """transformers' Whisper state dict (float32 arrays) and config fields from CTranslate2 variables."""
    have = dict(variables)
    for alias, target in aliases.items():
        if target in variables:
            have[alias] = variables[target]

    def get(name: str) -> np.ndarray:
        if name not in have:
            raise CheckpointError(f"The checkpoint has no variable {name!r}: it is not a complete Whisper model.")
        return _float32(have[name], name)

    def linear(out: dict, hf: str, ct: str, bias: bool = True) -> None:
        out[f"{hf}.weight"] = get(f"{ct}/weight")
        if bias:
            out[f"{hf}.bias"] = get(f"{ct}/bias")

    def norm(out: dict, hf: str, ct: str) -> None:
        out[f"{hf}.weight"], out[f"{hf}.bias"] = get(f"{ct}/gamma"), get(f"{ct}/beta")

    def split(out: dict, names: list[str], ct: str) -> None:
        """A fused projection [len(names) * D, D] -> one projection per name (None: dropped key bias)."""
        weights = np.split(get(f"{ct}/weight"), len(names))
        biases = np.split(get(f"{ct}/bias"), len(names))
        for hf, w, b in zip(names, weights, biases):
            out[f"{hf}.weight"] = w
            if not hf.endswith("k_proj"):
                out[f"{hf}.bias"] = b

    def layers(side: str) -> int:
        found = {int(m.group(1)) for n in variables if (m := re.match(rf"{side}/layer_(\d+)/", n))}
        if not found or found != set(range(len(found))):
            raise CheckpointError(f"The checkpoint's {side} layers are missing or not numbered 0, 1, ...")
        return len(found)

    n_enc, n_dec = layers("encoder"), layers("decoder")
    sd: dict[str, np.ndarray] = {}
    e, d = "model.encoder", "model.decoder"
    for i in (1, 2):
        linear(sd, f"{e}.conv{i}", f"encoder/conv{i}")
    sd[f"{e}.embed_positions.weight"] = get("encoder/position_encodings/encodings")
    norm(sd, f"{e}.layer_norm", "encoder/layer_norm")
    for i in range(n_enc):
        hf, ct = f"{e}.layers.{i}", f"encoder/layer_{i}"
        split(sd, [f"{hf}.self_attn.{p}_proj" for p in "qkv"], f"{ct}/self_attention/linear_0")
        linear(sd, f"{hf}.self_attn.out_proj", f"{ct}/self_attention/linear_1")
        norm(sd, f"{hf}.self_attn_layer_norm", f"{ct}/self_attention/layer_norm")
        linear(sd, f"{hf}.fc1", f"{ct}/ffn/linear_0")
        linear(sd, f"{hf}.fc2", f"{ct}/ffn/linear_1")
        norm(sd, f"{hf}.final_layer_norm", f"{ct}/ffn/layer_norm")
    sd[f"{d}.embed_tokens.weight"] = get("decoder/embeddings/weight")
    sd[f"{d}.embed_positions.weight"] = get("decoder/position_encodings/encodings")
    norm(sd, f"{d}.layer_norm", "decoder/layer_norm")
    for i in range(n_dec):
        hf, ct = f"{d}.layers.{i}", f"decoder/layer_{i}"
        split(sd, [f"{hf}.self_attn.{p}_proj" for p in "qkv"], f"{ct}/self_attention/linear_0")
        linear(sd, f"{hf}.self_attn.out_proj", f"{ct}/self_attention/linear_1")
        norm(sd, f"{hf}.self_attn_layer_norm", f"{ct}/self_attention/layer_norm")
        linear(sd, f"{hf}.encoder_attn.q_proj", f"{ct}/attention/linear_0")
        split(sd, [f"{hf}.encoder_attn.{p}_proj" for p in "kv"], f"{ct}/attention/linear_1")
        linear(sd, f"{hf}.encoder_attn.out_proj", f"{ct}/attention/linear_2")
        norm(sd, f"{hf}.encoder_attn_layer_norm", f"{ct}/attention/layer_norm")
        linear(sd, f"{hf}.fc1", f"{ct}/ffn/linear_0")
        linear(sd, f"{hf}.fc2", f"{ct}/ffn/linear_1")
        norm(sd, f"{hf}.final_layer_norm", f"{ct}/ffn/layer_norm")
    tied = aliases.get("decoder/projection/weight") == "decoder/embeddings/weight"
    if not tied:
        sd["proj_out.weight"] = get("decoder/projection/weight")
    vocab, width = sd[f"{d}.embed_tokens.weight"].shape
    config = {
        "vocab_size": int(vocab),
        "d_model": int(width),
        "num_mel_bins": int(sd[f"{e}.conv1.weight"].shape[1]),
        "encoder_layers": n_enc,
        "decoder_layers": n_dec,
        "encoder_attention_heads": int(variables["encoder/num_heads"]),
        "decoder_attention_heads": int(variables["decoder/num_heads"]),
        "encoder_ffn_dim": int(sd[f"{e}.layers.0.fc1.weight"].shape[0]),
        "decoder_ffn_dim": int(sd[f"{d}.layers.0.fc1.weight"].shape[0]),
        "max_source_positions": int(sd[f"{e}.embed_positions.weight"].shape[0]),
        "max_target_positions": int(sd[f"{d}.embed_positions.weight"].shape[0]),
        "tie_word_embeddings": tied,
    }
    return sd, config


def _companion(parts: list[Path], name: str) -> Path:
    """`name` (config.json, tokenizer.json) beside any of the model files, the last part's first."""
    for folder in dict.fromkeys(p.parent for p in reversed(parts)):
        if (folder / name).is_file():
            return folder / name
    folders = ", ".join(str(p) for p in dict.fromkeys(p.parent for p in parts))
    raise CheckpointError(f"No {name} was found beside the model files (looked in {folders}).")


def _tokenizer(path: Path, vocab_size: int):
    """A WhisperTokenizer from a tokenizer.json, with every special added token registered as special
    and timestamp tokens appended up to `vocab_size` if the file lacks them."""
    from transformers import AddedToken, WhisperTokenizer

    added = json.loads(path.read_text(encoding="utf-8")).get("added_tokens", [])
    specials = [t["content"] for t in added if t.get("special") and t["content"] != "<|endoftext|>"]
    tokenizer = WhisperTokenizer(tokenizer_file=str(path), extra_special_tokens=specials)
    missing = vocab_size - len(tokenizer)
    if missing > 0 and "<|0.00|>" not in tokenizer.get_vocab():
        tokenizer.add_tokens([AddedToken(f"<|{i * 0.02:.2f}|>", normalized=False) for i in range(missing)])
    if len(tokenizer) != vocab_size:
        raise CheckpointError(
            f"{path} has {len(tokenizer)} tokens but the model's vocabulary has {vocab_size}: they do not belong together."
        )
    return tokenizer


def _generation_config(tokenizer, ct2_config: dict, config):
    """Whisper's generation config from the tokenizer's special ids and the package's config.json."""
    from transformers import GenerationConfig

    ids = tokenizer.get_vocab()
    need = ["<|endoftext|>", "<|startoftranscript|>", "<|notimestamps|>"]
    if any(t not in ids for t in need):
        raise CheckpointError(f"The tokenizer lacks one of Whisper's special tokens {need}.")
    eot, sot = ids["<|endoftext|>"], ids["<|startoftranscript|>"]
    multilingual = ids.get("<|en|>") == sot + 1 and len(tokenizer) >= 51865
    g = GenerationConfig(
        decoder_start_token_id=sot,
        bos_token_id=eot,
        eos_token_id=eot,
        pad_token_id=eot,
        max_length=config.max_target_positions,
        no_timestamps_token_id=ids["<|notimestamps|>"],
        prev_sot_token_id=ids.get("<|startofprev|>"),
        suppress_tokens=[int(t) for t in ct2_config.get("suppress_ids", [])],
        begin_suppress_tokens=[int(t) for t in ct2_config.get("suppress_ids_begin", [])],
        alignment_heads=[list(map(int, h)) for h in ct2_config.get("alignment_heads", [])],
        is_multilingual=multilingual,
    )
    if multilingual:
        by_id = {i: t for t, i in ids.items()}
        lang_ids = ct2_config.get("lang_ids") or [i for t, i in ids.items() if re.fullmatch(r"<\|[a-z]{2,3}\|>", t)]
        g.lang_to_id = {by_id[int(i)]: int(i) for i in sorted(lang_ids)}
        g.task_to_id = {task: ids[f"<|{task}|>"] for task in _TASKS}
        g.task = "transcribe"  # without a task token the multilingual decoder loops
    return g


def convert_whisper(src, out) -> Path:
    """Convert a CTranslate2 Whisper checkpoint into a transformers folder at `out` and return it.

    src: a CTranslate2 folder (model.bin, or model.bin.part1, part2, ...; config.json and
    tokenizer.json beside it), a model.bin, or the list of model.bin part files in order
    (config.json and tokenizer.json are looked for beside the parts).
    out: the folder to write (created; it must not hold a model already). It gets the
    `save_pretrained` output of a float32 `WhisperForConditionalGeneration`, its `WhisperProcessor`
    and its generation config. Raises CheckpointError with one sentence when the input is wrong.
    """
    import torch
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperProcessor
    from transformers.utils import logging as hf_logging

    out = Path(out)
    if (out / "config.json").exists():
        raise CheckpointError(f"{out} already holds a model (config.json); choose an empty or new folder.")
    parts = _model_files(src)
    tokenizer_path = _companion(parts, "tokenizer.json")
    try:
        ct2_config = json.loads(_companion(parts, "config.json").read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise CheckpointError(f"The CTranslate2 config.json beside the model is not valid JSON ({err}).") from None
    sd, fields = _state_dict(*read_ct2(parts))
    tokenizer = _tokenizer(tokenizer_path, fields["vocab_size"])
    eot, sot = tokenizer.convert_tokens_to_ids(["<|endoftext|>", "<|startoftranscript|>"])
    config = WhisperConfig(
        **fields,
        decoder_start_token_id=sot,
        bos_token_id=eot,
        eos_token_id=eot,
        pad_token_id=eot,
        begin_suppress_tokens=None,
        suppress_tokens=None,
    )
    generation = _generation_config(tokenizer, ct2_config, config)
    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    model.load_state_dict(
        {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()}, strict=False, assign=True
    )
    if config.tie_word_embeddings:
        model.tie_weights()
    left = [n for n, p in model.named_parameters() if p.is_meta] + [n for n, b in model.named_buffers() if b.is_meta]
    if left:
        raise CheckpointError(f"The checkpoint does not fill the model's {left[0]} ({len(left)} tensors missing).")
    model.generation_config = generation
    model.eval()
    features = WhisperFeatureExtractor(feature_size=config.num_mel_bins)
    processor = WhisperProcessor(feature_extractor=features, tokenizer=tokenizer)
    out.mkdir(parents=True, exist_ok=True)
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # library code writes nothing to the terminal
    try:
        model.save_pretrained(out)
        processor.save_pretrained(out)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    return out


# ------------------------------------------------------------------------------------------- CLI


def register_convert(subparsers) -> None:
    """Add `convert-whisper SRC... OUT` to an argparse subparsers object (its handler is `args.func`)."""
    p = subparsers.add_parser(
        "convert-whisper",
        help="convert a CTranslate2 (faster-whisper) Whisper checkpoint into a transformers folder",
        description="Convert a CTranslate2 Whisper checkpoint (a folder with model.bin, config.json and "
        "tokenizer.json, or the model.bin part files in order) into a transformers "
        "WhisperForConditionalGeneration folder with its processor (float32 weights).",
    )
    p.add_argument("src", nargs="+", metavar="SRC", help="a CTranslate2 folder, or its model.bin part files in order")
    p.add_argument("out", metavar="OUT", help="the folder to write")
    p.set_defaults(func=_run_convert)


def _run_convert(args) -> int:
    """Handler of `convert-whisper`: convert, report the folder on stdout; 2 and one line on stderr on bad input."""
    import sys

    src = args.src[0] if len(args.src) == 1 else args.src
    try:
        out = convert_whisper(src, args.out)
    except CheckpointError as err:
        print(f"segprune convert-whisper: error: {err}", file=sys.stderr)
        return 2
    print(out)
    return 0
