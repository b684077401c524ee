"""Start a Gunicorn app, time it to its first prediction, and weigh it in proportional memory."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.processes import free_port, gunicorn_command, process_tree, server_env

RIDE = {"PULocationID": 10, "DOLocationID": 50, "trip_distance": 40}


@dataclass
class Started:
    process: subprocess.Popen
    url: str
    seconds_to_first_prediction: float
    log: Path

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start(app: str, log: Path, timeout: float = 120, **variables: str) -> Started:
    """Start `gunicorn app`; return once POST /predict has answered 200, with the time that took."""
    port = free_port()
    env = server_env(port, log, **variables)
    started = time.perf_counter()
    with log.open("w") as sink:
        process = subprocess.Popen(gunicorn_command(app), env=env, stdout=sink, stderr=sink)
    url = f"http://127.0.0.1:{port}"
    while process.poll() is None and time.perf_counter() - started < timeout:
        try:
            if requests.post(f"{url}/predict", json=RIDE, timeout=5).ok:
                return Started(process, url, time.perf_counter() - started, log)
        except requests.ConnectionError:
            pass
        time.sleep(0.01)
    process.kill()
    process.wait()
    raise RuntimeError(f"{app} did not answer a prediction (exit {process.returncode}):\n{log.read_text()}")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time used so far by a process tree."""
    ticks = 0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def wait_idle(pid: int, busy_below: float = 0.05, window_s: float = 0.25, timeout_s: float = 10) -> None:
    """Wait until a server has finished what its last load left queued (it uses under 5% of a core)."""
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        before = cpu_seconds(pid)
        time.sleep(window_s)
        if cpu_seconds(pid) - before < busy_below * window_s:
            return


def cpu_count() -> int:
    return len(os.sched_getaffinity(0))
