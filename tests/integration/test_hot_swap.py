"""The hot swap against a real `mlflow server` and real Gunicorn: the alias moves, the service follows."""

from __future__ import annotations

import os
import re
import signal
import time

import pytest
import requests
from mlflow import MlflowClient
from prometheus_client.parser import text_string_to_metric_families

from bench.swap import measure_swap
from harness.backends import tracking_server
from harness.gunicorn import gunicorn
from harness.processes import free_port, wait_until
from harness.registry import REGISTERED_NAME
from tests.privileges import needs_root, unprivileged

pytestmark = pytest.mark.integration
APP = "web_service_mlflow.predict:app"
RIDE = {"PULocationID": 10, "DOLocationID": 50, "trip_distance": 4.2}
AS_ROOT = "to run Gunicorn as root, holding CAP_NET_ADMIN (where the old socket filter bit)"


def version(run_id: str, number: int) -> str:
    return f"{run_id} (models:/{REGISTERED_NAME}/{number})"


def answered(server) -> str:
    response = requests.post(f"{server.url}/predict", json=RIDE, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["model_version"]


def metric(server, name: str) -> float:
    text = requests.get(f"{server.url}/metrics", timeout=10).text
    found = [s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name]
    return sum(found)


def wait_for(condition, timeout: float = 90, what: str = "") -> None:
    wait_until(condition, what, timeout, every=0.2)


# One check of the alias by the service, as the tracking server's access log shows it.
ALIAS_CHECK = f"GET /api/2.0/mlflow/registered-models/alias?name={REGISTERED_NAME}&alias=production "


def checks(tracking) -> int:
    return tracking.output().count(ALIAS_CHECK)


def move(tracking_url: str, alias: str, number: int) -> None:
    MlflowClient(tracking_url).set_registered_model_alias(REGISTERED_NAME, alias, str(number))


@pytest.fixture(scope="module")
def wrong_features(tracking, registered) -> int:
    """Version 3: logged by MLflow's own log_model, on raw zone IDs, features `prepare_features` never makes."""
    import mlflow
    import mlflow.sklearn
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline

    rides = [{"PULocationID": str(i % 7), "DOLocationID": str(i % 5), "trip_distance": float(i)} for i in range(50)]
    pipeline = make_pipeline(DictVectorizer(), LinearRegression()).fit(rides, [float(i) for i in range(50)])
    mlflow.set_tracking_uri(tracking.url)
    mlflow.set_experiment("wrong-features")
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(pipeline, name="model", pip_requirements=["scikit-learn"],
                                        registered_model_name=REGISTERED_NAME)  # fmt: skip
    return int(info.registered_model_version)


@pytest.mark.parametrize("who", [pytest.param("root", marks=needs_root(AS_ROOT)), "unprivileged"])
def test_moving_the_alias_under_load_loses_no_request_and_then_only_the_new_version_answers(
    tmp_path, tracking, registered, who
):
    # The swap is Gunicorn's reload, whose socket handling once differed with root's CAP_NET_ADMIN
    # (docs/hardening.md, finding 1): both ways.
    server = unprivileged() if who == "unprivileged" else {}
    first, second = registered
    figures, log = measure_swap(tmp_path, tracking.url, REGISTERED_NAME, first.run_id, second.run_id, **server)
    print(figures)  # the figures of the closing note: pytest -s shows them

    assert figures.failed == 0, figures.failures
    assert figures.old_after_tail == 0
    # Speed claims, so bounds. The swap window's p99 measured 1.01x and 1.35x the steady p99 on a quiet
    # machine (bench/results/swap.md), 1.64x and 3.24x with the 2 cores shared at a load average of 10
    # (2026-11-26): 5x leaves room for that, and still catches what the claim is about, a swap that
    # stalls requests (a worker loading the model itself holds them for seconds: 20x and more).
    # The first new answer came 10-26 s after the move.
    assert figures.swap_p99_ms <= 5 * figures.steady_p99_ms, figures
    assert figures.move_to_first_new_s < 60
    assert figures.sent > 1000 and figures.swap_requests > 100
    assert log.count("swapping in") == 1 and "Traceback" not in log


def test_a_candidate_that_fails_its_checks_is_refused_and_rolling_back_is_the_same_path(
    tmp_path, tracking, registered, wrong_features
):
    first, second = registered
    move(tracking.url, "production", 1)
    with gunicorn(APP, tmp_path / "refused.log", MODEL_URI=f"models:/{REGISTERED_NAME}@production",
                  MLFLOW_TRACKING_URI=tracking.url, MODEL_POLL_SECONDS="1") as server:  # fmt: skip
        move(tracking.url, "production", wrong_features)
        server.wait_output("refusing", timeout=90)
        refused_at = checks(tracking)
        wait_for(lambda: checks(tracking) >= refused_at + 3, what="three more checks of the alias")

        assert answered(server) == version(first.run_id, 1)
        assert requests.get(f"{server.url}/ready", timeout=10).status_code == 200
        assert metric(server, "ride_duration_model_reload_failures_total") == 1
        assert server.output().count("refusing") == 1  # not tried again in those three checks
        assert "ride-duration/3: the model was trained on DOLocationID" in server.output()

        move(tracking.url, "production", 2)  # a good version: swapped in
        wait_for(lambda: answered(server) == version(second.run_id, 2), what="version 2")
        move(tracking.url, "production", 1)  # the rollback: the same path, from the cache
        wait_for(lambda: answered(server) == version(first.run_id, 1), what="version 1 again")
        wait_for(lambda: metric(server, "ride_duration_model_reloads_total") == 2, what="two swaps counted")
        info = {s.labels["model_version"]: s.value for f in text_string_to_metric_families(
            requests.get(f"{server.url}/metrics", timeout=10).text) for s in f.samples
            if s.name == "ride_duration_model_info"}  # fmt: skip
        assert info == {version(first.run_id, 1): 1, version(second.run_id, 2): 0}


def test_a_registry_outage_never_touches_serving_and_is_logged_once(tmp_path, s3, tracking, registered):
    first, second = registered
    move(tracking.url, "production", 1)
    port = free_port()
    # A second tracking server on the same backend and bucket, that this test stops and starts.
    with (
        tracking_server(tracking.log.parent, s3, port=port) as own,
        gunicorn(
            APP,
            tmp_path / "outage.log",
            MODEL_URI=f"models:/{REGISTERED_NAME}@production",
            MLFLOW_TRACKING_URI=own.url,
            MODEL_POLL_SECONDS="1",
        ) as server,  # fmt: skip
    ):
        own.stop()
        server.wait_output("still serving", timeout=30)
        wait_for(lambda: metric(server, "ride_duration_model_registry_up") == 0, what="registry_up 0")
        assert answered(server) == version(first.run_id, 1)
        assert requests.get(f"{server.url}/ready", timeout=10).status_code == 200
        move(tracking.url, "production", 2)  # while the service cannot see it
        with tracking_server(tracking.log.parent, s3, port=port):  # checks fail, backing off, until it answers
            wait_for(lambda: answered(server) == version(second.run_id, 2), timeout=120, what="version 2")
            assert metric(server, "ride_duration_model_registry_up") == 1
            log = server.output()  # before this server stops too: a second outage

    [failed] = re.findall(r"answers again after (\d+) failed checks", log)
    assert int(failed) >= 2, log  # several checks failed during the outage ...
    assert log.count("still serving") == 1, log  # ... and it was logged once


def test_sighup_checks_the_registry_at_once(tmp_path, tracking, registered):
    first, second = registered
    move(tracking.url, "production", 1)
    with gunicorn(APP, tmp_path / "hup.log", MODEL_URI=f"models:/{REGISTERED_NAME}@production",
                  MLFLOW_TRACKING_URI=tracking.url, MODEL_POLL_SECONDS="3600") as server:  # fmt: skip
        assert answered(server) == version(first.run_id, 1)
        move(tracking.url, "production", 2)
        time.sleep(2)  # a claim of absence: no event to wait for; longer than the 1 s poll it would otherwise be
        assert answered(server) == version(first.run_id, 1)  # the next check is an hour away
        os.kill(server.process.pid, signal.SIGHUP)
        wait_for(lambda: answered(server) == version(second.run_id, 2), timeout=60, what="version 2")
        assert "SIGHUP: checking" in server.output()


def test_a_run_id_or_a_pinned_version_is_never_watched(tmp_path, tracking, registered):
    first, _ = registered
    pinned = {"MODEL_URI": f"models:/{REGISTERED_NAME}/1"}
    for name, variables in (("run", {"RUN_ID": first.run_id}), ("pinned", pinned)):
        with gunicorn(APP, tmp_path / f"{name}.log", MLFLOW_TRACKING_URI=tracking.url, MODEL_POLL_SECONDS="1",
                      **variables) as server:  # fmt: skip
            move(tracking.url, "production", 2)
            time.sleep(2)  # a claim of absence: two polls' worth (MODEL_POLL_SECONDS=1) if it were watched
            assert first.run_id in answered(server)
            assert "watching" not in server.output()


def test_promoting_the_canary_is_moving_the_alias(tmp_path, tracking, registered):
    first, second = registered
    move(tracking.url, "production", 1)
    move(tracking.url, "canary", 2)
    with gunicorn(APP, tmp_path / "promote.log", MODEL_URI=f"models:/{REGISTERED_NAME}@production",
                  CANARY_MODEL_URI=f"models:/{REGISTERED_NAME}@canary", CANARY_PERCENT="30",
                  MLFLOW_TRACKING_URI=tracking.url, MODEL_POLL_SECONDS="1") as server:  # fmt: skip
        before = {answered(server) for _ in range(100)}
        move(tracking.url, "production", 2)  # the promotion
        wait_for(lambda: "swapping in" in server.output(), what="the swap")
        server.wait_output("Worker exiting", count=2)  # the old workers finished what they held and left
        after = {answered(server) for _ in range(100)}

    assert before == {version(first.run_id, 1), version(second.run_id, 2)}
    assert after == {version(second.run_id, 2)}
