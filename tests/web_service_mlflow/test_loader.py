import dataclasses
import json
import logging
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO, make_rides
from web_service.app import create_app
from web_service.cache import ModelCache, _write_manifest
from web_service.errors import ModelLoadError, SettingsError
from web_service.settings import AppSettings
from web_service_mlflow.layout import LOCAL_STORE
from web_service_mlflow.loader import load_predictor
from web_service_mlflow.settings import ModelSettings, SourceKind, default_run_id

UNKNOWN_RUN = "0123456789abcdef0123456789abcdef"


def settings(tmp_path, kind, run_id, tracking_uri=None, root=LOCAL_STORE, model_uri=None):
    return ModelSettings(kind, run_id, model_uri, tracking_uri, str(root), tmp_path / "cache", 0, False, AppSettings())


def test_a_run_loads_the_same_model_through_a_tracking_store_and_from_its_folder(tmp_path, trained_run):
    rides = make_rides(100, seed=4)

    tracked = load_predictor(settings(tmp_path, SourceKind.TRACKING, trained_run.run_id, trained_run.tracking_uri))
    stored = load_predictor(settings(tmp_path, SourceKind.LOCAL, trained_run.run_id, root=trained_run.store))

    assert tracked.model_version == stored.model_version == trained_run.run_id
    assert tracked.predict(rides) == stored.predict(rides)
    assert tracked.source.startswith(f"tracking server {trained_run.tracking_uri}, run {trained_run.run_id}, cached in")
    assert stored.source == f"local store {trained_run.store}, run {trained_run.run_id}"


def test_a_run_fetched_once_is_served_from_the_cache_without_its_server(tmp_path, trained_run):
    first = load_predictor(settings(tmp_path, SourceKind.TRACKING, trained_run.run_id, trained_run.tracking_uri))
    gone = f"sqlite:///{tmp_path}/no-such-dir/mlflow.db"

    again = load_predictor(settings(tmp_path, SourceKind.TRACKING, trained_run.run_id, gone))

    assert again.source.startswith(f"cache {tmp_path / 'cache' / trained_run.run_id}")
    assert again.predict(make_rides(20, seed=5)) == first.predict(make_rides(20, seed=5))


def test_unknown_run_on_the_tracking_store_names_run_and_store(tmp_path, trained_run):
    with pytest.raises(ModelLoadError) as raised:
        load_predictor(settings(tmp_path, SourceKind.TRACKING, UNKNOWN_RUN, trained_run.tracking_uri))

    assert raised.value.message.startswith(
        f"tracking server {trained_run.tracking_uri}, run {UNKNOWN_RUN}: "
        f"not found (Run with id={UNKNOWN_RUN} not found)"
    )


def test_unknown_run_in_a_folder_says_where_it_looked(tmp_path, trained_run):
    with pytest.raises(ModelLoadError, match=f"local store {trained_run.store}, run {UNKNOWN_RUN}: no model"):
        load_predictor(settings(tmp_path, SourceKind.LOCAL, UNKNOWN_RUN, root=trained_run.store))


def test_corrupt_model_artifact_is_a_load_error_not_a_crash(tmp_path, trained_run):
    store = tmp_path / "mlruns"
    shutil.copytree(trained_run.store, store)
    [model_file] = store.glob(f"*/{trained_run.run_id}/artifacts/model/model.skops")
    model_file.write_bytes(b"not a zip file")

    with pytest.raises(ModelLoadError, match="the model artifact model.skops does not deserialize as skops"):
        load_predictor(settings(tmp_path, SourceKind.LOCAL, trained_run.run_id, root=store))


@pytest.mark.slow  # the embedded real-size forest, compiled and checked
def test_embedded_default_run_is_in_the_repo_and_serves(tmp_path):
    run_id = default_run_id(LOCAL_STORE)

    predictor = load_predictor(settings(tmp_path, SourceKind.LOCAL, run_id))

    assert predictor.model_version == run_id
    duration = predictor.predict_one({"PULocationID": 10, "DOLocationID": 50, "trip_distance": 40})
    assert 1 <= duration <= 60


@pytest.mark.slow  # a subprocess
def test_a_cached_run_starts_without_importing_mlflow_skops_or_scikit_learn(tmp_path, trained_run):
    load_predictor(settings(tmp_path, SourceKind.TRACKING, trained_run.run_id, trained_run.tracking_uri))
    script = (
        "import sys; from web_service_mlflow.predict import app; "
        "print(app.extensions['ride_duration'].predictor.source); "
        "print(sorted({'mlflow', 'skops', 'sklearn', 'scipy', 'pandas'} & set(sys.modules)))"
    )
    env = os.environ | {"RUN_ID": trained_run.run_id, "MLFLOW_TRACKING_URI": "http://127.0.0.1:9",
                        "MODEL_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(REPO)}  # fmt: skip

    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr
    source, heavy_imports = done.stdout.splitlines()
    assert source.startswith(f"cache $MODEL_CACHE_DIR/{trained_run.run_id} (of tracking server ")
    assert heavy_imports == "[]"


def test_a_cache_dir_that_cannot_be_written_stops_a_tracking_server_start_naming_the_setting(tmp_path, trained_run):
    (tmp_path / "a-file").write_text("")  # fails for root too, unlike a read-only folder
    wanted = settings(tmp_path, SourceKind.TRACKING, trained_run.run_id, trained_run.tracking_uri)
    wanted = dataclasses.replace(wanted, cache_dir=tmp_path / "a-file" / "cache")

    with pytest.raises(SettingsError) as raised:
        load_predictor(wanted)

    assert raised.value.message == (
        f"MODEL_CACHE_DIR={tmp_path}/a-file/cache: cannot write the model cache "
        f"([Errno 20] Not a directory: '{tmp_path}/a-file/cache'); the model from tracking server "
        f"{trained_run.tracking_uri}, run {trained_run.run_id} is downloaded there: "
        "set MODEL_CACHE_DIR to a folder this user can write"
    )


# --- the run's reference profile ---


def loader_warnings(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records
            if record.name == "web_service_mlflow.loader" and record.levelno >= logging.WARNING]  # fmt: skip


def copied_store(tmp_path, trained_run):
    store = tmp_path / "mlruns"
    shutil.copytree(trained_run.store, store)
    [artifacts] = store.glob(f"*/{trained_run.run_id}/artifacts")
    return store, artifacts / "reference"


def test_a_runs_reference_profile_comes_with_it_from_its_folder_through_its_server_and_from_the_cache(
    tmp_path, trained_run
):
    stored = load_predictor(settings(tmp_path, SourceKind.LOCAL, trained_run.run_id, root=trained_run.store))
    tracked = load_predictor(settings(tmp_path, SourceKind.TRACKING, trained_run.run_id, trained_run.tracking_uri))
    gone = f"sqlite:///{tmp_path}/no-such-dir/mlflow.db"
    cached = load_predictor(settings(tmp_path, SourceKind.TRACKING, trained_run.run_id, gone))

    assert stored.profile is not None and stored.profile.about["run_id"] == trained_run.run_id
    assert tracked.profile == cached.profile == stored.profile
    assert (tmp_path / "cache" / trained_run.run_id / "reference" / "profile.json").is_file()
    assert cached.source.startswith("cache ")


@pytest.mark.slow  # the embedded real-size forest, compiled and checked
def test_the_embedded_run_carries_its_reference_profile_and_model_shows_it(tmp_path):
    run_id = default_run_id(LOCAL_STORE)
    predictor = load_predictor(settings(tmp_path, SourceKind.LOCAL, run_id))

    shown = create_app(AppSettings(), predictor).test_client().get("/model").get_json()["reference_profile"]

    assert shown["run_id"] == run_id
    assert shown["source"].endswith("green_tripdata_2021-01.parquet")
    assert shown["rides"] > 70_000
    assert shown["metrics"]["valid_rmse"] == 6.7558229919200725
    assert set(shown["metrics"]) == {"train_rmse", "valid_rmse", "valid_mae"}


def test_a_run_without_a_profile_is_served_with_drift_off_and_says_how_to_make_one(tmp_path, trained_run, caplog):
    store, reference = copied_store(tmp_path, trained_run)
    shutil.rmtree(reference)

    predictor = load_predictor(settings(tmp_path, SourceKind.LOCAL, trained_run.run_id, root=store))

    assert predictor.profile is None
    [line] = loader_warnings(caplog)
    assert line == (
        f"run {trained_run.run_id} has no reference profile (reference/profile.json); live drift is off; make one "
        f"with python -m web_service_mlflow.monitor.profile --run-id {trained_run.run_id} "
        "--reference <its training file> --log"
    )


def test_a_corrupt_profile_is_a_warning_naming_the_file_not_a_failed_start(tmp_path, trained_run, caplog):
    store, reference = copied_store(tmp_path, trained_run)
    (reference / "profile.json").write_text('{"format": 1, "rides": ')

    predictor = load_predictor(settings(tmp_path, SourceKind.LOCAL, trained_run.run_id, root=store))

    assert predictor.profile is None
    assert predictor.predict_one({"PULocationID": 10, "DOLocationID": 50, "trip_distance": 4.0}) > 0
    [line] = loader_warnings(caplog)
    assert line.startswith(
        f"cannot use the reference profile of run {trained_run.run_id}: {reference}/profile.json: not JSON ("
    )
    assert line.endswith("; live drift is off; make one with python -m web_service_mlflow.monitor."
                                      f"profile --run-id {trained_run.run_id} --reference <its training file> "
                                      "--log --replace")  # fmt: skip


def test_drift_profile_takes_the_place_of_the_runs_own(tmp_path, trained_run):
    own = load_predictor(settings(tmp_path, SourceKind.LOCAL, trained_run.run_id, root=trained_run.store)).profile
    other = own.with_about(source="elsewhere")
    wanted = dataclasses.replace(settings(tmp_path, SourceKind.LOCAL, trained_run.run_id, root=trained_run.store),
                                 drift_profile=other)  # fmt: skip

    assert load_predictor(wanted).profile is other


def make_entry_old(entry, reference: bool) -> None:
    """Make a cache entry look like one made before runs carried a profile (or one whose run had none)."""
    shutil.rmtree(entry / "reference")
    resolution = json.loads((entry / "resolved.json").read_text())
    if reference:
        del resolution["reference"]
    else:
        resolution["reference"] = None
    (entry / "resolved.json").write_text(json.dumps(resolution))
    _write_manifest(entry, entry.name)


def test_a_cache_entry_made_before_profiles_gets_the_runs_once_and_stays_whole(tmp_path, trained_run):
    load_predictor(settings(tmp_path, SourceKind.TRACKING, trained_run.run_id, trained_run.tracking_uri))
    entry = tmp_path / "cache" / trained_run.run_id
    make_entry_old(entry, reference=True)

    again = load_predictor(settings(tmp_path, SourceKind.TRACKING, trained_run.run_id, trained_run.tracking_uri))

    assert again.source.startswith(f"cache {entry}")
    assert again.profile is not None and again.profile.about["run_id"] == trained_run.run_id
    assert ModelCache(tmp_path / "cache").get(trained_run.run_id) == entry  # the manifest covers the addition
    assert json.loads((entry / "resolved.json").read_text())["reference"] == "reference"
    gone = f"sqlite:///{tmp_path}/no-such-dir/mlflow.db"
    assert load_predictor(settings(tmp_path, SourceKind.TRACKING, trained_run.run_id, gone)).profile == again.profile


def test_a_cache_entry_whose_run_had_no_profile_asks_no_server_and_serves(tmp_path, trained_run, caplog):
    load_predictor(settings(tmp_path, SourceKind.TRACKING, trained_run.run_id, trained_run.tracking_uri))
    make_entry_old(tmp_path / "cache" / trained_run.run_id, reference=False)
    gone = f"sqlite:///{tmp_path}/no-such-dir/mlflow.db"

    predictor = load_predictor(settings(tmp_path, SourceKind.TRACKING, trained_run.run_id, gone))

    assert predictor.profile is None
    assert f"run {trained_run.run_id} has no reference profile" in caplog.text
    assert "cannot add" not in caplog.text
