"""Pickles made by older scikit-learn releases answer here exactly what those releases answered."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from sklearn.pipeline import Pipeline
from sklearn.tree import _tree

from harness.fixtures import FIXTURES, bits, expected, probe_rides
from tests.conftest import REPO
from web_service import unpickle
from web_service.bundle import load_bundle
from web_service.errors import ModelLoadError
from web_service.features import prepare_features

# (fixture, model): course-style `pickle.dump((dv, model), f)` files from three releases.
PICKLES = [(release, model) for release in ("sklearn-0.24", "sklearn-1.0.2", "sklearn-1.5")
           for model in ("lin_reg", "forest")]  # fmt: skip
INSTALLED = __import__("sklearn").__version__


def pickle_path(release: str, model: str):
    return FIXTURES / release / model / f"{model}.bin"


@pytest.mark.parametrize(("release", "model"), PICKLES)
def test_an_old_pickle_served_by_model_path_answers_what_its_release_answered(release, model):
    predictor = load_bundle(pickle_path(release, model))
    rides = list(probe_rides())

    batch = predictor.predict(rides)
    alone = [predictor.predict_one(ride) for ride in rides]

    wanted = bits(expected(f"{release}/{model}").predictions)
    assert np.array_equal(bits(batch), wanted)
    assert np.array_equal(bits(alone), wanted)
    assert predictor.engine.name.startswith("compiled")


@pytest.mark.parametrize(("release", "model"), PICKLES)
def test_the_mended_scikit_learn_model_itself_answers_what_its_release_answered(release, model):
    # What serves when a model has no compiled form: scikit-learn, on the mended objects.
    vectorizer, estimator = unpickle.loads(pickle_path(release, model).read_bytes()).obj
    pipeline = Pipeline([("dictvectorizer", vectorizer), ("model", estimator)])

    answers = pipeline.predict([prepare_features(ride) for ride in probe_rides()])

    assert np.array_equal(bits(answers), bits(expected(f"{release}/{model}").predictions))


def test_loading_an_old_pickle_says_in_one_line_which_releases_and_that_it_was_verified(caplog):
    path = pickle_path("sklearn-1.0.2", "forest")

    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.INFO, logger="web_service"):
        warnings.simplefilter("always")
        load_bundle(path)

    [line] = [r.getMessage() for r in caplog.records if r.name == "web_service.loading"]
    assert line.startswith(
        f"MODEL_PATH={path}: model made with scikit-learn 1.0.2 (pickle), served with scikit-learn {INSTALLED}; "
        "mended on load: 4 tree node arrays given missing_go_to_left, "
        "RandomForestRegressor.estimator=DecisionTreeRegressor(), RandomForestRegressor.monotonic_cst=None, "
        # x5: the four trees and the forest's old base_estimator
        "RandomForestRegressor.n_jobs=-1 -> 1, DecisionTreeRegressor.monotonic_cst=None (x5); verified: "
    )
    assert line.endswith(" probe rides") and "equal to scikit-learn on " in line
    assert [str(w.message) for w in caught if "InconsistentVersion" in type(w.message).__name__] == []


def test_model_describes_the_release_that_made_it_and_what_was_mended():
    engine = load_bundle(pickle_path("sklearn-0.24", "lin_reg")).engine.describe()

    assert engine["model_made_with"] == {
        "library": "scikit-learn",
        "version": "0.24.2",
        "format": "pickle",
        "served_with": f"scikit-learn {INSTALLED}",
        "mended": ["LinearRegression.tol=1e-06"],
    }


def test_a_pickle_that_cannot_load_names_the_release_that_made_it_and_the_installed_one(tmp_path):
    raw = pickle_path("sklearn-1.0.2", "forest").read_bytes()
    path = tmp_path / "truncated.bin"
    path.write_bytes(raw[: len(raw) // 2])

    with pytest.raises(ModelLoadError) as raised:
        load_bundle(path)

    assert raised.value.message.startswith(f"MODEL_PATH={path}: the model does not deserialize as pickle (")
    assert raised.value.message.endswith(f"; it was made by scikit-learn 1.0.2, and {INSTALLED} is installed")


def test_old_tree_node_arrays_gain_the_field_scikit_learn_1_3_added_and_nothing_else():
    # The upgrade leans on scikit-learn's private tree layout: this fails first if it changes.
    assert "missing_go_to_left" in np.dtype(_tree.NODE_DTYPE).names
    done = unpickle.loads(pickle_path("sklearn-1.0.2", "forest").read_bytes())
    forest = done.obj[1]

    for estimator in forest.estimators_:
        assert isinstance(estimator.tree_, _tree.Tree)
        assert not estimator.tree_.missing_go_to_left.any()
    assert done.made_with == "1.0.2"
    assert done.mended[0] == "4 tree node arrays given missing_go_to_left"


def test_the_release_is_read_from_a_pickle_without_unpickling_it():
    raw = pickle_path("sklearn-0.24", "forest").read_bytes()

    assert unpickle.pickled_sklearn_version(raw) == "0.24.2"
    assert unpickle.pickled_sklearn_version(b"\x00 not a pickle") is None


@pytest.mark.slow  # a subprocess
def test_a_model_path_pickle_served_twice_starts_the_second_time_without_scikit_learn(tmp_path):
    path = pickle_path("sklearn-1.0.2", "forest")
    first = load_bundle(path, tmp_path / "cache")
    script = (
        "import sys; from web_service.predict import app; "
        "print(app.extensions['ride_duration'].predictor.engine.name); "
        "print(sorted({'sklearn', 'scipy', 'treelite'} & set(sys.modules)))"
    )
    env = os.environ | {"MODEL_PATH": str(path), "MODEL_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(REPO)}

    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [first.engine.name, "[]"]
