"""The language-model half of decoder-only audio-language models: a run of audio placeholders in
the prompt, filled with the audio embeddings (Qwen2-Audio, Audio Flamingo 3, MusicFlamingo,
Voxtral, GLM-ASR, Qwen2.5-Omni).

The processor expands the placeholder to N copies and the model fills them with `masked_scatter`.
Pruning = shrink each placeholder run in `input_ids`/`attention_mask` to K (re-pad left in a
batch), build `inputs_embeds` with the K kept embeddings, and call
`generate(input_ids=..., attention_mask=..., inputs_embeds=...)`: `generate` derives positions from
the attention mask, so nothing else is needed, and the kept tokens sit at contiguous positions.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn
from transformers import LogitsProcessorList

from ..audio import Audio
from ..timing import Stopwatch
from . import prompts
from .base import AudioLM, StepClock
from .types import Generation, LLMInputs


class DecoderOnlyLM(AudioLM):
    """Adapter base for decoder-only families; a family sets `audio_first` and its audio path."""

    audio_first: ClassVar[bool] = True  # order of audio and text in the user turn

    @property
    def audio_token_id(self) -> int:
        return int(self.model.config.audio_token_id)

    @property
    def language_model(self) -> nn.Module:
        return self.model.model.language_model

    # ------------------------------------------------------------------ requests
    def chat_text(self, prompt: str) -> str:
        """The model's chat template applied to one user turn with one audio clip and `prompt`, as a
        string (its control-token strings are read as tokens by a plain processor call: `inputs`
        escapes the prompt's, see `prompts`)."""
        audio = {"type": "audio", "audio": "clip"}
        text = {"type": "text", "text": prompt}
        content = [audio, text] if self.audio_first else [text, audio]
        conversation = [{"role": "user", "content": content}]
        return self.processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)

    def inputs(self, audio: Audio, prompt: str):
        """The processor output for the chat template around `prompt` and the clip, the prompt read as
        plain text (`prompts`): its control-token strings are escaped, never tokens or placeholders."""
        prompts.prompt_ids(self.tokenizer, prompt, self.name)  # refuses the little that cannot be text
        text = self.chat_text(prompts.marked(self.tokenizer, prompt))
        return prompts.processor_inputs(self.processor, text, audio.samples, audio.sample_rate)

    def prompt_tokens(self, inputs) -> int:
        return int(inputs["input_ids"].shape[1])

    def audio_counts(self, inputs) -> list[int]:
        """N of each batch row: its number of audio placeholders."""
        return (inputs["input_ids"] == self.audio_token_id).sum(-1).tolist()

    # ------------------------------------------------------------------ language model
    @torch.inference_mode()
    def assemble(self, inputs, kept: list[torch.Tensor], prompt: str | None = None) -> LLMInputs:
        """Prompt rows with each placeholder run shrunk to the kept audio embeddings.

        kept: one tensor [K_i, H] per batch row, in temporal order. Rows are re-padded on the left.
        prompt: the visitor's text, recorded for engines that render the prompt themselves.
        """
        ids, mask = inputs["input_ids"], inputs["attention_mask"]
        if len(kept) != ids.shape[0]:
            raise ValueError(f"Got {len(kept)} kept-embedding sets for {ids.shape[0]} prompts.")
        rows = []
        for row_ids, row_mask, row_kept in zip(ids, mask, kept):
            row_ids = row_ids[row_mask.bool()]
            where = torch.nonzero(row_ids == self.audio_token_id).flatten()
            if len(where) == 0 or int(where[-1] - where[0]) + 1 != len(where):
                raise ValueError("Each prompt needs exactly one contiguous run of audio placeholders.")
            start, end = int(where[0]), int(where[-1]) + 1
            audio_ids = torch.full((row_kept.shape[0],), self.audio_token_id, dtype=row_ids.dtype)
            rows.append(torch.cat([row_ids[:start].cpu(), audio_ids, row_ids[end:].cpu()]))
        length = max(len(r) for r in rows)
        new_ids = torch.full((len(rows), length), self.pad_token_id, dtype=ids.dtype)
        new_mask = torch.zeros((len(rows), length), dtype=mask.dtype)
        for i, r in enumerate(rows):
            new_ids[i, length - len(r) :] = r
            new_mask[i, length - len(r) :] = 1
        new_ids, new_mask = new_ids.to(self.device), new_mask.to(self.device)
        embeds = self.model.get_input_embeddings()(new_ids)
        audio_mask = (new_ids == self.audio_token_id).unsqueeze(-1).expand_as(embeds)
        audio = torch.cat([k.to(embeds.device, embeds.dtype) for k in kept])
        if int(audio_mask.sum()) != audio.numel():  # masked_scatter would silently take a prefix
            raise RuntimeError(f"{int(audio_mask[..., 0].sum())} audio placeholders for {audio.shape[0]} embeddings.")
        embeds = embeds.masked_scatter(audio_mask, audio)
        return LLMInputs(new_ids, new_mask, embeds, [int(k.shape[0]) for k in kept], list(kept), prompt)

    @torch.inference_mode()
    def prefill(self, x: LLMInputs) -> torch.Tensor:
        out = self.language_model(inputs_embeds=x.inputs_embeds, attention_mask=x.attention_mask, use_cache=True)
        return self.model.lm_head(out.last_hidden_state[:, -1:])

    @torch.inference_mode()
    def generate(self, x: LLMInputs, max_new_tokens: int = 64) -> list[Generation]:
        clock = StepClock(self.device)
        with Stopwatch(self.device) as sw:
            out = self.model.generate(
                **x.generate_kwargs(),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                num_beams=1,
                logits_processor=LogitsProcessorList([clock]),
                pad_token_id=self.pad_token_id,
            )
        per_token = clock.ms_per_token()
        eos, results = self._eos_ids(), []
        for row in out[:, x.new_tokens_start :].tolist():
            end = next((i + 1 for i, t in enumerate(row) if t in eos), len(row))  # batch rows pad after EOS
            results.append(Generation(row[:end], self.decode(row[:end]), sw.ms, per_token))
        return results

    def _eos_ids(self) -> set[int]:
        eos = self.model.generation_config.eos_token_id
        return set(eos if isinstance(eos, list) else [eos] if eos is not None else [])


__all__ = ["DecoderOnlyLM"]
