"""Live drift under real Gunicorn with two forked workers: the gauges as a scrape reads them."""

from __future__ import annotations

import re

import pytest
import requests

from harness.gunicorn import gunicorn
from harness.processes import wait_until
from tests.conftest import make_rides
from web_service_mlflow.parity import post_all

pytestmark = pytest.mark.e2e
MLFLOW_APP = "web_service_mlflow.predict:app"


def scrape(url: str) -> str:
    return requests.get(f"{url}/metrics", timeout=10).text


def values(text: str, name: str) -> dict[str, float]:
    """Each sample of a metric: its label text -> value."""
    return {labels: float(value) for labels, value in re.findall(rf"^{name}(\{{.*?\}})? (\S+)$", text, re.MULTILINE)}


def drift_scraped(url: str) -> str | None:
    """/metrics once it holds a drift comparison."""
    text = scrape(url)
    return text if values(text, "ride_duration_drift_detected") else None


def test_two_preloaded_workers_report_ready_and_their_drift(tmp_path):
    # Rides spread evenly over 265 zones, unlike January's pickups: the drift is real.
    rides = make_rides(4000, seed=21)
    variables = {"DRIFT_INTERVAL_SECONDS": "0.5", "DRIFT_WINDOW": "400", "DRIFT_MIN_RIDES": "400"}
    with gunicorn(MLFLOW_APP, tmp_path / "live.log", WEB_CONCURRENCY="2", **variables) as server:
        server.wait_output("Booting worker", count=2)
        ready = values(scrape(server.url), "ride_duration_ready")  # before any prediction: the fork's reset
        post_all(f"{server.url}/predict", rides, concurrency=4)
        # Each worker compares its window every 0.5 s and writes its gauges every second.
        text = wait_until(lambda: drift_scraped(server.url), "a drift comparison in /metrics", timeout=60)
        log = server.output()

    assert ready == {"": 1.0}
    assert values(text, "ride_duration_ready") == {"": 1.0}  # the workers' own files hold 1 too
    assert values(text, "ride_duration_drift_detected")['{column="PULocationID"}'] == 1.0
    windows = values(text, "ride_duration_drift_window_rides")
    assert list(windows.values()) == [400.0]  # each worker that got rides holds a full window
    assert "live drift: each worker compares its last 400 rides" in log
