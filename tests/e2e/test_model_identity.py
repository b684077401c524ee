"""Under real Gunicorn: where the model came from is shown on the open /model and in the metrics without
machine paths, and no credential of a source reaches them or any log line (issue 12, item 4)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from harness.fixtures import FIXTURES
from harness.gunicorn import gunicorn, run_until_exit
from harness.processes import free_port
from tests.conftest import REPO
from web_service.startup import EXIT_STARTUP_FAILED
from web_service_mlflow.layout import LOCAL_STORE
from web_service_mlflow.settings import default_run_id

pytestmark = pytest.mark.e2e
MLFLOW_APP = "web_service_mlflow.predict:app"
FILE_APP = "web_service.predict:app"
SECRET = "s3cret-9f2c"
LIN_REG = FIXTURES / "sklearn-1.0.2" / "lin_reg" / "lin_reg.bin"


def model_info_sources(url: str) -> set[str]:
    families = text_string_to_metric_families(requests.get(f"{url}/metrics", timeout=10).text)
    return {sample.labels["source"] for family in families for sample in family.samples
            if sample.name == "ride_duration_model_info"}  # fmt: skip


def machine_paths(text: str, *folders: Path) -> list[str]:
    """Which of the repo, the home folder and `folders` the text names."""
    return [str(folder) for folder in (REPO, Path.home(), *folders) if str(folder) in text]


def test_the_embedded_run_is_shown_from_mlruns_with_its_training_data_by_file_name(tmp_path):
    run_id = default_run_id(LOCAL_STORE)

    with gunicorn(MLFLOW_APP, tmp_path / "default.log", MODEL_CACHE_DIR=str(tmp_path / "cache")) as server:
        shown = requests.get(f"{server.url}/model", timeout=10).json()
        sources = model_info_sources(server.url)

    assert shown["source"] == f"local store mlruns, run {run_id}"
    assert sources == {shown["source"]}
    assert shown["training"]["params"]["train_data"] == "…/green_tripdata_2021-01.parquet"
    assert shown["run_id"] == run_id
    assert machine_paths(json.dumps(shown), tmp_path) == []


def test_a_model_path_file_is_shown_relative_to_the_service_or_by_its_name(tmp_path):
    elsewhere = shutil.copy(LIN_REG, tmp_path / "lin_reg.bin")
    cache = {"MODEL_CACHE_DIR": str(tmp_path / "cache")}

    shown = []
    for path in (LIN_REG, elsewhere, elsewhere):  # the last start serves the compiled form from the cache
        with gunicorn(FILE_APP, tmp_path / "file.log", MODEL_PATH=str(path), **cache) as server:
            shown.append(requests.get(f"{server.url}/model", timeout=10).json())

    assert [model["source"] for model in shown] == [
        "file:tests/fixtures/sklearn-1.0.2/lin_reg/lin_reg.bin", "file:…/lin_reg.bin", "file:…/lin_reg.bin"
    ]  # fmt: skip
    assert all(machine_paths(json.dumps(model), tmp_path) == [] for model in shown)


def test_a_tracking_uri_password_is_in_no_line_of_a_start_up_that_cannot_reach_it(tmp_path):
    port = free_port()  # nothing listens there

    done = run_until_exit(MLFLOW_APP, tmp_path / "down.log", RUN_ID="a" * 32, MODEL_LOAD_TIMEOUT="1",
                          MLFLOW_TRACKING_URI=f"http://alice:{SECRET}@127.0.0.1:{port}")  # fmt: skip

    assert done.returncode == EXIT_STARTUP_FAILED
    assert SECRET not in done.stdout + done.stderr
    [line] = [line for line in done.stderr.splitlines() if "[ERROR]" in line]
    assert f"cannot start: tracking server http://***@127.0.0.1:{port}, run {'a' * 32}: still failing" in line
    assert f"API request to http://***@127.0.0.1:{port}/api/2.0/mlflow/" in line


def test_an_s3_endpoint_password_is_in_no_line_of_a_start_up_that_cannot_reach_it(tmp_path):
    port = free_port()
    endpoint = {"MLFLOW_S3_ENDPOINT_URL": f"http://key:{SECRET}@127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "key",
                "AWS_SECRET_ACCESS_KEY": "not-this-one", "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip

    done = run_until_exit(MLFLOW_APP, tmp_path / "s3.log", RUN_ID="a" * 32, MODEL_ARTIFACT_ROOT="s3://bucket/1",
                          MODEL_LOAD_TIMEOUT="1", **endpoint)  # fmt: skip

    assert done.returncode == EXIT_STARTUP_FAILED
    assert SECRET not in done.stdout + done.stderr
    assert f"http://***@127.0.0.1:{port}/bucket" in done.stderr
