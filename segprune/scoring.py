"""Token scores: the attention each audio frame receives in the encoder's last self-attention layer.

The encoders run with SDPA or flash attention, which return no attention weights, and asking the
whole encoder for `output_attentions` forces eager attention in every layer and materialises
[layers, heads, T, T] tensors (gigabytes for long audio). Instead, `ReceivedAttention` puts a
forward pre-hook on ONE attention module, recomputes that layer's queries and keys from its input,
and accumulates softmax(QK^T * scale) column sums over valid queries, a chunk of queries at a time.
The hook changes nothing in the forward pass and is removed on exit, also after an exception.

Score of frame j in a window with L valid frames:
    received[j] = mean over heads of  sum over valid queries i  of  softmax_i(q_i . k / sqrt(d))[j]
Each query row sums to 1 over the L valid keys, so the scores of a window sum to L and a uniform
attention gives every frame a score of 1: scores of different 30 s windows (and of a shorter last
window) are on the same scale without further normalisation.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .timing import Stopwatch

QKFn = Callable[[nn.Module, torch.Tensor, dict], tuple[torch.Tensor, torch.Tensor]]


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


def received_attention(q: torch.Tensor, k: torch.Tensor, length: int, chunk_size: int = 256) -> torch.Tensor:
    """Attention received by each of the first `length` keys from the first `length` queries.

    q, k: [heads, T, head_dim] (q already scaled). Returns [length] float32: per key, the sum over
    valid queries of the softmax weights over valid keys, averaged over heads.
    """
    q = q[:, :length].float()
    k = k[:, :length].float()
    total = torch.zeros(q.shape[0], length, dtype=torch.float32, device=q.device)
    for start in range(0, length, chunk_size):
        weights = torch.softmax(q[:, start : start + chunk_size] @ k.transpose(-1, -2), dim=-1)
        total += weights.sum(dim=1)
    return total.mean(dim=0)


class ReceivedAttention:
    """Context manager recording, for one attention module, the attention each frame receives.

    attention: the self-attention module to observe (e.g. ``encoder.layers[-1].self_attn``).
    valid_lengths: [B] number of valid (non-padded) frames in each batch row, known before the
        forward pass (from the feature mask).
    qk: how to get scaled queries and keys from the module's input (see `whisper_qk`).

    After the forward pass, `scores` is a list of B float32 tensors, row b of shape
    [valid_lengths[b]], and `ms` is the time the hook itself took.
    """

    def __init__(self, attention: nn.Module, valid_lengths, qk: QKFn = whisper_qk, chunk_size: int = 256):
        self.attention = attention
        self.valid_lengths = [int(n) for n in valid_lengths]
        self.qk = qk
        self.chunk_size = chunk_size
        self.scores: list[torch.Tensor] | None = None
        self.ms = 0.0
        self._handle = None

    def __enter__(self) -> ReceivedAttention:
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
    def _hook(self, module: nn.Module, args: tuple, kwargs: dict):
        hidden_states = args[0] if args else kwargs["hidden_states"]
        if hidden_states.shape[0] != len(self.valid_lengths):
            raise ValueError(
                f"ReceivedAttention got {hidden_states.shape[0]} batch rows but {len(self.valid_lengths)} lengths."
            )
        with Stopwatch(hidden_states.device) as sw:
            q, k = self.qk(module, hidden_states, kwargs)
            self.scores = [received_attention(q[b], k[b], n, self.chunk_size) for b, n in enumerate(self.valid_lengths)]
        self.ms += sw.ms


def pool_scores(frame_scores: torch.Tensor, n_tokens: int, stride: int = 2) -> torch.Tensor:
    """Map frame scores [>= stride * n_tokens] to LLM-token scores [n_tokens] the way the encoder
    pools its frames: token j is the mean of frames stride*j .. stride*j + stride - 1."""
    return frame_scores[: stride * n_tokens].view(n_tokens, stride).mean(dim=1)
