"""Load a server with wrk, POSTing one JSON body, and read back throughput and latency percentiles."""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}
SCRIPT = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[{body}]==]
"""


@dataclass(frozen=True)
class Load:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    failed: int  # non-2xx answers and socket errors (connect, read, write, timeout)


def load_parser(doc: str | None, seconds: float, rounds: int) -> argparse.ArgumentParser:
    """The options every wrk benchmark takes: Gunicorn workers, seconds per load, interleaved rounds."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=5, help="Gunicorn workers per server")
    parser.add_argument("--seconds", type=float, default=seconds, help="wrk's duration per load")
    parser.add_argument("--rounds", type=int, default=rounds, help="interleaved rounds (medians reported)")
    return parser


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("wrk is not installed: `sudo apt-get install wrk` (or `make bench`, which installs it)")
    return path


def run(url: str, body: Any, threads: int, connections: int, seconds: float) -> Load:
    """Run wrk against `url` with `body` as JSON for `seconds`; parse its --latency report."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(SCRIPT.format(body=json.dumps(body)))
    try:
        done = subprocess.run(
            [require_wrk(), f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", script.name, url],
            capture_output=True, text=True, timeout=seconds + 60, check=True,
        )  # fmt: skip
    finally:
        Path(script.name).unlink()
    return parse(done.stdout)


def parse(report: str) -> Load:
    def latency(percent: str) -> float:
        value, unit = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s|m)\s*$", report, re.M).groups()
        return float(value) * UNITS_MS[unit]

    requests = int(re.search(r"(\d+) requests in", report).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", report)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", report)
    failed = (int(non_2xx.group(1)) if non_2xx else 0) + (sum(map(int, errors.groups())) if errors else 0)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", report).group(1))
    return Load(rate, latency("50"), latency("99"), requests, failed)
