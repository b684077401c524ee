"""A model trained on features the service does not make is refused at start, in one line."""

from __future__ import annotations

import logging
import pickle

import pytest
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from harness.fixtures import FIXTURES
from web_service.bundle import load_bundle
from web_service.errors import ModelLoadError
from web_service.modelcheck import check_features
from web_service.settings import FileModelSettings
from web_service.startup import EXIT_STARTUP_FAILED, build_app

FOREIGN = FIXTURES / "foreign-features" / "foreign_features.bin"


def fitted(dicts: list[dict], model=None) -> Pipeline:
    pipeline = Pipeline([("dictvectorizer", DictVectorizer()), ("model", model or LinearRegression())])
    return pipeline.fit(dicts, [float(i) for i in range(len(dicts))])


def test_a_model_trained_on_zone_one_hots_is_refused_naming_what_it_expects_and_what_we_make():
    with pytest.raises(ModelLoadError) as raised:
        load_bundle(FOREIGN)

    assert raised.value.message == (
        f"MODEL_PATH={FOREIGN}: the model was trained on DOLocationID=… (40 values), PULocationID=… (40 values), "
        "trip_distance; the service makes PU_DO=<PULocationID>_<DOLocationID> (one-hot) and trip_distance, "
        "so this model cannot be served correctly"
    )


def load_model_path(environ):
    """What web_service.predict does at import (importing it would start the service)."""
    settings = FileModelSettings.from_env(environ)
    return settings.app, load_bundle(settings.model_path)


def test_the_refusal_stops_start_up_with_exit_code_3_and_one_line(caplog):
    with caplog.at_level(logging.ERROR, logger="web_service"), pytest.raises(SystemExit) as stopped:
        build_app(load_model_path, {"MODEL_PATH": str(FOREIGN)})

    assert stopped.value.code == EXIT_STARTUP_FAILED
    [line] = caplog.messages
    assert line.startswith(f"cannot start: MODEL_PATH={FOREIGN}: the model was trained on DOLocationID=…")


def test_a_model_whose_input_width_differs_from_its_vectorizer_is_refused():
    ours = [{"PU_DO": "1_2", "trip_distance": 1.0}, {"PU_DO": "3_4", "trip_distance": 2.0}]
    model = fitted(ours + [{"PU_DO": "5_6", "trip_distance": 3.0}]).named_steps["model"]  # 4 columns
    pipeline = Pipeline([("dictvectorizer", fitted(ours).named_steps["dictvectorizer"]), ("model", model)])

    with pytest.raises(ModelLoadError, match=r"^run x: the model expects 4 input columns but its DictVectorizer "
                                             r"makes 3; the preprocessor is not the one"):  # fmt: skip
        check_features(pipeline, "run x")


def test_a_model_with_one_feature_more_than_we_make_is_refused():
    pipeline = fitted([{"PU_DO": "1_2", "trip_distance": 1.0, "fare_amount": 5.0},
                       {"PU_DO": "3_4", "trip_distance": 2.0, "fare_amount": 7.0}])  # fmt: skip

    with pytest.raises(ModelLoadError, match="trained on PU_DO=… \\(2 values\\), fare_amount, trip_distance;"):
        check_features(pipeline, "run x")


def test_a_pipeline_that_does_not_start_with_a_dict_vectorizer_is_refused():
    pipeline = Pipeline([("scale", StandardScaler()), ("model", LinearRegression())])

    with pytest.raises(ModelLoadError, match="the model's first step is a StandardScaler, not a DictVectorizer"):
        check_features(pipeline, "run x")


def test_a_model_that_ignores_the_distance_serves_with_a_warning(caplog):
    pipeline = fitted([{"PU_DO": "1_2"}, {"PU_DO": "3_4"}])

    with caplog.at_level(logging.WARNING, logger="web_service"):
        check_features(pipeline, "run x")

    assert caplog.messages == ["run x: the model does not use trip_distance; it predicts from PU_DO alone"]


def test_the_models_the_service_trains_pass(linear_pipeline, tmp_path):
    path = tmp_path / "lin_reg.bin"
    path.write_bytes(pickle.dumps(tuple(linear_pipeline.named_steps.values())))

    assert load_bundle(path).predict_one({"PULocationID": 1, "DOLocationID": 2, "trip_distance": 3.0}) > 0
