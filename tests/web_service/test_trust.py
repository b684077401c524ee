"""What the service agrees to deserialize: its own skops types, and pickles only with ALLOW_PICKLE."""

from __future__ import annotations

import importlib

import pytest
import skops.io
from sklearn.dummy import DummyRegressor
from sklearn.ensemble import ExtraTreesRegressor, GradientBoostingRegressor, RandomForestRegressor
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import BayesianRidge, ElasticNet, HuberRegressor, Lasso, LassoLars, LinearRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.tree import DecisionTreeRegressor, ExtraTreeRegressor

from tests.conftest import make_rides
from tests.tampered import touching_pickle
from web_service.bundle import load_bundle
from web_service.errors import ModelLoadError, SettingsError
from web_service.features import prepare_features
from web_service.settings import FileModelSettings
from web_service.trust import SERVED_TYPES, Trust, skops_types
from web_service_mlflow.settings import ModelSettings

RUN = "0123456789abcdef0123456789abcdef"
# Every model the compiled forms know (web_service.engine.compiled), with each loss gradient boosting takes.
SERVED_MODELS = {
    "random forest": lambda: RandomForestRegressor(n_estimators=3, max_depth=4, random_state=0),
    "extra trees": lambda: ExtraTreesRegressor(n_estimators=3, max_depth=4, random_state=0),
    "decision tree": lambda: DecisionTreeRegressor(max_depth=4),
    "extra tree": lambda: ExtraTreeRegressor(max_depth=4, random_state=0),
    "gradient boosting": lambda: GradientBoostingRegressor(n_estimators=3, random_state=0),
    "gradient boosting from zero": lambda: GradientBoostingRegressor(n_estimators=3, init="zero"),
    "gradient boosting from a dummy": lambda: GradientBoostingRegressor(n_estimators=3, init=DummyRegressor()),
    "gradient boosting, huber": lambda: GradientBoostingRegressor(n_estimators=3, loss="huber"),
    "gradient boosting, absolute error": lambda: GradientBoostingRegressor(n_estimators=3, loss="absolute_error"),
    "gradient boosting, quantile": lambda: GradientBoostingRegressor(n_estimators=3, loss="quantile"),
    "linear regression": LinearRegression,
    "ridge": Ridge,
    "lasso": Lasso,
    "elastic net": ElasticNet,
    "lasso lars": LassoLars,
    "bayesian ridge": BayesianRidge,
    "huber": lambda: HuberRegressor(max_iter=50),  # converged or not, it holds the same types
}
# Coordinate descent, LARS, Bayesian ridge and Huber take no sparse input: the vectorizer is dense.
DENSE = {"lasso", "elastic net", "lasso lars", "bayesian ridge", "huber"}


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("name", sorted(SERVED_MODELS))
def test_every_model_the_service_compiles_is_made_of_served_types_alone(tmp_path, name):
    rides = make_rides(120, seed=4)
    minutes = [3 + 2.5 * ride["trip_distance"] + ride["PULocationID"] % 7 for ride in rides]
    vectorizer = DictVectorizer(sparse=name not in DENSE)
    pipeline = make_pipeline(vectorizer, SERVED_MODELS[name]()).fit(list(map(prepare_features, rides)), minutes)
    path = tmp_path / "model.skops"

    for saved in (pipeline, pipeline.steps[-1][1]):  # a Pipeline, or a bare model beside preprocessor.b
        skops.io.dump(saved, path)
        assert skops_types(path) <= SERVED_TYPES


@pytest.mark.parametrize("name", sorted(name for name in SERVED_TYPES if name.startswith(("sklearn.", "numpy."))))
def test_every_served_type_is_one_the_installed_libraries_have(name):
    # A release that moves a class would otherwise leave the list naming nothing.
    module, _, attribute = name.rpartition(".")
    assert isinstance(getattr(importlib.import_module(module), attribute), type)


@pytest.mark.parametrize(
    ("environ", "allowed"),
    [
        ({}, True),  # the embedded default run ships with the code
        ({"ALLOW_PICKLE": "false"}, False),
        ({"RUN_ID": RUN}, False),  # any other run is whatever its store holds
        ({"RUN_ID": RUN, "ALLOW_PICKLE": "true"}, True),
        ({"MODEL_URI": "models:/ride@production", "MLFLOW_TRACKING_URI": "http://mlflow:5000"}, False),
    ],
)
def test_allow_pickle_is_on_for_the_embedded_run_and_off_for_every_other_unless_set(environ, allowed):
    assert ModelSettings.from_env(environ).trust.allow_pickle is allowed


def test_allow_pickle_is_on_for_model_path_unless_set_off():
    assert FileModelSettings.from_env({"MODEL_PATH": "lin_reg.bin"}).allow_pickle
    assert not FileModelSettings.from_env({"MODEL_PATH": "lin_reg.bin", "ALLOW_PICKLE": "no"}).allow_pickle


def test_skops_trusted_types_is_a_comma_separated_list_of_class_names():
    listed = "sklearn.neighbors._regression.KNeighborsRegressor, scipy.sparse._csr.csr_matrix,"

    trust = ModelSettings.from_env({"RUN_ID": RUN, "SKOPS_TRUSTED_TYPES": listed}).trust

    assert trust.skops_types == ("sklearn.neighbors._regression.KNeighborsRegressor", "scipy.sparse._csr.csr_matrix")


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"ALLOW_PICKLE": "sure"}, "ALLOW_PICKLE must be true or false, got 'sure'"),
        ({"SKOPS_TRUSTED_TYPES": "KNeighborsRegressor"}, "SKOPS_TRUSTED_TYPES must list module.Class names"),
    ],
)
def test_a_trust_setting_that_means_nothing_stops_start_up(environ, message):
    with pytest.raises(SettingsError, match=message):
        ModelSettings.from_env({"RUN_ID": RUN} | environ)


def test_a_model_path_pickle_is_refused_before_it_is_unpickled_with_allow_pickle_false(tmp_path):
    marker, path = tmp_path / "ran", tmp_path / "lin_reg.bin"
    path.write_bytes(touching_pickle(marker))

    with pytest.raises(ModelLoadError) as raised:
        load_bundle(path, tmp_path / "cache", allow_pickle=False)

    assert raised.value.message == (
        f"MODEL_PATH={path}: the model file is a pickle file, and loading one runs any code it holds; "
        "ALLOW_PICKLE=true allows it, only if you trust whoever can write it"
    )
    assert not marker.exists()


def test_nothing_is_trusted_beyond_the_served_types_and_no_pickle_unless_granted():
    assert Trust() == Trust(allow_pickle=False, skops_types=())
    with pytest.raises(ModelLoadError, match="holds types this service does not serve: os.system;"):
        Trust().check_skops({"sklearn.pipeline.Pipeline", "os.system"}, "run", "the model artifact model.skops")
