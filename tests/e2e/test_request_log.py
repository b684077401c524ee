"""The request log under real Gunicorn: every line whole, whatever path clients send, however slowly it is read."""

from __future__ import annotations

import json
import select
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from harness.gunicorn import Server, gunicorn_command, server_env
from harness.processes import free_port
from tests.conftest import REPO

pytestmark = pytest.mark.e2e
MLFLOW_APP = "web_service_mlflow.predict:app"
# A path of 1,300 escaped control characters: a 3.9 KB request line (Gunicorn takes up to 4,094
# bytes), and 7.8 KB of JSON once logged, as "\u0001" each.
LONG_PATH = "/" + "%01" * 1300
REQUESTS = 300


def read_slowly(pipe, into: bytearray, stop: threading.Event) -> None:
    """Read the server's stdout a few KB at a time with pauses, so that the pipe stays full."""
    while not stop.is_set():
        chunk = pipe.read1(4096)
        if not chunk:
            return
        into += chunk
        time.sleep(0.002)


def test_long_request_lines_from_three_workers_reach_a_slow_pipe_whole(tmp_path):
    port = free_port()
    env = server_env(port, tmp_path / "server.log", WEB_CONCURRENCY="3")
    with (tmp_path / "server.log").open("w") as stderr:
        process = subprocess.Popen(gunicorn_command(MLFLOW_APP), cwd=REPO, env=env,
                                   stdout=subprocess.PIPE, stderr=stderr)  # fmt: skip
    output, stop = bytearray(), threading.Event()
    reader = threading.Thread(target=read_slowly, args=(process.stdout, output, stop))
    reader.start()
    try:
        Server(f"http://127.0.0.1:{port}", process, tmp_path / "server.log").wait_healthy()
        url = f"http://127.0.0.1:{port}{LONG_PATH}"
        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(lambda _: requests.get(url, timeout=60).status_code, range(REQUESTS)))
    finally:
        process.terminate()
        process.wait(timeout=30)
        reader.join(timeout=30)
        stop.set()

    lines = output.decode().splitlines()
    broken = [line[:80] for line in lines if not _is_json(line)]
    long_ones = [json.loads(line) for line in lines if _is_json(line) and json.loads(line)["route"].startswith("/\x01")]
    assert statuses == [404] * REQUESTS
    assert broken == [], f"{len(broken)} of {len(lines)} lines broken"
    assert len(long_ones) == REQUESTS
    assert all(line["truncated"] == ["route"] for line in long_ones)
    assert max(len(line) + 1 for line in lines) <= select.PIPE_BUF


def _is_json(line: str) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True
