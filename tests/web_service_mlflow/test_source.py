import shutil

import pytest

from tests.conftest import make_rides
from web_service.errors import ModelLoadError, SettingsError
from web_service.settings import AppSettings
from web_service_mlflow.layout import LOCAL_STORE
from web_service_mlflow.settings import RunSettings, default_run_id
from web_service_mlflow.source import load_predictor

UNKNOWN_RUN = "0123456789abcdef0123456789abcdef"


def settings(run_id, tracking_uri=None, store=LOCAL_STORE):
    return RunSettings(run_id, tracking_uri, store, is_default_run=False, app=AppSettings())


def test_run_loads_the_same_model_from_tracking_store_and_local_store(trained_run):
    rides = make_rides(100, seed=4)

    tracked = load_predictor(settings(trained_run.run_id, tracking_uri=trained_run.tracking_uri))
    stored = load_predictor(settings(trained_run.run_id, store=trained_run.store))

    assert tracked.model_version == stored.model_version == trained_run.run_id
    assert tracked.predict(rides) == stored.predict(rides)
    assert tracked.source.startswith("tracking server sqlite:///")
    assert stored.source.startswith("local store ")


def test_unknown_run_on_the_tracking_server_names_run_and_server(trained_run):
    with pytest.raises(ModelLoadError) as raised:
        load_predictor(settings(UNKNOWN_RUN, tracking_uri=trained_run.tracking_uri))

    assert raised.value.message == (
        f"run {UNKNOWN_RUN} on tracking server {trained_run.tracking_uri}: no such run; "
        "check RUN_ID and MLFLOW_TRACKING_URI"
    )


def test_unknown_run_in_the_local_store_says_where_it_looked(trained_run):
    with pytest.raises(
        ModelLoadError, match=f"run {UNKNOWN_RUN} has no model in the local store {trained_run.store}"
    ):
        load_predictor(settings(UNKNOWN_RUN, store=trained_run.store))


def test_corrupt_model_artifact_is_a_load_error_not_a_crash(trained_run, tmp_path):
    store = tmp_path / "mlruns"
    shutil.copytree(trained_run.store, store)
    [model_file] = store.glob(f"*/{trained_run.run_id}/artifacts/model/model.skops")
    model_file.write_bytes(b"not a zip file")

    with pytest.raises(ModelLoadError, match=f"run {trained_run.run_id} in {store}: .*"):
        load_predictor(settings(trained_run.run_id, store=store))


def test_embedded_default_run_is_in_the_repo_and_serves():
    run_id = default_run_id(LOCAL_STORE)

    predictor = load_predictor(settings(run_id))

    assert predictor.model_version == run_id
    duration = predictor.predict_one({"PULocationID": 10, "DOLocationID": 50, "trip_distance": 40})
    assert 1 <= duration <= 60


def test_settings_default_to_the_embedded_run_from_the_repo_store():
    chosen = RunSettings.from_env({"MLFLOW_TRACKING_URI": "http://ignored:5000", "MODEL_STORE": "/elsewhere"})

    assert chosen == RunSettings(default_run_id(LOCAL_STORE), None, LOCAL_STORE, True, AppSettings())


def test_settings_take_run_id_tracking_uri_and_store_from_the_environment():
    chosen = RunSettings.from_env(
        {
            "RUN_ID": UNKNOWN_RUN,
            "MLFLOW_TRACKING_URI": "http://mlflow:5000",
            "MODEL_STORE": "/models",
            "MAX_BODY_BYTES": "4096",
        }
    )

    assert (chosen.run_id, chosen.tracking_uri, str(chosen.model_store)) == (
        UNKNOWN_RUN,
        "http://mlflow:5000",
        "/models",
    )
    assert chosen.app.max_body_bytes == 4096


def test_a_run_id_that_is_not_one_fails_naming_the_variable():
    with pytest.raises(
        SettingsError, match=r"RUN_ID must be an MLflow run ID \(32 lowercase hex digits\), got 'latest'"
    ):
        RunSettings.from_env({"RUN_ID": "latest"})
