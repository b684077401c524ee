"""The service under real Gunicorn, scraped by a real Prometheus that loads monitoring/alerts.yml.

One stack serves the whole package (started by the first test that asks, stopped after the
last): traffic is sent once Prometheus scrapes, so every rate over the last minute has data.
The service runs with a canary and a shadow beside its model, so that their metrics have data too;
it watches no registry alias (that needs a tracking server).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import count
from pathlib import Path

import pytest
import requests
import yaml

from harness.gunicorn import Server, gunicorn
from harness.processes import free_port, wait_answering
from tests.conftest import REPO, make_rides
from web_service.lineup import BUCKETS, CANARY_KEY_HEADER, bucket
from web_service_mlflow.layout import LOCAL_STORE
from web_service_mlflow.settings import default_run_id

MONITORING = REPO / "monitoring"
ALERTS = MONITORING / "alerts.yml"
MLFLOW_APP = "web_service_mlflow.predict:app"
# The scrape job alerts.yml's `up{job="ride-duration"}` expects.
JOB = "ride-duration"
RIDES = 1500
BATCH = 100
SINGLE_RIDES = 5
BAD_REQUESTS = 3  # two 400s and a 405
# Live drift every second over the last 1,000 rides (the traffic fills it), scored from 200 on.
DRIFT_WINDOW = 1000
DRIFT = {"DRIFT_INTERVAL_SECONDS": "1", "DRIFT_MIN_RIDES": "200", "DRIFT_WINDOW": str(DRIFT_WINDOW)}
# The canary and the shadow are the embedded run's model again, named by its artifact path: they
# answer as "<run>/model", the primary as "<run>". The canary answers the first batch of each half
# of the traffic (chosen by X-Canary-Key), the primary everything else; the shadow scores it all.
PRIMARY = default_run_id(LOCAL_STORE)
LINEUP_VERSION = f"{PRIMARY}/model"
CANARY_PERCENT = 10
LINEUP = {"CANARY_MODEL_URI": f"runs:/{PRIMARY}/model", "CANARY_PERCENT": str(CANARY_PERCENT),
          "SHADOW_MODEL_URI": f"runs:/{PRIMARY}/model"}  # fmt: skip
CANARY_RIDES = 2 * BATCH


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen
    log: Path

    def query(self, expr: str) -> dict:
        """An instant query's whole answer (status, data); fails with Prometheus' error text."""
        answer = requests.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        assert answer.status_code == 200, f"{expr}: {answer.status_code} {answer.text}"
        return answer.json()

    def vector(self, expr: str) -> list[dict]:
        return self.query(expr)["data"]["result"]

    def wait_for(self, expr: str, timeout: float = 60) -> list[dict]:
        """Poll until `expr` returns a non-empty result, and return it; fail naming `expr` if it never does."""
        deadline = time.monotonic() + timeout
        while not (result := self.vector(expr)):
            if self.process.poll() is not None:
                pytest.fail(f"prometheus exited with {self.process.returncode}:\n{self.log.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"{expr} still empty after {timeout:g} s:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.25)
        return result

    def groups(self) -> list[dict]:
        """The rule groups Prometheus loaded, each with its file and rules."""
        return requests.get(f"{self.url}/api/v1/rules", timeout=10).json()["data"]["groups"]

    def rules(self) -> list[dict]:
        return [rule for group in self.groups() for rule in group["rules"]]


def binary(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is not installed: `make system-tools` installs it (Debian package prometheus)"
    return path


def write_config(folder: Path, target: str) -> Path:
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [target]}]}],
    }
    path = folder / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@contextmanager
def prometheus(folder: Path, target: str) -> Iterator[Prometheus]:
    """A Prometheus on a free loopback port scraping `target` every second; stopped on exit."""
    port = free_port()
    log = folder / "prometheus.log"
    command = [
        binary("prometheus"),
        f"--config.file={write_config(folder, target)}",
        f"--storage.tsdb.path={folder / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with log.open("w") as sink:
        process = subprocess.Popen(command, cwd=folder, stdout=sink, stderr=subprocess.STDOUT)
    server = Prometheus(f"http://127.0.0.1:{port}", process, log)
    try:
        wait_ready(server)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=30)


def wait_ready(server: Prometheus, timeout: float = 30) -> None:
    def ready() -> bool:
        return requests.get(f"{server.url}/-/ready", timeout=2).ok

    wait_answering(server.process, ready, "prometheus", server.log.read_text, timeout)


def canary_key(canary: bool) -> str:
    """An X-Canary-Key that the split sends to the canary, or to the primary."""
    share = CANARY_PERCENT * BUCKETS / 100
    return next(key for key in (f"key-{n}" for n in count()) if (bucket(key) < share) == canary)


def send_rides(url: str, rides: list[dict], singles: int = 0) -> None:
    """The first `singles` rides one by one, the rest in batches of BATCH; the canary answers the first batch."""
    keys = {True: canary_key(canary=True), False: canary_key(canary=False)}
    for ride in rides[:singles]:
        answer = requests.post(f"{url}/predict", json=ride, headers={CANARY_KEY_HEADER: keys[False]}, timeout=10)
        assert answer.status_code == 200, answer.text
    for start in range(singles, len(rides), BATCH):
        headers = {CANARY_KEY_HEADER: keys[start == singles]}
        answer = requests.post(f"{url}/predict", json=rides[start : start + BATCH], headers=headers, timeout=30)
        assert answer.status_code == 200, answer.text


def send_traffic(url: str, prom: Prometheus) -> None:
    """RIDES rides and BAD_REQUESTS client errors, in two halves a scrape apart.

    Prometheus counts no increase in a series' first sample: traffic that all falls between two
    scrapes creates its series already complete, and every rate over them reads 0.
    """
    rides = make_rides(RIDES, seed=7)
    half = SINGLE_RIDES + 7 * BATCH
    send_rides(url, rides[:half], singles=SINGLE_RIDES)
    assert requests.post(f"{url}/predict", json={"PULocationID": 10}, timeout=10).status_code == 400
    prom.wait_for(f"sum(ride_duration_batch_size_sum) >= {half}")
    send_rides(url, rides[half:])
    assert requests.post(f"{url}/predict", json={"PULocationID": 10}, timeout=10).status_code == 400
    assert requests.get(f"{url}/predict", timeout=10).status_code == 405


@dataclass
class Stack:
    service: Server
    prometheus: Prometheus
    metrics_text: str  # the service's own /metrics after the traffic


@pytest.fixture(scope="package")
def stack(tmp_path_factory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("monitoring")
    # One worker: its window holds every ride, so the window gauge and the scores are exact.
    with (
        gunicorn(MLFLOW_APP, folder / "gunicorn.log", WEB_CONCURRENCY="1", **DRIFT, **LINEUP) as service,
        prometheus(folder, service.url.removeprefix("http://")) as prom,
    ):
        prom.wait_for(f'up{{job="{JOB}"}} == 1')
        send_traffic(service.url, prom)
        # Every ride reached a scrape, then the drift gauges of a window that holds the second half
        # too (computed every second from 200 rides on: a full window is one computed after it) and
        # the drift alert they start. Each is waited for, up to a minute: how soon is not the claim.
        prom.wait_for(f"sum(ride_duration_batch_size_sum) >= {RIDES}")
        prom.wait_for("count(ride_duration_drift_score) > 0")
        prom.wait_for(f"sum(ride_duration_drift_window_rides) >= {DRIFT_WINDOW}")
        prom.wait_for('count(ALERTS{alertname="RideDurationDrift"}) > 0')
        wait_rules_evaluated(prom)
        text = requests.get(f"{service.url}/metrics", timeout=10).text
        yield Stack(service, prom, text)


def wait_rules_evaluated(prom: Prometheus, timeout: float = 60) -> None:
    """Rules report health "unknown" until their first evaluation."""
    deadline = time.monotonic() + timeout
    while unknown := [rule["name"] for rule in prom.rules() if rule["health"] == "unknown"]:
        if time.monotonic() > deadline:
            pytest.fail(f"rules never evaluated after {timeout:g} s: {unknown}")
        time.sleep(0.25)


def alert_names() -> list[str]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule]
