"""Token scores: the attention each audio frame receives in the encoder's last self-attention layer.

The encoders run with SDPA or flash attention, which return no attention weights, and asking the
whole encoder for `output_attentions` forces eager attention in every layer and materialises
[layers, heads, T, T] tensors (gigabytes for long audio). Instead, `ReceivedAttention` puts a
forward pre-hook on ONE attention module, recomputes that layer's queries and keys from its input,
and accumulates softmax(QK^T * scale) column sums over valid queries, a chunk of queries at a time.
The hook changes nothing in the forward pass and is removed on exit, also after an exception.
It records only forward passes run by the thread that opened it: concurrent requests that encode
on one shared model (a web app's worker threads) each see their own clip's scores.

Score of frame j in a window with L valid frames:
    received[j] = mean over heads of  sum over valid queries i  of  softmax_i(q_i . k / sqrt(d))[j]
Each query row sums to 1 over the L valid keys, so the scores of a window sum to L and a uniform
attention gives every frame a score of 1: scores of different 30 s windows (and of a shorter last
window) are on the same scale without further normalisation.

Encoders differ in which frames attend to which (a `Span` says it for one stretch of a row):
- Whisper-style with a key mask (Qwen2-Audio, Audio Flamingo 3, MusicFlamingo): the valid frames only.
- No mask at all (Whisper, Voxtral): every frame of the 30 s window, padding included, is a frame
  the model uses, so all of them are queries, keys and candidates.
- No mask but padding that the model drops afterwards (GLM-ASR): the softmax runs over ALL keys,
  as in the model, but only valid frames are queries and candidates; their scores then sum to less
  than their count (`normalise` restores the uniform-is-1 scale per window).
- Block-diagonal attention (Qwen2.5-Omni, 2 s blocks): one span per block, softmax within it.
- An additive term in the logits (Phi-4-multimodal: a learned relative-position bias plus the key
  mask, both in the mask tensor the module is called with): the `qk` function returns it as a third
  element and it is added to q . k before the softmax, as the module adds it.
"""

from __future__ import annotations

import inspect
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .timing import Stopwatch

# (module, its input [B, T, D], its call arguments by name) -> (q scaled, k) [B, heads, T, head_dim], or
# (q, k, bias) with an additive logits term bias [B, heads or 1, T, T]
QKFn = Callable[[nn.Module, torch.Tensor, dict], tuple[torch.Tensor, ...]]


def whisper_qk(module: nn.Module, hidden_states: torch.Tensor, kwargs: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Queries and keys of a Whisper-style attention module (Qwen2-Audio, Audio Flamingo 3, Whisper).

    hidden_states: [B, T, D] (the module's input). Returns q, k: [B, heads, T, head_dim], with the
    module's scaling already applied to q (these modules scale q before the product).
    """
    b, t, _ = hidden_states.shape
    heads, dim = module.num_heads, module.head_dim
    q = (module.q_proj(hidden_states) * module.scaling).view(b, t, heads, dim).transpose(1, 2)
    k = module.k_proj(hidden_states).view(b, t, heads, dim).transpose(1, 2)
    return q, k


def rotary_gqa_qk(module: nn.Module, hidden_states: torch.Tensor, kwargs: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Queries and keys of a Llama-style encoder attention with (partial) rotary embeddings and grouped
    key/value heads (GLM-ASR): the module's own `apply_rotary_pos_emb` with the `position_embeddings`
    it is called with, then the key heads repeated to match the query heads.

    hidden_states: [B, T, D]. Returns q (scaled), k: [B, heads, T, head_dim].
    """
    modeling = sys.modules[type(module).__module__]
    shape = (*hidden_states.shape[:-1], -1, module.head_dim)
    q = module.q_proj(hidden_states).view(shape).transpose(1, 2)
    k = module.k_proj(hidden_states).view(shape).transpose(1, 2)
    cos, sin = kwargs["position_embeddings"]
    q, k = modeling.apply_rotary_pos_emb(q, k, cos, sin)
    return q * module.scaling, modeling.repeat_kv(k, module.num_key_value_groups)


def packed_qk(module: nn.Module, hidden_states: torch.Tensor, kwargs: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Queries and keys of an encoder attention over a packed sequence [T, D] without batch dimension
    (Qwen2.5-Omni; its blocks come from `cu_seqlens`). Returns q (scaled), k: [1, heads, T, head_dim]."""
    t = hidden_states.shape[0]
    q = module.q_proj(hidden_states).reshape(t, module.num_heads, -1).transpose(0, 1)
    k = module.k_proj(hidden_states).reshape(t, module.num_heads, -1).transpose(0, 1)
    return (q * module.scaling).unsqueeze(0), k.unsqueeze(0)


@dataclass(frozen=True)
class Span:
    """A stretch of one row of the attention input: frames [start, start + length) are the queries
    and the scored keys; the softmax runs over keys [start, start + keys) (keys >= length: an
    encoder without a key mask also attends to the padding after the valid frames)."""

    start: int
    length: int
    keys: int


def spans_of(rows: Sequence) -> list[list[Span]]:
    """Normalise a row description: an int n means one span of n valid frames attending to each other."""
    return [[Span(0, int(r), int(r))] if isinstance(r, int) or torch.is_tensor(r) else list(r) for r in rows]


def received_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    length: int,
    chunk_size: int = 256,
    keys: int | None = None,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Attention received by each of the first `length` keys from the first `length` queries.

    q, k: [heads, T, head_dim] (q already scaled). The softmax of each query runs over the first
    `keys` keys (default `length`) of its logits q . k (+ bias [heads or 1, T, T] where given, as
    the module adds it). Returns [length] float32: per key, the sum over the queries of their
    softmax weights, averaged over heads.
    """
    keys = length if keys is None else keys
    q = q[:, :length].float()
    k = k[:, :keys].float()
    bias = None if bias is None else bias[:, :length, :keys]
    total = torch.zeros(q.shape[0], length, dtype=torch.float64, device=q.device)  # sums of up to T terms
    for start in range(0, length, chunk_size):
        logits = q[:, start : start + chunk_size] @ k.transpose(-1, -2)
        if bias is not None:
            logits += bias[:, start : start + chunk_size].float()
        weights = torch.softmax(logits, dim=-1)
        total += weights[..., :length].sum(dim=1)  # a chunk in float32, the running total in float64
    return total.mean(dim=0).float()


class ReceivedAttention:
    """Context manager recording, for one attention module, the attention each frame receives.

    attention: the self-attention module to observe (e.g. ``encoder.layers[-1].self_attn``).
    rows: one entry per batch row of the module's input, known before the forward pass (from the
        feature mask): the number of valid (non-padded) frames, or a list of `Span`s.
    qk: how to get scaled queries and keys [B, heads, T, head_dim] (and an additive logits term, where
        the module adds one) from the module's input and call arguments (see `whisper_qk`,
        `rotary_gqa_qk`, `packed_qk`, `QKFn`).

    After the forward pass, `scores` is a list of B float32 tensors, row b the concatenated scores
    of its spans (shape [valid frames of row b]), and `ms` is the time the hook itself took.
    Forward passes of other threads through the same module (other requests on a shared model)
    are ignored.
    """

    def __init__(self, attention: nn.Module, rows, qk: QKFn = whisper_qk, chunk_size: int = 256):
        self.attention = attention
        self.rows = spans_of(rows)
        self.qk = qk
        self.chunk_size = chunk_size
        self.scores: list[torch.Tensor] | None = None
        self.ms = 0.0
        self._handle = None
        self._thread: int | None = None

    def __enter__(self) -> ReceivedAttention:
        self._thread = threading.get_ident()
        self._handle = self.attention.register_forward_pre_hook(self._hook, with_kwargs=True)
        return self

    def __exit__(self, *exc) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    @property
    def active(self) -> bool:
        return self._handle is not None

    @torch.no_grad()
    def _hook(self, module: nn.Module, args: tuple, kwargs: dict | None = None):
        # torch reads a module's hooks from a snapshot: a hook removed (this context closed) while
        # another thread's forward dispatches it is then called without kwargs. It must not fail.
        if kwargs is None or self._handle is None or threading.get_ident() != self._thread:
            return  # a closed context, or another thread's forward pass: not this request's
        hidden_states = args[0] if args else kwargs["hidden_states"]
        rows = hidden_states.shape[0] if hidden_states.dim() == 3 else 1  # a 2-D input is one packed row
        if rows != len(self.rows):
            raise ValueError(f"ReceivedAttention got {rows} batch rows but {len(self.rows)} lengths.")
        with Stopwatch(hidden_states.device) as sw:
            called = inspect.signature(module.forward).bind_partial(*args, **kwargs).arguments
            q, k, *extra = self.qk(module, hidden_states, {**kwargs, **called})
            bias = extra[0] if extra else None
            self.scores = [
                torch.cat(
                    [
                        received_attention(
                            q[b, :, s.start : s.start + s.keys],
                            k[b, :, s.start : s.start + s.keys],
                            s.length,
                            self.chunk_size,
                            s.keys,
                            None if bias is None else _span_bias(bias, b, s),
                        )
                        for s in spans
                    ]
                )
                for b, spans in enumerate(self.rows)
            ]
        self.ms += sw.ms


def _span_bias(bias: torch.Tensor, row: int, span: Span) -> torch.Tensor:
    """The additive logits term [heads or 1, keys, keys] of one span of one row of bias [B, h, T, T]."""
    window = slice(span.start, span.start + span.keys)
    return bias[row if bias.shape[0] > 1 else 0, :, window, window]


def normalise(frame_scores: torch.Tensor) -> torch.Tensor:
    """Rescale one window's frame scores [L] to sum to L (mean 1). A no-op up to rounding where the
    softmax ran over the valid frames only; for GLM-ASR it removes the share that went to padding."""
    total = frame_scores.sum()
    return frame_scores * (len(frame_scores) / total) if total > 0 else frame_scores


def pool_scores(frame_scores: torch.Tensor, n_tokens: int, stride: int = 2) -> torch.Tensor:
    """Map frame scores [>= stride * n_tokens] to LLM-token scores [n_tokens] the way the encoder
    pools its frames (average pooling, or concatenation of `stride` frames into one token): token j
    is the mean of frames stride*j .. stride*j + stride - 1."""
    return frame_scores[: stride * n_tokens].view(n_tokens, stride).mean(dim=1)
