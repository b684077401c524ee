"""The service under real Gunicorn, with the repo's gunicorn.conf.py, on a free loopback port."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from harness import REPO
from harness.processes import as_user, free_port, stop, wait_answering

CONFIG = REPO / "gunicorn.conf.py"
# Variables that choose a model: a started server sees only the ones its caller gives it.
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


def gunicorn_command(app: str, config: Path = CONFIG) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "-c", str(config), app]


def server_env(port: int, log: Path, **variables: str) -> dict[str, str]:
    """This process's environment without model variables, plus the server's own."""
    env = {k: v for k, v in os.environ.items() if k not in MODEL_VARIABLES}
    own = {
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "2",
        "PYTHONPATH": str(REPO),
        "MODEL_CACHE_DIR": str(log.parent / "model-cache"),
    }
    return env | own | variables


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_output(self, text: str, count: int = 1, timeout: float = 60) -> str:
        """Wait until the log holds `text` at least `count` times; fail saying so if it never does."""
        deadline = time.monotonic() + timeout
        while (output := self.output()).count(text) < count:
            if self.process.poll() is not None or time.monotonic() > deadline:
                ended = f"exited with {self.process.returncode}" if self.process.poll() is not None else "still runs"
                raise TimeoutError(
                    f"the log holds {text!r} {output.count(text)} times, not {count}, after {timeout:g} s "
                    f"(the server {ended}):\n{output[-4000:]}"
                )
            time.sleep(0.05)
        return output

    def wait_healthy(self, timeout: float = 90) -> None:
        """Wait until /health answers; fail with the server's log if it exits or never does."""
        wait_answering(
            self.process, lambda: requests.get(f"{self.url}/health", timeout=2).ok, "gunicorn", self.output, timeout
        )


@contextmanager
def gunicorn(
    app: str, log: Path, wait: bool = True, user: int | None = None, config: Path = CONFIG, **variables: str
) -> Iterator[Server]:
    """Start `gunicorn app` from the repo root and (unless told not to) wait until /health answers.

    With `user`, Gunicorn runs as that user and group, with no capabilities: its model cache must
    then be a folder that user can write (set MODEL_CACHE_DIR).
    """
    port = free_port()
    with log.open("w") as sink:
        process = subprocess.Popen(
            as_user(user) + gunicorn_command(app, config),
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
        stop(process)


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
