import numpy as np
import pytest
from sklearn.feature_extraction import DictVectorizer
from sklearn.pipeline import Pipeline

from web_service.app import create_app
from web_service.features import prepare_features
from web_service.predictor import Predictor
from web_service.settings import AppSettings

MODEL_VERSION = "test-model-1"


@pytest.fixture
def predictor(linear_pipeline) -> Predictor:
    return Predictor(linear_pipeline, model_version=MODEL_VERSION, source="test fixture")


@pytest.fixture
def app(predictor):
    return create_app(AppSettings(max_body_bytes=2048), predictor)


@pytest.fixture
def client(app):
    return app.test_client()


def fit_dict_pipeline(model, rows: int = 3000, seed: int = 3) -> Pipeline:
    """Fit Pipeline(DictVectorizer, model) on rides whose pickup/dropoff pair matters.

    Most rides run between a dozen zones, so pairs repeat and trees split on PU_DO columns, not
    only on the distance: the compiled table then has many rows to get right.
    """
    rng = np.random.default_rng(seed)
    common = rng.random(rows) < 0.7
    pickup = np.where(common, rng.integers(1, 13, rows), rng.integers(1, 266, rows))
    dropoff = np.where(common, rng.integers(1, 13, rows), rng.integers(1, 266, rows))
    distance = rng.gamma(2.0, 1.5, rows).round(2)
    minutes = 3 + 2.5 * distance + (pickup * 7 + dropoff * 3) % 11 + rng.normal(0, 1, rows)
    rides = [
        {"PULocationID": int(pu), "DOLocationID": int(do), "trip_distance": float(d)}
        for pu, do, d in zip(pickup, dropoff, distance, strict=True)
    ]
    pipeline = Pipeline([("dictvectorizer", DictVectorizer()), ("model", model)])
    return pipeline.fit([prepare_features(ride) for ride in rides], minutes)
