"""Runs that users bring, against real servers: MLflow 3's own log_model through `mlflow server`, then
straight from S3 with the server stopped; runs laid out by MLflow 1 and 3 (committed fixtures) in S3;
and a model trained on other features, refused at start."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import requests
from sklearn.ensemble import RandomForestRegressor
from sklearn.feature_extraction import DictVectorizer
from sklearn.pipeline import Pipeline

from harness.backends import BUCKET, s3_server, tracking_server
from harness.fixtures import bits, expected, probe_rides, store
from harness.gunicorn import gunicorn, run_until_exit
from tests.conftest import make_rides
from web_service.features import prepare_features
from web_service.startup import EXIT_STARTUP_FAILED

pytestmark = pytest.mark.integration
APP = "web_service_mlflow.predict:app"
# Runs that hold a pickle (their model, or the course's preprocessor.b) are served only when told to.
PICKLED = {"ALLOW_PICKLE": "true"}


def served(server) -> tuple[np.ndarray, set[str]]:
    """The service's answers to the probe rides, in one batch, and the model versions they name."""
    answers = requests.post(f"{server.url}/predict", json=list(probe_rides()), timeout=60).json()
    return bits([answer["duration"] for answer in answers]), {answer["model_version"] for answer in answers}


def forest_pipeline(seed: int, features=prepare_features) -> Pipeline:
    rides = make_rides(1500, seed=seed)
    minutes = [3 + 2.5 * ride["trip_distance"] + ride["PULocationID"] % 7 for ride in rides]
    model = RandomForestRegressor(n_estimators=5, max_depth=8, random_state=seed)
    return Pipeline([("dictvectorizer", DictVectorizer()), ("model", model)]).fit(list(map(features, rides)), minutes)


def log_with_mlflow(tracking_url: str, pipeline: Pipeline, serialization: str) -> tuple[str, str]:
    """MLflow 3's standard way: `mlflow.sklearn.log_model(pipeline, name="model")`. (run ID, model ID)"""
    import mlflow
    import mlflow.sklearn

    mlflow.set_tracking_uri(tracking_url)
    mlflow.set_experiment("logged-by-users")
    trusted = {"skops_trusted_types": ["sklearn.tree._tree.Tree"]} if serialization == "skops" else {}
    with mlflow.start_run() as run:
        logged = mlflow.sklearn.log_model(pipeline, name="model", serialization_format=serialization,
                                          pip_requirements=["scikit-learn"], **trusted)  # fmt: skip
    return run.info.run_id, logged.model_id


def upload(s3, folder: Path, prefix: str, only_artifacts: bool = False) -> None:
    """Copy a local MLflow store to S3 as it is (or only the artifacts, as a tracking server stores them)."""
    client = s3.client()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and (not only_artifacts or "/artifacts/" in f"/{path.relative_to(folder)}"):
            client.upload_file(str(path), BUCKET, f"{prefix}/{path.relative_to(folder)}")


@pytest.mark.parametrize("serialization", ["skops", "cloudpickle"])
def test_a_run_logged_with_log_model_serves_through_the_server_then_from_s3_with_the_server_stopped(
    tmp_path, serialization
):
    pipeline = forest_pipeline(seed=5)
    wanted = bits(pipeline.predict([prepare_features(ride) for ride in probe_rides()]))
    trust = PICKLED if serialization == "cloudpickle" else {}
    with s3_server(tmp_path / "s3") as s3:
        with tracking_server(tmp_path / "tracking", s3) as tracking:
            run_id, model_id = log_with_mlflow(tracking.url, pipeline, serialization)
            with gunicorn(APP, tmp_path / "tracking.log", RUN_ID=run_id, MLFLOW_TRACKING_URI=tracking.url,
                          MODEL_CACHE_DIR=str(tmp_path / "cache-1"), **trust) as server:  # fmt: skip
                through_server = served(server)
            by_id = {"MODEL_URI": f"models:/{model_id}", "MLFLOW_TRACKING_URI": tracking.url} | trust
            with gunicorn(APP, tmp_path / "by-id.log", MODEL_CACHE_DIR=str(tmp_path / "cache-2"), **by_id) as server:
                by_model_id = served(server)
        # The tracking server is stopped: S3 alone, with a cold cache, finds the logged model by its MLmodel.
        with gunicorn(APP, tmp_path / "s3.log", RUN_ID=run_id, MODEL_ARTIFACT_ROOT=f"s3://{BUCKET}",
                      MODEL_CACHE_DIR=str(tmp_path / "cache-3"), **s3.env, **trust) as server:  # fmt: skip
            straight_from_s3 = served(server)

    for answers, versions in (through_server, straight_from_s3):
        assert np.array_equal(answers, wanted)
        assert versions == {run_id}
    assert np.array_equal(by_model_id[0], wanted)
    assert by_model_id[1] == {f"{run_id} (models:/{model_id})"}


@pytest.fixture(scope="module")
def fixture_bucket(s3) -> str:
    """The fixture stores in S3: MLflow 1 and 2 ones whole, MLflow 3 as a tracking server stores it."""
    upload(s3, store("mlflow1-sklearn-1.0.2"), "mlflow1-sklearn")
    upload(s3, store("mlflow1-xgboost-1.5"), "mlflow1-xgboost")
    upload(s3, store("mlflow2-sklearn-1.2.2"), "mlflow2-sklearn")
    upload(s3, store("mlflow3"), "mlflow3", only_artifacts=True)
    return f"s3://{BUCKET}"


@pytest.mark.parametrize(
    ("fixture", "prefix", "extra"),
    [
        ("mlflow1-sklearn-1.0.2", "mlflow1-sklearn", PICKLED),
        ("mlflow1-xgboost-1.5", "mlflow1-xgboost", PICKLED),
        ("mlflow2-sklearn-1.2.2/boosting", "mlflow2-sklearn", PICKLED),
        ("mlflow3/xgboost", "mlflow3", {"MODEL_ARTIFACT_PATH": "model ID"} | PICKLED),
        ("mlflow3/skops", "mlflow3", {}),  # skops alone: no pickle needed
    ],
)
def test_runs_laid_out_by_other_mlflow_releases_serve_from_s3_exactly(tmp_path, s3, fixture_bucket, fixture,
                                                                      prefix, extra):  # fmt: skip
    wanted = expected(fixture)
    if extra.get("MODEL_ARTIFACT_PATH") == "model ID":  # names are kept by the tracking server, not in S3
        extra = extra | {"MODEL_ARTIFACT_PATH": wanted.record["models"]["model"]}

    with gunicorn(APP, tmp_path / "s3.log", RUN_ID=wanted.run_id, MODEL_ARTIFACT_ROOT=f"{fixture_bucket}/{prefix}",
                  **extra, **s3.env) as server:  # fmt: skip
        answers, _ = served(server)

    assert np.array_equal(answers, bits(wanted.predictions))


def log_fixture_run(client, fixture: str, root: str) -> str:
    """A new run on today's server holding a fixture run's artifacts (and its logged models, as logged models)."""
    wanted = expected(fixture)
    experiment = client.get_experiment_by_name("Default").experiment_id
    run_id = client.create_run(experiment).info.run_id
    [artifacts] = store(root).glob(f"*/{wanted.run_id}/artifacts")
    client.log_artifacts(run_id, str(artifacts))
    for name, model_id in wanted.record.get("models", {}).items():
        [folder] = store(root).glob(f"*/models/{model_id}/artifacts")
        logged = client.create_logged_model(experiment, name=name, source_run_id=run_id)
        client.log_model_artifacts(logged.model_id, str(folder))
        client.finalize_logged_model(logged.model_id, "READY")
    client.set_terminated(run_id)
    return run_id


@pytest.mark.parametrize(
    ("fixture", "root", "extra"),
    [
        ("mlflow1-xgboost-1.5", "mlflow1-xgboost-1.5", {}),  # the course's run: models_mlflow/ + preprocessor/
        ("mlflow1-sklearn-1.0.2", "mlflow1-sklearn-1.0.2", {}),
        ("mlflow2-sklearn-1.2.2/forest", "mlflow2-sklearn-1.2.2", {}),  # at artifact path ride-model
        ("mlflow3/xgboost", "mlflow3", {"MODEL_ARTIFACT_PATH": "model"}),  # two logged models, named by the server
    ],
)
def test_runs_made_by_other_releases_serve_through_todays_tracking_server(tmp_path, tracking, fixture, root, extra):
    from mlflow import MlflowClient

    run_id = log_fixture_run(MlflowClient(tracking.url), fixture, root)

    with gunicorn(APP, tmp_path / "server.log", RUN_ID=run_id, MLFLOW_TRACKING_URI=tracking.url, **extra,
                  **PICKLED) as server:  # fmt: skip
        answers, versions = served(server)

    assert np.array_equal(answers, bits(expected(fixture).predictions))
    assert versions == {f"{run_id}/model" if extra else run_id}


def test_a_model_trained_on_other_features_stops_start_up_with_one_line(tmp_path, tracking):
    def zone_one_hots(ride: dict) -> dict:
        return {"PULocationID": str(ride["PULocationID"]), "DOLocationID": str(ride["DOLocationID"]),
                "trip_distance": ride["trip_distance"]}  # fmt: skip

    pipeline = forest_pipeline(seed=6, features=zone_one_hots)
    run_id, _ = log_with_mlflow(tracking.url, pipeline, "cloudpickle")
    names = pipeline.named_steps["dictvectorizer"].feature_names_
    dropoffs, pickups = (
        sum(name.startswith(f"{field}=") for name in names) for field in ("DOLocationID", "PULocationID")
    )

    done = run_until_exit(APP, tmp_path / "refused.log", RUN_ID=run_id, MLFLOW_TRACKING_URI=tracking.url, **PICKLED)

    assert done.returncode == EXIT_STARTUP_FAILED
    [line] = [line for line in done.stderr.splitlines() if "[ERROR]" in line]
    assert line.endswith(
        f"cannot start: tracking server {tracking.url}, run {run_id}: the model was trained on "
        f"DOLocationID=… ({dropoffs} values), PULocationID=… ({pickups} values), trip_distance; the service makes "
        "PU_DO=<PULocationID>_<DOLocationID> (one-hot) and trip_distance, so this model cannot be served correctly"
    )
