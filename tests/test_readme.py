"""The README is a contract: its shell and Python blocks run as written, offline (HF_HUB_OFFLINE=1),
from the repository root, each in a subprocess.

- Python blocks (```python): each runs in a fresh namespace (a reader copies one block, so it brings
  its own imports and loading lines), all of them in one subprocess.
- Shell blocks (```bash): every command line (comments and ``\\`` continuations as bash reads them)
  runs with ``bash -c`` and must exit 0, among them `segprune run` on the bundled clips, the `quick`
  preset of `segprune bench` (about a minute here) and `segprune eval` on the sample manifest
  (`assets/eval/clotho-sample.jsonl`; its `--out` folder is removed before and after).
- Servers (`python app.py` without a hub model): started, and stopped once they answer HTTP 200.
- Run by CI, not here: the set-up lines and `python -m pytest -q` (this very suite). The test checks
  that `.ci/run` runs the README's set-up line and test command verbatim, that the demo-only set-up
  line is that line without the extras, and that the `test` extra brings the `eval` extra.
- Skipped, each with its reason in `SKIPPED` (a line that is not classified runs):
  `python app.py --model audio-flamingo-3 ...` (the Hub), `segprune bench ... --preset mid ...` (a
  long time: its run time is in the README), `python -m segprune.eval.study ...` and
  `segprune eval --model audio-flamingo-3 ...` (a GPU and the Hub), `git remote add space ...` and
  `git push space main` (the Hub; they would also change this clone).
"""

import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
SET_UP = 'python3 -m venv .venv && . .venv/bin/activate && pip install torch==2.13.0 && pip install -r requirements.txt -e ".[test]"'
DEMO_SET_UP = SET_UP.replace(' -e ".[test]"', " -e .")
EXTRA_SET_UP = 'pip install -e ".[eval]"'
TESTS = "python -m pytest -q"
SKIPPED = {  # the start of a command line -> why it does not run here
    "python app.py --model audio-flamingo-3": "needs the Hub (an explicit model never falls back)",
    "segprune bench --model qwen2-audio --preset mid": "a long time (the README states it)",
    "python -m segprune.eval.study": "needs a GPU and the Hub",
    "segprune eval --model audio-flamingo-3": "needs a GPU and the Hub",
    "git remote add space": "needs the Hub, and would change this clone",
    "git push space": "needs the Hub",
}
EVAL_OUT = ROOT / "runs" / "eval" / "clotho-sample"  # the sample evaluation's --out


def blocks(language: str) -> list[str]:
    """The README's fenced blocks of `language`, in order."""
    return re.findall(rf"(?ms)^```{language}\n(.*?)^```", README)


def command_lines(block: str) -> list[str]:
    """The command lines of a shell block as bash reads them: continuations joined, comments out."""
    joined = re.sub(r"\\\n\s*", "", block)
    lines = [re.sub(r"\s+#\s.*$", "", line).strip() for line in joined.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def shell_commands() -> list[str]:
    return [line for block in blocks("bash") for line in command_lines(block)]


VLLM_BLOCK_START = "bash .ci/vllm-env.sh"  # the vLLM block runs as one script (a server in the background)


def vllm_block() -> str:
    (block,) = [b for b in blocks("bash") if b.startswith(VLLM_BLOCK_START)]
    return block


def kind(line: str) -> str:
    if line in (SET_UP, DEMO_SET_UP, EXTRA_SET_UP, TESTS):
        return "ci"
    if line in command_lines(vllm_block()):
        return "vllm"
    if any(line.startswith(start) for start in SKIPPED):
        return "skipped"
    if line.startswith("python app.py"):
        return "server"
    return "run"


def environment() -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # this venv's python and segprune
    return env


def test_the_readme_has_the_blocks_this_test_knows():
    """Every skip reason still matches a README line, and a newcomer finds what CI runs."""
    lines = shell_commands()
    kinds = {line: kind(line) for line in lines}
    for start in SKIPPED:
        assert any(line.startswith(start) for line in lines), f"SKIPPED names a line the README lost: {start}"
    assert {SET_UP, DEMO_SET_UP, TESTS} <= set(lines)
    assert lines.index(DEMO_SET_UP) + 1 == lines.index("python app.py")  # the two commands of the demo
    assert len(blocks("python")) >= 3 and sum(k == "run" for k in kinds.values()) >= 3  # run, bench, eval


def test_ci_runs_the_set_up_and_test_lines_of_the_readme():
    ci = (ROOT / ".ci" / "run").read_text()
    assert SET_UP in ci.splitlines() and TESTS in ci.splitlines()
    pyproject = (ROOT / "pyproject.toml").read_text()
    test_extra = re.search(r"(?m)^test = \[(.*)\]$", pyproject).group(1)
    assert '"segprune[eval]"' in test_extra  # so CI installs what EXTRA_SET_UP installs


def test_python_blocks_run_as_written():
    driver = (
        "import sys, json\n"
        "for i, code in enumerate(json.load(sys.stdin), start=1):\n"
        "    print(f'--- README python block {i}', flush=True)\n"
        "    exec(compile(code, f'README python block {i}', 'exec'), {'__name__': '__main__'})\n"
    )
    code = blocks("python")
    done = subprocess.run(
        [sys.executable, "-c", driver],
        input=json.dumps(code),
        cwd=ROOT,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("--- README python block") == len(code)


@pytest.mark.parametrize("line", [line for line in shell_commands() if kind(line) == "run"], ids=lambda line: line[:60])
def test_shell_lines_run_as_written(line):
    if "--out runs/eval/clotho-sample" in line:
        shutil.rmtree(EVAL_OUT, ignore_errors=True)  # a previous run would only be resumed
    try:
        done = subprocess.run(
            ["bash", "-c", line], cwd=ROOT, env=environment(), capture_output=True, text=True, timeout=600
        )
    finally:
        shutil.rmtree(EVAL_OUT, ignore_errors=True)
        for folder in (EVAL_OUT.parent, EVAL_OUT.parent.parent):  # runs/eval, runs: only if now empty
            try:
                folder.rmdir()
            except OSError:
                pass
    assert done.returncode == 0, (line, done.stdout[-3000:], done.stderr[-3000:])
    assert done.stdout.strip(), line  # each command reports something


def test_the_vllm_block_runs_as_written(tmp_path):
    """The vLLM section's block as one bash script, verbatim: build (or reuse) vLLM's venv, save the
    tiny model, start `segprune vllm-serve` in the background, wait for it, and run segprune on it;
    then the server's process group is stopped and the saved folder removed. (Output goes to files:
    the backgrounded server keeps its copy of the script's stdout open.)"""
    folder = ROOT / "tiny-qa"
    script = "set -e\n" + vllm_block()
    out_path, err_path = tmp_path / "out.txt", tmp_path / "err.txt"
    with open(out_path, "w") as out_file, open(err_path, "w") as err_file:
        proc = subprocess.Popen(
            ["bash", "-c", script],
            cwd=ROOT,
            env=environment(),
            stdout=out_file,
            stderr=err_file,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=900)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGTERM)  # the backgrounded server is in the script's group
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and _group_alive(proc.pid):
                    time.sleep(0.5)
                if _group_alive(proc.pid):
                    os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            shutil.rmtree(folder, ignore_errors=True)
    out, err = out_path.read_text(), err_path.read_text()
    assert proc.returncode == 0, (out[-3000:], err[-3000:])
    assert not _group_alive(proc.pid), "the README's vLLM server is still running"
    record = json.loads(out.strip().splitlines()[-1])
    assert record["engine"] == "vllm" and record["pruned"]["prompt_tokens"] < record["full"]["prompt_tokens"]


def test_demo_servers_start_and_answer():
    """Each `python app.py` line of the README (but those that need the Hub) serves the page: all are
    started at once, each with its own free first port (GRADIO_SERVER_PORT; Gradio tries the ports
    after it when one is taken), and stopped once they answer."""
    servers = [line for line in shell_commands() if kind(line) == "server"]
    assert servers
    procs = []
    try:
        for line in servers:
            env = dict(environment(), GRADIO_SERVER_PORT=str(free_port()))
            procs.append(Server(line, env))
        for server in procs:
            url = server.url(deadline=time.monotonic() + 300)
            assert url, (server.line, server.output())
            with urllib.request.urlopen(url, timeout=60) as page:
                assert page.status == 200 and b"gradio" in page.read().lower(), server.line
    finally:
        for server in procs:
            server.stop()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A README command line run as a server in its own process group, its output read by a thread."""

    def __init__(self, line: str, env: dict):
        self.line = line
        self.proc = subprocess.Popen(
            ["bash", "-c", f"exec {line}"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: queue.Queue = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for text in self.proc.stdout:
            self.lines.put(text)
        self.lines.put(None)  # end of output

    def url(self, deadline: float) -> str | None:
        """The local URL the app prints once it serves; None if it exits first or the deadline passes."""
        while (left := deadline - time.monotonic()) > 0:
            try:
                text = self.lines.get(timeout=left)
            except queue.Empty:
                return None
            if text is None:
                return None
            self.seen.append(text)
            found = re.search(r"Running on local URL:\s*(\S+)", text)
            if found:
                return found.group(1)
        return None

    def output(self) -> str:
        return "".join(self.seen)[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
