"""Real Gunicorn on a free loopback port, started and stopped by the test that needs it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.conftest import REPO

# Variables that choose a model: a test's server sees only the ones the test gives it.
MODEL_VARIABLES = (
    "RUN_ID",
    "MODEL_URI",
    "MODEL_POLL_SECONDS",
    "CANARY_MODEL_URI",
    "CANARY_RUN_ID",
    "CANARY_PERCENT",
    "SHADOW_MODEL_URI",
    "SHADOW_RUN_ID",
    "MLFLOW_TRACKING_URI",
    "MODEL_ARTIFACT_ROOT",
    "MODEL_CACHE_DIR",
    "MODEL_PATH",
    "ALLOW_PICKLE",
    "SKOPS_TRUSTED_TYPES",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text()

    def wait_output(self, text: str, count: int = 1, timeout: float = 30) -> str:
        """Wait until the log holds `text` at least `count` times (workers boot after /health answers)."""
        deadline = time.monotonic() + timeout
        while (output := self.output()).count(text) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        return output

    def wait_healthy(self, timeout: float = 90) -> None:
        """Wait until /health answers; fail with the server's log if it exits or never does."""
        wait_answering(self.process, f"{self.url}/health", self.output, "gunicorn", timeout)


def wait_answering(process: subprocess.Popen, url: str, output: Callable[[], str], name: str, timeout: float) -> None:
    """Wait until GET `url` answers 2xx; fail with the server's output if it exits or never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{name} exited with {process.returncode}:\n{output()}")
        try:
            if requests.get(url, timeout=1).ok:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    pytest.fail(f"{name} did not answer {url} within {timeout} s:\n{output()}")


def gunicorn_command(app: str) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "-c", str(REPO / "gunicorn.conf.py"), app]


def server_env(port: int, log: Path, **variables: str) -> dict[str, str]:
    """The test's environment without model variables, plus the server's own."""
    env = {k: v for k, v in os.environ.items() if k not in MODEL_VARIABLES}
    own = {
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "2",
        "PYTHONPATH": str(REPO),
        "MODEL_CACHE_DIR": str(log.parent / "model-cache"),
    }
    return env | own | variables


# An unprivileged user for the tests that must also run without root's capabilities.
NOBODY = 65534


def unprivileged() -> dict:
    """`gunicorn()` arguments that run the server as nobody (when root), with a model cache it can write."""
    if os.geteuid() != 0:
        return {}  # already unprivileged
    cache = Path(tempfile.mkdtemp(prefix="ride-duration-nobody-"))
    cache.chmod(0o777)
    return {"user": NOBODY, "MODEL_CACHE_DIR": str(cache)}


@contextmanager
def gunicorn(app: str, log: Path, wait: bool = True, user: int | None = None, **variables: str) -> Iterator[Server]:
    """Start `gunicorn app` from the repo root and (unless told not to) wait until /health answers.

    With `user`, Gunicorn runs as that user and group, with no capabilities: its model cache must
    then be a folder that user can write (set MODEL_CACHE_DIR).
    """
    port = free_port()
    # setpriv (util-linux) rather than Popen(user=...): the interpreter behind .venv may sit in a
    # folder only root can search, which setpriv gets past and a plain setuid-then-exec does not.
    drop = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", "--inh-caps=-all"] if user else []
    with log.open("w") as sink:
        process = subprocess.Popen(
            drop + gunicorn_command(app),
            cwd=REPO,
            env=server_env(port, log, **variables),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    server = Server(f"http://127.0.0.1:{port}", process, log)
    try:
        if wait:
            server.wait_healthy()
        yield server
    finally:
        process.terminate()
        process.wait(timeout=30)


def run_until_exit(app: str, log: Path, timeout: float = 90, **variables: str) -> subprocess.CompletedProcess:
    """Start gunicorn expecting it to stop by itself; return how it ended."""
    return subprocess.run(
        gunicorn_command(app),
        cwd=REPO,
        env=server_env(free_port(), log, **variables),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def process_tree(pid: int) -> list[int]:
    """`pid` and every process below it."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                # The command name may hold spaces and parentheses: the fields after the last ")".
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    tree, frontier = [pid], [pid]
    while frontier:
        frontier = [child for child, parent in parents.items() if parent in frontier]
        tree += frontier
    return tree


def total_pss_mb(pid: int) -> float:
    """Proportional set size of a process tree: shared pages counted once, split between sharers."""
    total_kb = 0
    for member in process_tree(pid):
        try:
            rollup = Path(f"/proc/{member}/smaps_rollup").read_text()
        except OSError:  # exited meanwhile
            continue
        total_kb += next(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:"))
    return total_kb / 1024
