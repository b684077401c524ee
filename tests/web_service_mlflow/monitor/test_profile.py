"""`python -m web_service_mlflow.monitor.profile`: a reference profile for a run without one."""

from __future__ import annotations

import shutil

import pytest
from mlflow import MlflowClient

from tests.web_service_mlflow.test_commands import assert_one_line, command
from web_service.drift import read_profile
from web_service_mlflow.layout import PROFILE_FILE, REFERENCE_ARTIFACT, run_artifacts
from web_service_mlflow.loader import load_from_env

pytestmark = pytest.mark.slow  # profiles made by the monitor's commands, in subprocesses

MODULE = "web_service_mlflow.monitor.profile"
NO_SERVER = {"MLFLOW_TRACKING_URI": "", "MODEL_URI": "", "DRIFT_PROFILE": ""}


@pytest.fixture
def bare_store(tmp_path, trained_run):
    """A copy of the trained run's folder store, its profile removed: a run made before profiles."""
    store = tmp_path / "mlruns"
    shutil.copytree(trained_run.store, store)
    shutil.rmtree(run_artifacts(store, trained_run.run_id) / REFERENCE_ARTIFACT)
    return store


def the_runs_own(trained_run):
    return read_profile(run_artifacts(trained_run.store, trained_run.run_id) / REFERENCE_ARTIFACT / PROFILE_FILE)


def test_a_profile_written_to_a_file_is_the_one_training_made(tmp_path, trained_run, train_parquet, valid_parquet):
    output = tmp_path / "out" / "profile.json"

    done = command(MODULE, "--run-id", trained_run.run_id, "--reference", str(train_parquet), "--valid",
                   str(valid_parquet), "--output", str(output), MODEL_ARTIFACT_ROOT=str(trained_run.store),
                   MODEL_CACHE_DIR=str(tmp_path / "cache"), **NO_SERVER)  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{output}\n"
    made, trained = read_profile(output), the_runs_own(trained_run)
    # Scored by the loaded (compiled) model, measured on the same rides: equal to what training wrote.
    assert (made.rides, made.numeric, made.zones, made.metrics) == (
        trained.rides, trained.numeric, trained.zones, trained.metrics,
    )  # fmt: skip
    assert made.about["run_id"] == trained_run.run_id
    assert "monitor.profile" not in done.stderr  # the loader's advice to run this very command


def test_log_adds_it_to_a_folder_stores_run_once(tmp_path, trained_run, bare_store, train_parquet):
    variables = {"MODEL_ARTIFACT_ROOT": str(bare_store), "MODEL_CACHE_DIR": str(tmp_path / "cache")} | NO_SERVER
    args = ("--run-id", trained_run.run_id, "--reference", str(train_parquet), "--log")

    done = command(MODULE, *args, **variables)
    again = command(MODULE, *args, **variables)

    where = run_artifacts(bare_store, trained_run.run_id) / REFERENCE_ARTIFACT / PROFILE_FILE
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{where}\n"
    _, predictor = load_from_env({"RUN_ID": trained_run.run_id} | variables)
    assert predictor.profile == read_profile(where)
    # Without --valid the validation errors are the run's logged RMSE alone.
    assert set(predictor.profile.metrics) == {"train_rmse", "valid_rmse"}
    assert_one_line(again, f"cannot make the reference profile: run {trained_run.run_id} already has "
                           "reference/profile.json; add --replace to replace it")  # fmt: skip
    assert command(MODULE, *args, "--replace", **variables).returncode == 0


def test_log_goes_through_the_tracking_server_when_one_is_set(tmp_path, trained_run, train_parquet):
    # A run logged by another tool: a model, no profile.
    tracking = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(tracking)
    experiment = client.create_experiment("elsewhere", artifact_location=str(tmp_path / "artifacts"))
    run_id = client.create_run(experiment).info.run_id
    client.log_artifacts(run_id, str(run_artifacts(trained_run.store, trained_run.run_id) / "model"), "model")
    variables = {"MLFLOW_TRACKING_URI": tracking, "MODEL_ARTIFACT_ROOT": "", "MODEL_CACHE_DIR": str(tmp_path / "c")}

    done = command(MODULE, "--run-id", run_id, "--reference", str(train_parquet), "--log", **variables)

    assert done.returncode == 0, done.stderr
    assert [item.path for item in client.list_artifacts(run_id, REFERENCE_ARTIFACT)] == ["reference/profile.json"]
    assert "keeps serving it without this profile until its cache entry" in done.stderr
    fresh = {"RUN_ID": run_id, "MLFLOW_TRACKING_URI": tracking, "MODEL_CACHE_DIR": str(tmp_path / "fresh")}
    assert load_from_env(fresh)[1].profile.about["run_id"] == run_id


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--run-id", "0" * 32], "cannot make the reference profile: local store {store}, run 00000000000000000000"),
        (["--run-id", "{run_id}", "--reference", "{tmp}/no.parquet"], "cannot make the reference profile: {tmp}/no"),
    ],
)
def test_bad_input_is_one_line(tmp_path, trained_run, train_parquet, args, says):
    fill = {"store": trained_run.store, "run_id": trained_run.run_id, "tmp": tmp_path}
    args = [arg.format(**fill) for arg in args]
    if "--reference" not in args:
        args += ["--reference", str(train_parquet)]

    done = command(MODULE, *args, "--output", str(tmp_path / "p.json"), MODEL_ARTIFACT_ROOT=str(trained_run.store),
                   MODEL_CACHE_DIR=str(tmp_path / "cache"), **NO_SERVER)  # fmt: skip

    assert_one_line(done, says.format(**fill))
    assert not (tmp_path / "p.json").exists()


def test_log_into_s3_without_a_tracking_server_says_what_to_do_instead(tmp_path, trained_run, train_parquet):
    from web_service_mlflow.monitor.profile import log_profile
    from web_service_mlflow.reference import ProfileError
    from web_service_mlflow.settings import ModelSettings

    settings = ModelSettings.from_env({"RUN_ID": trained_run.run_id, "MODEL_ARTIFACT_ROOT": "s3://bucket/1"})
    profile = the_runs_own(trained_run)

    with pytest.raises(ProfileError, match=r"--log into s3://bucket/1 needs MLFLOW_TRACKING_URI; or write it with"):
        log_profile(profile, settings, replace=False)
