"""Engines for the language-model half: a vLLM server reached over its OpenAI-compatible HTTP API.

Encoding, scoring and selection always run in segprune (once per clip); only the kept audio
embeddings [K, H] travel to the engine. `vllm.VLLMClient` talks to a running server;
`serve.serve_command` / `serve.ServerProcess` start one (vLLM lives in its own virtual environment:
it pins an older transformers than segprune).
"""
