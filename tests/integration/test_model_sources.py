"""Serving by RUN_ID or MODEL_URI against real servers: SeaweedFS as S3 and `mlflow server`."""

from __future__ import annotations

import pytest
import requests
from mlflow import MlflowClient

from harness.backends import s3_server, tracking_server, wait_tracking
from harness.gunicorn import gunicorn, run_until_exit
from harness.processes import free_port
from harness.registry import REGISTERED_NAME, train_run
from tests.conftest import make_rides
from web_service.startup import EXIT_STARTUP_FAILED
from web_service_mlflow.parity import post_all

pytestmark = pytest.mark.integration
APP = "web_service_mlflow.predict:app"
RIDES = make_rides(40, seed=21)


def served(server) -> tuple[list[float], set[str]]:
    answers = post_all(f"{server.url}/predict", RIDES)
    return [answer["duration"] for answer in answers], {answer["model_version"] for answer in answers}


def profile_run(server) -> str | None:
    """The run named by the reference profile the server loaded with the model (training logs one)."""
    shown = requests.get(f"{server.url}/model", timeout=10).json()["reference_profile"]
    return shown and shown["run_id"]


def reference(tracking_url: str, run_id: str) -> list[float]:
    """The run's own predictions, in-process, through MLflow's loader."""
    import mlflow.sklearn

    from web_service.features import prepare_features

    mlflow.set_tracking_uri(tracking_url)
    pipeline = mlflow.sklearn.load_model(f"runs:/{run_id}/model")
    return pipeline.predict([prepare_features(ride) for ride in RIDES]).tolist()


def test_a_run_is_served_through_the_tracking_server_then_from_s3_then_from_the_cache(
    tmp_path, train_parquet, valid_parquet
):
    with s3_server(tmp_path / "s3") as s3:
        with tracking_server(tmp_path / "tracking", s3) as tracking:
            run = train_run(tmp_path / "train", tracking, train_parquet, valid_parquet)
            expected = reference(tracking.url, run.run_id)
            cache = str(tmp_path / "cache-a")
            with gunicorn(APP, tmp_path / "tracking.log", RUN_ID=run.run_id, MLFLOW_TRACKING_URI=tracking.url,
                          MODEL_CACHE_DIR=cache) as server:  # fmt: skip
                assert served(server) == (expected, {run.run_id})
                assert profile_run(server) == run.run_id
        # The tracking server is down now: S3 alone, with a cold cache.
        for root in (f"s3://mlflow/{run.experiment_id}", "s3://mlflow"):
            with gunicorn(APP, tmp_path / "s3.log", RUN_ID=run.run_id, MODEL_ARTIFACT_ROOT=root,
                          MODEL_CACHE_DIR=str(tmp_path / f"cache-{len(root)}"), **s3.env) as server:  # fmt: skip
                assert served(server) == (expected, {run.run_id})
                assert profile_run(server) == run.run_id
    # Both down: the runs already fetched still serve, from the cache, whichever source is named.
    with gunicorn(APP, tmp_path / "cached.log", RUN_ID=run.run_id, MLFLOW_TRACKING_URI=tracking.url,
                  MODEL_CACHE_DIR=cache, MODEL_LOAD_TIMEOUT="0") as server:  # fmt: skip
        assert served(server) == (expected, {run.run_id})
        assert profile_run(server) == run.run_id
        assert "loaded" in server.output() and f"from cache {cache}" in server.output()


def test_the_tracking_server_can_hand_out_a_direct_s3_artifact_location(
    tmp_path, monkeypatch, s3, tracking, train_parquet, valid_parquet
):
    for name, value in s3.env.items():  # the in-process reference reads S3 directly too
        monkeypatch.setenv(name, value)
    # An experiment whose artifacts are not proxied: the client reads s3:// itself.
    MlflowClient(tracking.url).create_experiment("direct", artifact_location="s3://mlflow/direct")
    run = train_run(tmp_path, tracking, train_parquet, valid_parquet, "--experiment", "direct", **s3.env)
    assert MlflowClient(tracking.url).get_run(run.run_id).info.artifact_uri.startswith("s3://mlflow/direct/")

    with gunicorn(
        APP, tmp_path / "direct.log", RUN_ID=run.run_id, MLFLOW_TRACKING_URI=tracking.url, **s3.env
    ) as server:
        assert served(server) == (reference(tracking.url, run.run_id), {run.run_id})


def test_moving_the_registry_alias_and_restarting_serves_the_other_version(tmp_path, tracking, registered):
    first, second = registered
    variables = {"MODEL_URI": f"models:/{REGISTERED_NAME}@production", "MLFLOW_TRACKING_URI": tracking.url}

    with gunicorn(APP, tmp_path / "v1.log", **variables) as server:
        before = served(server)
    MlflowClient(tracking.url).set_registered_model_alias(REGISTERED_NAME, "production", "2")
    with gunicorn(APP, tmp_path / "v2.log", **variables) as server:
        after = served(server)

    assert before == (
        reference(tracking.url, first.run_id),
        {f"{first.run_id} (models:/{REGISTERED_NAME}/1)"},
    )
    assert after == (
        reference(tracking.url, second.run_id),
        {f"{second.run_id} (models:/{REGISTERED_NAME}/2)"},
    )
    assert before[0] != after[0]


def test_a_pinned_registry_version_is_served(tmp_path, tracking, registered):
    first, _ = registered

    with gunicorn(
        APP,
        tmp_path / "pinned.log",
        MODEL_URI=f"models:/{REGISTERED_NAME}/1",
        MLFLOW_TRACKING_URI=tracking.url,
    ) as server:
        assert served(server)[1] == {f"{first.run_id} (models:/{REGISTERED_NAME}/1)"}
        assert profile_run(server) == first.run_id  # through the version's run


def test_a_tracking_server_that_starts_slowly_is_waited_for(tmp_path, s3, tracking, registered):
    first, _ = registered
    port = free_port()
    with gunicorn(APP, tmp_path / "early.log", RUN_ID=first.run_id, MLFLOW_TRACKING_URI=f"http://127.0.0.1:{port}",
                  MODEL_LOAD_TIMEOUT="120", wait=False) as early:  # fmt: skip
        early.wait_output("retrying in")  # gunicorn found nobody listening on that port, and waits
        # A second server on the same backend store and bucket, starting late.
        with tracking_server(tracking.log.parent, s3, port=port, wait=False) as late:
            wait_tracking(late)
            early.wait_healthy(timeout=120)
            assert served(early)[1] == {first.run_id}


def test_preload_fetches_the_model_once_for_all_workers(tmp_path, tracking, registered):
    first, _ = registered

    with gunicorn(APP, tmp_path / "workers.log", RUN_ID=first.run_id, MLFLOW_TRACKING_URI=tracking.url,
                  WEB_CONCURRENCY="3") as server:  # fmt: skip
        served(server)
        log = server.wait_output("Booting worker", count=3)

    assert log.count(f"loaded {first.run_id} from") == 1
    assert log.count("Booting worker") == 3


def test_transient_failures_give_up_after_the_load_timeout_with_one_message(tmp_path):
    run_id = "0" * 32
    url = f"http://127.0.0.1:{free_port()}"

    done = run_until_exit(APP, tmp_path / "down.log", RUN_ID=run_id, MLFLOW_TRACKING_URI=url, MODEL_LOAD_TIMEOUT="2")

    assert done.returncode == EXIT_STARTUP_FAILED
    errors = [line for line in done.stderr.splitlines() if "[ERROR]" in line]
    assert len(errors) == 1
    assert f"tracking server {url}, run {run_id}: still failing after" in errors[0]
    assert "over 2 s" in errors[0] and "cannot connect" in errors[0]
    assert done.stderr.count("retrying in") >= 2
