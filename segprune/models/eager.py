"""The peers' baseline for the scores: the whole encoder in eager attention with
``output_attentions``, as research code gets attention weights. It costs the [heads, T, T] weights
of every layer (gigabytes for long audio) and is here only to check segprune's hook against it
and to time it (`segprune bench`); the library's own path never uses it.
"""

from __future__ import annotations

import contextlib

import torch

from ..scoring import ReceivedAttention


class NoEagerBaseline(RuntimeError):
    """This family's encoder cannot return attention weights; the message says why."""


@torch.inference_mode()
def eager_scores(lm, inputs, with_hook: bool = False):
    """The scores of `lm.encode` the peers' way: the last layer's eager weights [W, heads, T, T]
    summed over the valid queries of each scoring span (`lm.scoring_rows`), averaged over heads,
    normalised and pooled exactly as `encode` does (`lm.window_scores`). Returns the scores of all
    rows, concatenated, [sum N] float64. The encoder is put back to its own attention on exit.
    Raises NoEagerBaseline where the encoder returns no weights.

    with_hook: also run segprune's hook in that same eager pass and return (eager scores, hook
    scores): the two definitions on identical inputs. (The hook's scores from the model's own
    SDPA pass differ from both by the SDPA-vs-eager rounding of the earlier layers.)"""
    features, feature_mask, frame_lengths, rows, input_ids = lm.audio_inputs(inputs)
    tower, last = lm.audio_encoder, lm.scoring_attentions(1)[0]
    captured: list[torch.Tensor] = []

    def grab(module, args, output):
        weights = output[1] if isinstance(output, tuple) and len(output) > 1 else None
        if weights is not None:
            captured.append(weights)

    saved = tower.config._attn_implementation
    handle = last.register_forward_hook(grab)
    hook = ReceivedAttention(last, rows, lm.scoring_qk)
    tower.set_attn_implementation("eager")
    tower.config.output_attentions = True
    try:
        with hook if with_hook else contextlib.nullcontext():
            lm.audio_embeddings(features, feature_mask, input_ids)
    finally:
        handle.remove()
        tower.config.output_attentions = False
        tower.set_attn_implementation(saved)
    if not captured:
        raise NoEagerBaseline(lm.no_eager_reason())
    weights = captured[-1].float()  # [rows, heads, T, T]
    frame_scores = []
    for b, spans in enumerate(rows):
        parts = [
            weights[b, :, s.start : s.start + s.length, s.start : s.start + s.length]
            .sum(dim=1, dtype=torch.float64)
            .mean(dim=0)
            for s in spans
        ]
        frame_scores.append(torch.cat(parts))
    peers = torch.cat(lm.window_scores(frame_scores, frame_lengths)).double().cpu().numpy()
    if not with_hook:
        return peers
    ours = torch.cat(lm.window_scores(hook.scores, frame_lengths)).double().cpu().numpy()
    return peers, ours


__all__ = ["NoEagerBaseline", "eager_scores"]
