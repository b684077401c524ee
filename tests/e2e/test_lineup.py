"""Canary and shadow under real Gunicorn (2 workers): the split over HTTP, the logs, the metrics."""

from __future__ import annotations

import json

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from bench.lineup import canary_split
from harness.gunicorn import gunicorn, run_until_exit
from harness.processes import wait_until
from web_service.startup import EXIT_STARTUP_FAILED
from web_service_mlflow.layout import LOCAL_STORE
from web_service_mlflow.settings import default_run_id

pytestmark = pytest.mark.e2e
APP = "web_service_mlflow.predict:app"
RUN = default_run_id(LOCAL_STORE)
# The embedded model again, named by its artifact path: its answers say "<run>/model".
OTHER_NAME = f"runs:/{RUN}/model"
RIDES = [{"PULocationID": 10, "DOLocationID": 50, "trip_distance": 4.2},
         {"PULocationID": 74, "DOLocationID": 75, "trip_distance": 1.1}]  # fmt: skip


def samples(url: str, name: str) -> dict[str, float]:
    text = requests.get(f"{url}/metrics", timeout=10).text
    return {s.labels.get("model_version", ""): s.value for f in text_string_to_metric_families(text)
            for s in f.samples if s.name == name}  # fmt: skip


def samples_adding_up_to(url: str, name: str, total: float) -> dict[str, float]:
    """The metric's samples once they add up to `total`: each worker writes its counts every second."""

    def counted() -> dict[str, float] | None:
        found = samples(url, name)
        return found if sum(found.values()) >= total else None

    return wait_until(counted, f"{name} to add up to {total:g}", timeout=30)


def test_a_canary_answers_its_share_of_10000_requests_and_a_key_sticks_across_workers(tmp_path):
    with gunicorn(APP, tmp_path / "canary.log", CANARY_MODEL_URI=OTHER_NAME, CANARY_PERCENT="10") as server:
        split = canary_split(server.url)
        every_ride = split["requests"] + 3 * split["keys"]
        counted = samples_adding_up_to(server.url, "ride_duration_predicted_minutes_count", every_ride)
        log = server.output()
    print(split)

    assert 9.9 <= split["canary_percent"] <= 10.1
    assert split["keys_seeing_both"] == 0 and 150 <= split["keys_on_canary"] <= 250
    canary_answers = split["canary_answers"] + 3 * split["keys_on_canary"]
    assert counted[f"{RUN}/model"] == canary_answers
    assert counted[RUN] == split["requests"] + 3 * split["keys"] - canary_answers
    logged = [json.loads(line) for line in log.splitlines() if line.startswith('{"ts"') and '"/predict"' in line]
    assert sum(1 for line in logged if line["model_version"] == f"{RUN}/model") == canary_answers


def test_the_shadow_scores_every_ride_logs_it_and_never_answers(tmp_path):
    log = tmp_path / "predictions.jsonl"
    with gunicorn(APP, tmp_path / "shadow.log", SHADOW_MODEL_URI=OTHER_NAME, PREDICTION_LOG=str(log)) as server:
        answers = [requests.post(f"{server.url}/predict", json=RIDES, timeout=10).json() for _ in range(20)]
        differences = samples_adding_up_to(server.url, "ride_duration_shadow_abs_diff_minutes_count", 40)
        shown = requests.get(f"{server.url}/model", timeout=10).json()

    assert {answer["model_version"] for batch in answers for answer in batch} == {RUN}
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(records) == 20
    for record in records:  # the same model: the shadow's durations equal the answer's
        assert record["shadow"] == {"model_version": f"{RUN}/model", "durations": record["durations"]}
    assert differences == {f"{RUN}/model": 40}
    assert shown["shadow"]["model_version"] == f"{RUN}/model"


def test_a_canary_that_cannot_load_stops_the_start_naming_it(tmp_path):
    done = run_until_exit(APP, tmp_path / "bad.log", CANARY_RUN_ID="0" * 32, CANARY_PERCENT="5")

    assert done.returncode == EXIT_STARTUP_FAILED
    assert "Traceback" not in done.stderr
    [line] = [line for line in done.stderr.splitlines() if "[ERROR]" in line]
    assert f"cannot start: the canary model (CANARY_MODEL_URI / CANARY_RUN_ID = {'0' * 32}): " in line
