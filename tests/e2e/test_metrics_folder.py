"""PROMETHEUS_MULTIPROC_DIR naming a folder that is not there: made, or start-up stops saying why."""

from __future__ import annotations

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from harness.gunicorn import gunicorn, run_until_exit
from web_service.startup import EXIT_STARTUP_FAILED

pytestmark = pytest.mark.e2e
MLFLOW_APP = "web_service_mlflow.predict:app"
RIDE = {"PULocationID": 10, "DOLocationID": 50, "trip_distance": 40}


def samples(url: str) -> dict[str, float]:
    text = requests.get(f"{url}/metrics", timeout=10).text
    return {sample.name: sample.value for family in text_string_to_metric_families(text) for sample in family.samples}


def test_a_missing_metrics_folder_is_created_with_its_parents_and_counts_land_there(tmp_path):
    folder = tmp_path / "not" / "yet" / "metrics"

    # One worker: it writes its own counts before it answers /metrics, so nothing is a second late.
    with gunicorn(
        MLFLOW_APP, tmp_path / "server.log", WEB_CONCURRENCY="1", PROMETHEUS_MULTIPROC_DIR=str(folder)
    ) as server:
        assert requests.post(f"{server.url}/predict", json=RIDE, timeout=10).status_code == 200
        answered = samples(server.url)

    assert folder.is_dir()
    assert any(path.name.startswith("counter_") for path in folder.iterdir())
    assert answered["ride_duration_batch_size_count"] == 1
    assert answered["ride_duration_model_info"] == 1  # the master set it before forking: its file stays


def test_a_metrics_folder_that_cannot_be_created_stops_the_server_with_one_line(tmp_path):
    (tmp_path / "a-file").write_text("")
    folder = tmp_path / "a-file" / "metrics"

    done = run_until_exit(MLFLOW_APP, tmp_path / "fail.log", PROMETHEUS_MULTIPROC_DIR=str(folder))

    assert done.returncode == EXIT_STARTUP_FAILED
    errors = [line for line in done.stderr.splitlines() if "[ERROR]" in line]
    assert len(errors) == 1, done.stderr
    assert errors[0].endswith(
        f"cannot start: PROMETHEUS_MULTIPROC_DIR={folder}: cannot create the metrics folder "
        f"([Errno 20] Not a directory: '{folder}')"
    )
    assert "Traceback" not in done.stderr
