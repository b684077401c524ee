"""Start a Gunicorn app, time it to its first prediction, and weigh it in proportional memory."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from harness.gunicorn import gunicorn_command, server_env
from harness.processes import NotAnswering, free_port, process_tree, stop, wait_answering

RIDE = {"PULocationID": 10, "DOLocationID": 50, "trip_distance": 40}


@dataclass
class Started:
    process: subprocess.Popen
    url: str
    seconds_to_first_prediction: float
    log: Path

    def stop(self) -> None:
        stop(self.process)


def start(app: str, log: Path, timeout: float = 120, **variables: str) -> Started:
    """Start `gunicorn app`; return once POST /predict has answered 200, with the time that took."""
    port = free_port()
    env = server_env(port, log, **variables)
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    with log.open("w") as sink:
        process = subprocess.Popen(gunicorn_command(app), env=env, stdout=sink, stderr=sink)
    try:
        # Polled every 10 ms: the figure is a start-up time, and the poll's period is its resolution.
        wait_answering(process, lambda: requests.post(f"{url}/predict", json=RIDE, timeout=5).ok, app,
                       log.read_text, timeout, every=0.01)  # fmt: skip
    except NotAnswering:
        stop(process, timeout=5)
        raise
    return Started(process, url, time.perf_counter() - started, log)


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
