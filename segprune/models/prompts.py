"""A visitor's prompt is text: it never becomes one of the model's control tokens.

Every family tokenises the prompt this way (`DecoderOnlyLM.inputs`, Voxtral's own layout), so nothing
a visitor types can add or remove an audio placeholder, or open a chat turn or a role: the tokens of
the chat template are the only control tokens the model sees.

- Control tokens: the tokenizer's added tokens, special or not (`<|im_start|>`, `<|AUDIO|>`, `<sound>`,
  `<|pad|>`, `<|user|>`, `[INST]`, `[AUDIO]`, `<tool_call>`, ...), except whitespace-only ones (ordinary
  text to the templates that have them). That is more than transformers' default set (special tokens
  and the added tokens its template writes), which would leave Qwen2.5's non-special `<tool_call>` a
  token; `split_special_tokens=True` alone would too.
- In a prompt, their strings are ESCAPED: encoded as the plain characters they are, like any other
  text (`<|im_start|>` becomes `<`, `|`, `im`, ... as the tokenizer writes those characters). This is what
  mistral-common does for Voxtral's real tokenizer (tekken encodes text without special tokens at
  all) and what transformers 5.24 offers as `apply_chat_template(..., sanitize_control_tokens=True)`,
  whose pieces this module uses: the prompt's control-token strings are wrapped in transformers'
  private-use markers (`mark_control_tokens`, which first drops any marker already in the text)
  before the chat template is rendered; the processor, called with `sanitize_control_tokens=True`,
  encodes each marked string as plain text and neither counts nor expands it as an audio placeholder.
- Refused, with one sentence (ValueError), only what cannot be written as text: characters that are
  not valid Unicode (lone surrogates, e.g. from a command line holding bytes that are not UTF-8), and
  a control token that the tokenizer produces even from plain characters (none of the supported
  families' tokenizers does; `prompt_ids` checks it for any tokenizer).
"""

from __future__ import annotations

import re
from functools import lru_cache

import torch
from transformers.utils.chat_template_utils import mark_control_tokens

# The tokenizer call that encodes marked strings as plain text (transformers 5.24's sanitising path).
SANITIZED = {"sanitize_control_tokens": True, "add_special_tokens": False}
_SURROGATE = re.compile("[\ud800-\udfff]")


def control_tokens(tokenizer) -> tuple[str, ...]:
    """The strings of the tokenizer's added tokens, special or not, except whitespace-only ones."""
    return tuple(t.content for t in tokenizer.added_tokens_decoder.values() if t.content.strip())


@lru_cache(maxsize=32)
def _pattern(tokens: tuple[str, ...]) -> re.Pattern:
    longest_first = sorted(tokens, key=len, reverse=True)  # a token before the tokens it contains
    return re.compile("|".join(map(re.escape, longest_first)) or "(?!)")


def check_text(prompt: str) -> str:
    """The prompt itself; ValueError (one sentence) if it holds characters that are not text."""
    bad = _SURROGATE.search(prompt)
    if bad:
        raise ValueError(
            f"The prompt holds {bad.group()!r}, which is not a character (a lone surrogate, e.g. from bytes that "
            "are not UTF-8); write the prompt as UTF-8 text."
        )
    return prompt


def marked(tokenizer, prompt: str) -> str:
    """`prompt` with every control-token string wrapped in transformers' markers, ready to be put in a
    chat template whose text goes to a processor or tokenizer call with `**SANITIZED`."""
    return mark_control_tokens(check_text(prompt), _pattern(control_tokens(tokenizer)))


def prompt_ids(tokenizer, prompt: str, model: str = "this model") -> list[int]:
    """The prompt's token ids as plain text, [T] (for adapters that lay out the ids themselves).
    ValueError (one sentence) where the tokenizer turns some of its characters into a control token."""
    text = marked(tokenizer, prompt)
    control = {tokenizer.convert_tokens_to_ids(t): t for t in control_tokens(tokenizer)}
    control.pop(_unknown_id(tokenizer), None)  # unknown characters become <unk>: that is text handling
    try:
        ids = tokenizer(text, **SANITIZED)["input_ids"]
        forged = [control[i] for i in ids if i in control]
    except ValueError:  # transformers: a marked token that its own characters encode back to
        forged = _unwritable(tokenizer, prompt)
        if not forged:
            raise
    if forged:
        raise ValueError(
            f"The prompt holds text that {model}'s tokenizer reads as its control token {forged[0]!r} even as "
            "plain characters; rephrase that part of the prompt."
        )
    return ids


def _unknown_id(tokenizer) -> int | None:
    """The id a tokenizer writes for characters it has no token for (None where it has none: byte-level
    BPE such as Qwen2's, whose `unk_token` is only a label)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and hasattr(backend.model, "unk_token") and backend.model.unk_token is None:
        return None
    return tokenizer.unk_token_id


def _unwritable(tokenizer, prompt: str) -> list[str]:
    """The control-token strings of the prompt that the tokenizer cannot encode as plain text."""
    bad = []
    for token in _pattern(control_tokens(tokenizer)).findall(prompt):
        try:
            tokenizer(marked(tokenizer, token), **SANITIZED)
        except ValueError:
            bad.append(token)
    return bad


def processor_inputs(processor, text: str, samples, sampling_rate: int):
    """The processor's output (BatchFeature, input_ids [1, L]) for one chat text rendered around a
    `marked` prompt and one clip: the marked strings as plain text, and the ids that the tokenizer
    adds around a text (a BOS, say) added as `ProcessorMixin.apply_chat_template` adds them (unless
    the text starts with the BOS already)."""
    out = processor(text=text, audio=samples, sampling_rate=sampling_rate, return_tensors="pt", **SANITIZED)
    tokenizer = processor.tokenizer
    bos = tokenizer.bos_token
    if tokenizer.num_special_tokens_to_add() and not (bos and text.startswith(bos)):
        before, after = _added_around(tokenizer)
        ids = out["input_ids"]
        out["input_ids"] = torch.cat([ids.new_tensor([before]), ids, ids.new_tensor([after])], dim=1)
        mask = out["attention_mask"]
        out["attention_mask"] = torch.cat([mask.new_ones(1, len(before)), mask, mask.new_ones(1, len(after))], dim=1)
    return out


def _added_around(tokenizer) -> tuple[list[int], list[int]]:
    """The ids the tokenizer adds before and after a single text."""
    bare = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a", add_special_tokens=True)["input_ids"]
    start = next(i for i in range(len(full) - len(bare) + 1) if full[i : i + len(bare)] == bare)
    return full[:start], full[start + len(bare) :]


__all__ = ["SANITIZED", "check_text", "control_tokens", "marked", "processor_inputs", "prompt_ids"]
