"""A tracking URI with a user and password, against a real `mlflow server`: the service connects with them,
and neither /model, /metrics nor any line Gunicorn writes shows the password (issue 12, item 4).

The server runs without authentication (MLflow's basic-auth app needs Flask-WTF, which the locked
environment does not hold): MLflow's client sends the userinfo as a basic-auth header all the same,
and the server ignores it, so what the service shows is tested exactly as it would be behind auth.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
import requests

from harness.gunicorn import gunicorn
from tests.integration.test_runs_made_elsewhere import forest_pipeline

pytestmark = pytest.mark.integration
APP = "web_service_mlflow.predict:app"
SECRET = "s3cret-5d1e"
REGISTERED = "ride-duration-with-credentials"


def with_userinfo(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://alice:{SECRET}@{parts.netloc}"


def log_registered_run(tracking_url: str) -> str:
    """A skops forest logged by MLflow 3's log_model and registered as version 1; its run ID."""
    import mlflow
    import mlflow.sklearn

    mlflow.set_tracking_uri(tracking_url)
    mlflow.set_experiment("credentials")
    with mlflow.start_run() as run:
        mlflow.sklearn.log_model(forest_pipeline(seed=8), name="model", serialization_format="skops",
                                 skops_trusted_types=["sklearn.tree._tree.Tree"], pip_requirements=["scikit-learn"],
                                 registered_model_name=REGISTERED)  # fmt: skip
    return run.info.run_id


def what_is_shown(server) -> tuple[dict, str, str]:
    """/model, /metrics and the whole log of a server that answered a prediction."""
    ride = {"PULocationID": 10, "DOLocationID": 50, "trip_distance": 4.0}
    assert requests.post(f"{server.url}/predict", json=ride, timeout=10).ok
    model = requests.get(f"{server.url}/model", timeout=10).json()
    return model, requests.get(f"{server.url}/metrics", timeout=10).text, server.output()


def test_a_password_in_the_tracking_uri_reaches_neither_model_metrics_nor_the_log(tmp_path, tracking):
    run_id = log_registered_run(tracking.url)
    uri, shown_uri = with_userinfo(tracking.url), f"http://***@{urlsplit(tracking.url).netloc}"
    cache = {"MODEL_CACHE_DIR": str(tmp_path / "cache")}

    starts = []
    for name, variables in (
        ("fetched", {"RUN_ID": run_id}),
        ("cached", {"RUN_ID": run_id}),  # from the cache, the server named only as where it came from
        ("registry", {"MODEL_URI": f"models:/{REGISTERED}/1"}),
    ):
        with gunicorn(APP, tmp_path / f"{name}.log", MLFLOW_TRACKING_URI=uri, **cache, **variables) as server:
            starts.append(what_is_shown(server))

    for model, metrics, log in starts:
        assert SECRET not in json.dumps(model) + metrics + log
        assert str(tmp_path) not in json.dumps(model) + metrics
    sources = [model["source"] for model, _, _ in starts]
    assert sources[0] == f"tracking server {shown_uri}, run {run_id}, cached in $MODEL_CACHE_DIR/{run_id}"
    assert sources[1] == f"cache $MODEL_CACHE_DIR/{run_id} (of tracking server {shown_uri}, run {run_id})"
    assert sources[2].startswith(f"model registry {shown_uri}, models:/{REGISTERED}/1, cached in $MODEL_CACHE_DIR/")
    assert f'source="{sources[0]}"' in starts[0][1]
    assert starts[2][0]["registered_model"] == f"{REGISTERED}/1"
