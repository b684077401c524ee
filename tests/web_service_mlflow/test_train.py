import pickle
import zipfile
from pathlib import Path

import mlflow
import mlflow.sklearn
import numpy as np
from mlflow import MlflowClient
from sklearn.ensemble import RandomForestRegressor
from sklearn.metrics import root_mean_squared_error

from harness.trips import write_trips
from tests.conftest import make_rides
from web_service.drift import read_profile
from web_service.features import prepare_features, prepare_features_frame
from web_service_mlflow.data import read_rides
from web_service_mlflow.train import ForestParams, fit_pipeline, parse_args


def test_training_prints_the_run_id_last_and_progress_on_stderr(trained_run):
    assert trained_run.stdout.strip().splitlines() == [trained_run.run_id]
    for step in (
        "reading training rides",
        "fitting: 12/12 trees",
        "profiling the training rides",
        "logging the run to MLflow",
        "validation RMSE",
    ):
        assert step in trained_run.stderr


def test_run_logs_params_rmse_and_artifacts(trained_run):
    run = MlflowClient(trained_run.tracking_uri).get_run(trained_run.run_id)

    assert {k: run.data.params[k] for k in ("n_estimators", "max_depth", "min_samples_leaf", "random_state")} == {
        "n_estimators": "12",
        "max_depth": "6",
        "min_samples_leaf": "3",
        "random_state": "1",
    }
    assert 0 < run.data.metrics["rmse"] < 10
    artifacts = Path(run.info.artifact_uri.removeprefix("file://"))
    assert (artifacts / "model" / "MLmodel").is_file()
    assert (artifacts / "preprocessor" / "preprocessor.b").is_file()
    assert (artifacts / "plots" / "predicted_vs_actual.png").read_bytes().startswith(b"\x89PNG")


def test_run_carries_the_profile_of_its_training_file_with_its_errors(trained_run, train_parquet):
    run = MlflowClient(trained_run.tracking_uri).get_run(trained_run.run_id)
    artifacts = Path(run.info.artifact_uri.removeprefix("file://"))
    pipeline = mlflow.sklearn.load_model(str(artifacts / "model"))
    fitted = read_rides(str(train_parquet))

    profile = read_profile(artifacts / "reference" / "profile.json")

    assert profile.rides == 800  # every ride the service would take, not only the 1-60 minute ones fitted
    assert len(fitted) < profile.rides
    train_rmse = root_mean_squared_error(fitted["duration"], pipeline.predict(prepare_features_frame(fitted)))
    assert profile.metrics == {
        "train_rmse": train_rmse,
        "valid_rmse": run.data.metrics["rmse"],
        "valid_mae": run.data.metrics["valid_mae"],
    }
    assert 0 < run.data.metrics["valid_mae"] < run.data.metrics["rmse"]
    assert profile.about["run_id"] == profile.about["model_version"] == trained_run.run_id
    assert profile.about["source"] == str(train_parquet)


def test_model_loads_from_the_runs_own_artifact_path_without_a_tracking_server(trained_run, valid_parquet):
    [model_dir] = trained_run.store.glob(f"*/{trained_run.run_id}/artifacts/model")
    by_path = mlflow.sklearn.load_model(str(model_dir))
    rides = read_rides(str(valid_parquet))

    rmse = root_mean_squared_error(rides["duration"], by_path.predict(prepare_features_frame(rides)))

    logged = MlflowClient(trained_run.tracking_uri).get_run(trained_run.run_id).data.metrics["rmse"]
    assert rmse == logged


def test_preprocessor_artifact_is_the_pipelines_fitted_vectorizer(trained_run):
    [run_dir] = trained_run.store.glob(f"*/{trained_run.run_id}/artifacts")
    vectorizer = pickle.loads((run_dir / "preprocessor" / "preprocessor.b").read_bytes())
    pipeline = mlflow.sklearn.load_model(str(run_dir / "model"))

    assert vectorizer.feature_names_ == pipeline.named_steps["dictvectorizer"].feature_names_


def test_model_is_saved_with_skops_and_compressed(trained_run):
    [model_dir] = trained_run.store.glob(f"*/{trained_run.run_id}/artifacts/model")

    with zipfile.ZipFile(model_dir / "model.skops") as archive:
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_DEFLATED}
    assert "serialization_format: skops" in (model_dir / "MLmodel").read_text()


def test_growing_the_forest_in_steps_gives_the_trees_of_one_fit(tmp_path):
    rides = read_rides(str(write_trips(tmp_path / "trips.parquet", rows=400, seed=5)))
    params = ForestParams(n_estimators=25, max_depth=8, min_samples_leaf=2, random_state=3)

    stepwise = fit_pipeline(rides, params, n_jobs=1)

    vectorizer = stepwise.named_steps["dictvectorizer"]
    single = RandomForestRegressor(**params.__dict__).fit(
        vectorizer.transform(prepare_features_frame(rides)), rides["duration"]
    )
    features = vectorizer.transform([prepare_features(ride) for ride in make_rides(300, seed=9)])
    assert np.array_equal(stepwise.named_steps["model"].predict(features), single.predict(features))
    assert stepwise.named_steps["model"].n_jobs is None


def test_every_hyperparameter_is_settable_and_defaults_are_the_courses():
    defaults = parse_args(["--train", "a", "--valid", "b"])
    custom = parse_args(
        [
            "--train",
            "a",
            "--valid",
            "b",
            "--max-depth",
            "5",
            "--n-estimators",
            "7",
            "--min-samples-leaf",
            "2",
            "--random-state",
            "42",
        ]
    )

    assert (defaults.max_depth, defaults.n_estimators, defaults.min_samples_leaf, defaults.random_state) == (
        20,
        100,
        10,
        0,
    )
    assert (custom.max_depth, custom.n_estimators, custom.min_samples_leaf, custom.random_state) == (
        5,
        7,
        2,
        42,
    )
