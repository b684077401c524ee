"""A cold start (the model compiled on the way) ends holding the memory of a warm one."""

from __future__ import annotations

import pytest
import requests

from harness.gunicorn import gunicorn
from harness.processes import total_pss_mb
from tests.conftest import SUMMARY

pytestmark = pytest.mark.e2e
APP = "web_service_mlflow.predict:app"
RIDE = {"PULocationID": 10, "DOLocationID": 50, "trip_distance": 40}


def serving_pss(tmp_path, name: str, cache: str) -> float:
    """Total PSS of master and workers, once they have all booted and answered."""
    with gunicorn(APP, tmp_path / f"{name}.log", MODEL_CACHE_DIR=cache) as server:
        server.wait_output("Booting worker", count=2)
        for _ in range(20):
            assert requests.post(f"{server.url}/predict", json=RIDE, timeout=10).ok
        return total_pss_mb(server.process.pid)


def test_a_cold_start_holds_no_more_than_a_fifth_over_a_warm_one(tmp_path, request):
    cache = str(tmp_path / "cache")

    cold = serving_pss(tmp_path, "cold", cache)  # an empty cache: the forest is loaded and compiled
    warm = serving_pss(tmp_path, "warm", cache)  # the verified form is read back

    line = f"memory: cold start {cold:.0f} MB, warm start {warm:.0f} MB (PSS, master and 2 workers)"
    request.config.stash.setdefault(SUMMARY, []).append(line)
    assert cold <= 1.2 * warm
