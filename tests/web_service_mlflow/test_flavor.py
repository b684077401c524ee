import pickle

import mlflow.sklearn
import pytest
from sklearn.ensemble import RandomForestRegressor

from tests.conftest import make_rides
from web_service.errors import ModelLoadError
from web_service.features import prepare_features, prepare_features_frame
from web_service_mlflow.flavor import load_run_model
from web_service_mlflow.train import SKOPS_TRUSTED_TYPES

RIDES = make_rides(50, seed=31)
# Stating requirements spares MLflow loading each model in a subprocess to infer them.
NO_INFERENCE = ["scikit-learn"]


@pytest.fixture(scope="module")
def forest_pipeline(trips):
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.pipeline import Pipeline

    durations = (trips["lpep_dropoff_datetime"] - trips["lpep_pickup_datetime"]).dt.total_seconds() / 60
    pipeline = Pipeline(
        [("dictvectorizer", DictVectorizer()), ("model", RandomForestRegressor(n_estimators=5, random_state=0))]
    )
    return pipeline.fit(prepare_features_frame(trips), durations)


def expected(pipeline) -> list[float]:
    return pipeline.predict([prepare_features(ride) for ride in RIDES]).tolist()


@pytest.mark.parametrize("serialization", ["skops", "pickle", "cloudpickle"])
def test_every_sklearn_serialization_loads_without_mlflow(tmp_path, forest_pipeline, serialization):
    trusted = {"skops_trusted_types": SKOPS_TRUSTED_TYPES} if serialization == "skops" else {}
    mlflow.sklearn.save_model(
        forest_pipeline,
        tmp_path / "model",
        serialization_format=serialization,
        pip_requirements=NO_INFERENCE,
        **trusted,
    )

    loaded, provenance = load_run_model(tmp_path / "model", None, "test run")

    assert provenance.format == serialization
    assert loaded.predict([prepare_features(ride) for ride in RIDES]).tolist() == expected(forest_pipeline)


def test_a_bare_regressor_is_joined_to_the_runs_preprocessor(tmp_path, forest_pipeline):
    vectorizer, forest = forest_pipeline.named_steps.values()
    mlflow.sklearn.save_model(forest, tmp_path / "model", serialization_format="pickle", pip_requirements=NO_INFERENCE)
    (tmp_path / "preprocessor").mkdir()
    (tmp_path / "preprocessor" / "preprocessor.b").write_bytes(pickle.dumps(vectorizer))

    loaded, _ = load_run_model(tmp_path / "model", tmp_path / "preprocessor", "test run")

    assert loaded.predict([prepare_features(ride) for ride in RIDES]).tolist() == expected(forest_pipeline)


def test_a_bare_regressor_without_preprocessor_says_what_is_missing(tmp_path, forest_pipeline):
    mlflow.sklearn.save_model(
        forest_pipeline.named_steps["model"],
        tmp_path / "model",
        serialization_format="pickle",
        pip_requirements=NO_INFERENCE,
    )

    with pytest.raises(
        ModelLoadError, match="the model is a bare RandomForestRegressor and the run has no preprocessor/preprocessor.b"
    ):
        load_run_model(tmp_path / "model", tmp_path / "preprocessor", "test run")


def test_a_folder_without_mlmodel_is_a_load_error(tmp_path):
    (tmp_path / "model").mkdir()

    with pytest.raises(ModelLoadError, match="test run: cannot read the MLmodel file"):
        load_run_model(tmp_path / "model", None, "test run")


def test_an_unknown_serialization_is_refused(tmp_path, forest_pipeline):
    mlflow.sklearn.save_model(
        forest_pipeline, tmp_path / "model", serialization_format="pickle", pip_requirements=NO_INFERENCE
    )
    mlmodel = tmp_path / "model" / "MLmodel"
    mlmodel.write_text(mlmodel.read_text().replace("serialization_format: pickle", "serialization_format: joblib"))

    with pytest.raises(
        ModelLoadError, match="unsupported sklearn serialization 'joblib', expected one of skops, pickle, cloudpickle"
    ):
        load_run_model(tmp_path / "model", None, "test run")
