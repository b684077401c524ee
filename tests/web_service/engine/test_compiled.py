"""The compiled forms give scikit-learn's floats bit for bit, or refuse to exist."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import ExtraTreesRegressor, GradientBoostingRegressor, RandomForestRegressor
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MaxAbsScaler
from sklearn.tree import DecisionTreeRegressor

from tests.conftest import make_rides
from tests.web_service.conftest import fit_dict_pipeline
from web_service.engine import compiled
from web_service.engine.compiled import CannotCompile, compile_pipeline
from web_service.engine.fastpath import probe_rides
from web_service.features import prepare_features

MODELS = {
    "random forest": lambda: RandomForestRegressor(n_estimators=30, min_samples_leaf=2, random_state=0),
    "extra trees": lambda: ExtraTreesRegressor(n_estimators=20, min_samples_leaf=2, random_state=0),
    "decision tree": lambda: DecisionTreeRegressor(min_samples_leaf=3, random_state=0),
    "gradient boosting": lambda: GradientBoostingRegressor(n_estimators=40, max_depth=4, random_state=0),
    "gradient boosting from zero": lambda: GradientBoostingRegressor(n_estimators=20, init="zero", random_state=0),
    "linear regression": LinearRegression,
    "ridge": lambda: Ridge(alpha=0.5),
}


def bits(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).view(np.uint64)


@pytest.fixture(scope="module", params=sorted(MODELS))
def pipeline(request) -> Pipeline:
    return fit_dict_pipeline(MODELS[request.param]())


@pytest.mark.slow  # thousands of rides through scikit-learn and the compiled form
def test_the_compiled_form_equals_scikit_learn_bit_for_bit_on_thousands_of_rides(pipeline):
    fast = compile_pipeline(pipeline)
    # Random rides over every zone, plus rides on both sides of every distance threshold.
    rides = make_rides(5000, seed=31) + probe_rides(fast, seed=32)
    features = [prepare_features(ride) for ride in rides]

    assert len(rides) > 5000
    assert np.array_equal(bits(fast.predict(features)), bits(pipeline.predict(features)))


def test_one_ride_at_a_time_gives_the_same_bits_as_scikit_learn(pipeline):
    fast = compile_pipeline(pipeline)
    rides = make_rides(1500, seed=34) + probe_rides(fast, seed=35)[:1500]
    features = [prepare_features(ride) for ride in rides]

    alone = [fast.predict([feature])[0] for feature in features]  # the path single requests take

    assert type(fast.predict(features[:1])) is list  # the scalar path, not numpy's
    assert np.array_equal(bits(alone), bits(pipeline.predict(features)))


@pytest.mark.parametrize("rides", [1, 20])  # the scalar path and the numpy path
def test_a_forest_refuses_distances_beyond_float32_as_scikit_learn_does(rides):
    pipeline = fit_dict_pipeline(MODELS["random forest"]())
    features = [prepare_features({"PULocationID": 1, "DOLocationID": 2, "trip_distance": 1e39})] * rides

    with pytest.raises(ValueError, match="too large for dtype"), np.errstate(over="ignore"):
        pipeline.predict(features)
    with pytest.raises(ValueError, match="trip_distance is too large for float32"):
        compile_pipeline(pipeline).predict(features)


def test_a_forest_table_has_a_row_per_pu_do_column_its_trees_split_on():
    pipeline = fit_dict_pipeline(MODELS["random forest"]())
    trees = pipeline.named_steps["model"].estimators_
    distance_column = pipeline.named_steps["dictvectorizer"].vocabulary_["trip_distance"]
    split_columns = {int(c) for tree in trees for c in tree.tree_.feature if c >= 0 and c != distance_column}

    fast = compile_pipeline(pipeline)

    assert len(split_columns) > 20  # the fixture makes PU_DO matter, so the table is not trivial
    assert fast.table.shape[0] == len(split_columns) + 1  # plus the row of pairs no split uses


def test_a_saved_form_loads_and_predicts_the_same_bits(tmp_path, pipeline):
    fast = compile_pipeline(pipeline)
    features = [prepare_features(ride) for ride in make_rides(500, seed=33)]

    compiled.save(fast, tmp_path / "form")
    loaded = compiled.load(tmp_path / "form")

    assert type(loaded) is type(fast) and loaded.facts == fast.facts
    assert np.array_equal(bits(loaded.predict(features)), bits(fast.predict(features)))


@pytest.mark.parametrize("distance", [float("nan"), float("inf")])
def test_a_non_finite_distance_is_refused_as_scikit_learn_refuses_it(pipeline, distance):
    features = [prepare_features({"PULocationID": 1, "DOLocationID": 2, "trip_distance": distance})]

    with pytest.raises(ValueError):
        pipeline.predict(features)
    with pytest.raises(ValueError, match="trip_distance must be finite"):
        compile_pipeline(pipeline).predict(features)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: fit_dict_pipeline(KNeighborsRegressor()), "no fast form for KNeighborsRegressor"),
        (
            lambda: Pipeline(
                [
                    *fit_dict_pipeline(LinearRegression()).steps[:1],
                    ("scale", MaxAbsScaler()),
                    ("model", LinearRegression()),
                ]
            ),  # fmt: skip
            "not a two-step Pipeline(DictVectorizer, regressor)",
        ),
    ],
)
def test_models_without_an_exact_fast_form_are_refused_with_the_reason(make, reason):
    with pytest.raises(CannotCompile, match=reason.replace("(", r"\(").replace(")", r"\)")):
        compile_pipeline(make())


def test_a_table_over_the_memory_limit_is_refused(monkeypatch):
    monkeypatch.setattr(compiled, "MAX_TABLE_BYTES", 1000)

    with pytest.raises(CannotCompile, match=r"its table would take \d+ MB"):
        compile_pipeline(fit_dict_pipeline(MODELS["random forest"]()))
