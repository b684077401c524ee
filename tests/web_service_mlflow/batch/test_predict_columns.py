"""Predictor.predict_columns, batch scoring's path, gives Predictor.predict's floats bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import ExtraTreesRegressor, GradientBoostingRegressor, RandomForestRegressor
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.tree import DecisionTreeRegressor

from tests.conftest import make_rides
from tests.web_service.conftest import fit_dict_pipeline
from web_service.engine.compiled import LinearForm, TreeTable, compile_pipeline
from web_service.engine.fastpath import probe_rides
from web_service.features import prepare_features
from web_service.predictor import Predictor

pytestmark = pytest.mark.usefixtures("model_environment")

MODELS = {
    "random forest": lambda: RandomForestRegressor(n_estimators=20, min_samples_leaf=2, random_state=0),
    "extra trees": lambda: ExtraTreesRegressor(n_estimators=10, min_samples_leaf=2, random_state=0),
    "decision tree": lambda: DecisionTreeRegressor(min_samples_leaf=3, random_state=0),
    "gradient boosting": lambda: GradientBoostingRegressor(n_estimators=30, max_depth=4, random_state=0),
    "linear regression": LinearRegression,
    "ridge": lambda: Ridge(alpha=0.5),
}
# Trained on zones 1 to 12 only: every other zone lies outside the compiled form's pair grid.
SMALL_GRID_ZONES = 12


def fit_on_few_zones(model) -> Pipeline:
    rng = np.random.default_rng(8)
    pickup, dropoff = rng.integers(1, SMALL_GRID_ZONES + 1, (2, 1500))
    distance = rng.gamma(2.0, 1.5, 1500).round(2)
    minutes = 3 + 2.5 * distance + (pickup * 7 + dropoff * 3) % 11 + rng.normal(0, 1, 1500)
    rides = [{"PULocationID": int(p), "DOLocationID": int(d), "trip_distance": float(m)}
             for p, d, m in zip(pickup, dropoff, distance, strict=True)]  # fmt: skip
    pipeline = Pipeline([("dictvectorizer", DictVectorizer()), ("model", model)])
    return pipeline.fit([prepare_features(ride) for ride in rides], minutes)


PIPELINES = {name: lambda make=make: fit_dict_pipeline(make()) for name, make in MODELS.items()} | {
    "random forest on 12 zones": lambda: fit_on_few_zones(MODELS["random forest"]()),
    "linear regression on 12 zones": lambda: fit_on_few_zones(LinearRegression()),
}


@pytest.fixture(scope="module", params=sorted(PIPELINES))
def pipeline(request) -> Pipeline:
    return PIPELINES[request.param]()


def unseen_pairs(pipeline: Pipeline, count: int, seed: int) -> list[dict]:
    """Rides between zones 1..265 whose pickup/drop-off pair the vectorizer never saw."""
    vocabulary = pipeline.named_steps["dictvectorizer"].vocabulary_
    rng = np.random.default_rng(seed)
    rides = []
    for pickup, dropoff in rng.integers(1, 266, (count * 3, 2)).tolist():
        if f"PU_DO={pickup}_{dropoff}" not in vocabulary and len(rides) < count:
            rides.append({"PULocationID": pickup, "DOLocationID": dropoff, "trip_distance": float(rng.gamma(2, 2))})
    return rides


def columns(rides: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(np.array([ride[name] for ride in rides], dtype) for name, dtype in
                 (("PULocationID", np.int64), ("DOLocationID", np.int64), ("trip_distance", np.float64)))  # fmt: skip


def bits(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).view(np.uint64)


@pytest.mark.slow  # thousands of rides through scikit-learn and the compiled form
def test_predict_columns_equals_predict_for_the_compiled_form_and_for_scikit_learn(pipeline):
    fast = compile_pipeline(pipeline)
    edge = [{"PULocationID": pu, "DOLocationID": do, "trip_distance": miles}
            for pu, do in ((1, 1), (1, 265), (265, 1), (265, 265), (264, 265), (SMALL_GRID_ZONES + 1, 1))
            for miles in (0.0, -0.0, 5e-324, 0.01, 499.99)]  # fmt: skip
    rides = make_rides(3000, seed=41) + probe_rides(fast, seed=42) + unseen_pairs(pipeline, 500, seed=43) + edge
    expected = bits(Predictor(pipeline, "sk", "test").predict(rides))  # scikit-learn itself

    for predictor in (Predictor(fast, "fast", "test"), Predictor(pipeline, "sk", "test")):
        assert np.array_equal(bits(predictor.predict_columns(*columns(rides))), expected)
        assert np.array_equal(bits(predictor.predict(rides)), expected)
    alone = [Predictor(fast, "fast", "test").predict_one(ride) for ride in rides[:400]]  # the scalar path
    assert np.array_equal(bits(alone), expected[:400])


def test_the_small_grid_forms_see_zones_outside_their_pair_grid():
    for make in (PIPELINES["random forest on 12 zones"], PIPELINES["linear regression on 12 zones"]):
        fast = compile_pipeline(make())
        assert isinstance(fast, TreeTable | LinearForm)
        assert fast._pairs.grid.shape == (SMALL_GRID_ZONES + 1, SMALL_GRID_ZONES + 1)


def test_the_default_runs_compiled_table_predicts_columns_as_it_predicts_rides(default_predictor):
    assert default_predictor.engine.name == "compiled tree_table"
    rides = make_rides(5000, seed=44) + probe_rides(default_predictor.pipeline, seed=45)

    got = default_predictor.predict_columns(*columns(rides))

    assert np.array_equal(bits(got), bits(default_predictor.predict(rides)))
