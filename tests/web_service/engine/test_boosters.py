"""XGBoost boosters from xgboost 1.5 (legacy binary) and 3.2 (UBJSON, JSON), served without xgboost, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from harness.fixtures import bits, expected, probe_rides, run_folder, store
from web_service.engine import compiled, fastpath
from web_service.engine.boosters import BoosterError, BoosterPipeline, _from_treelite, read_booster
from web_service.features import prepare_features
from web_service.unpickle import loads

XGBOOST_1 = expected("mlflow1-xgboost-1.5")
XGBOOST_3 = expected("mlflow3/xgboost")


def booster_case(name: str) -> tuple[BoosterPipeline, np.ndarray]:
    """The fixture's booster with its run's DictVectorizer, and xgboost's own answers."""
    if name == "legacy binary (xgboost 1.5)":
        artifacts = run_folder("mlflow1-xgboost-1.5", XGBOOST_1.run_id) / "artifacts"
        model, wanted = artifacts / "models_mlflow" / "model.xgb", XGBOOST_1.predictions
    else:
        artifacts = run_folder("mlflow3", XGBOOST_3.run_id) / "artifacts"
        model_id = XGBOOST_3.record["models"]["model" if "UBJSON" in name else "model-json"]
        [folder] = store("mlflow3").glob(f"*/models/{model_id}/artifacts")
        model, wanted = next(folder.glob("model.*")), XGBOOST_3.predictions
    vectorizer = loads((artifacts / "preprocessor" / "preprocessor.b").read_bytes()).obj
    return BoosterPipeline(vectorizer, read_booster(model)), wanted


CASES = ["legacy binary (xgboost 1.5)", "UBJSON (xgboost 3.2)", "JSON (xgboost 3.2)"]


@pytest.mark.parametrize("case", CASES)
def test_the_booster_rule_gives_xgboosts_own_floats(case):
    pipeline, wanted = booster_case(case)

    answers = pipeline.predict([prepare_features(ride) for ride in probe_rides()])

    assert np.array_equal(bits(answers), bits(wanted))


@pytest.mark.parametrize("case", CASES)
def test_the_compiled_table_of_a_booster_gives_xgboosts_own_floats_batched_and_alone(case):
    pipeline, wanted = booster_case(case)
    features = [prepare_features(ride) for ride in probe_rides()]

    fast = compiled.compile_pipeline(pipeline)

    assert np.array_equal(bits(fast.predict(features)), bits(wanted))
    assert np.array_equal(bits([fast.predict([f])[0] for f in features]), bits(wanted))


def test_a_booster_is_served_by_its_table_after_equalling_the_rule_on_the_probe():
    pipeline, _ = booster_case("legacy binary (xgboost 1.5)")

    model, engine, probe = fastpath.choose(pipeline, "booster")

    assert engine.name == "compiled tree_table"
    assert engine.detail.endswith(f"equal to {fastpath.XGBOOST_RULE} on {len(probe.rides)} probe rides")


def test_the_legacy_file_is_told_from_json_and_ubjson_by_its_first_bytes():
    pipeline, _ = booster_case("legacy binary (xgboost 1.5)")
    ubj, _ = booster_case("UBJSON (xgboost 3.2)")
    as_json, _ = booster_case("JSON (xgboost 3.2)")

    assert [p.steps[1][1].params["format"] for p in (pipeline, ubj, as_json)] == ["legacy binary", "ubjson", "json"]


def test_a_file_that_is_no_booster_says_so(tmp_path):
    path = tmp_path / "model.xgb"
    path.write_bytes(b"\x00\x01 not a model")

    with pytest.raises(BoosterError, match=r"model.xgb does not read as an XGBoost legacy binary model \("):
        read_booster(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"task_type": "kBinaryClf"}, "is a kBinaryClf with 1 targets; one regression output is supported"),
        ({"postprocessor": "exponential"}, "transforms its output (exponential); only regression objectives"),
        ({"base_scores": [0.5, 0.5]}, "has 2 base scores, expected one"),
    ],
)
def test_a_booster_that_is_not_a_plain_regression_is_refused(change, message):
    dump = {"task_type": "kRegressor", "num_target": 1, "num_class": [1], "postprocessor": "identity",
            "average_tree_output": False, "base_scores": [0.5], "num_feature": 2, "trees": []}  # fmt: skip

    with pytest.raises(BoosterError) as raised:
        _from_treelite(dump | change, "model.json", "json", "json")

    assert message in str(raised.value)


def test_a_categorical_split_is_refused():
    dump = {"task_type": "kRegressor", "num_target": 1, "num_class": [1], "postprocessor": "identity",
            "base_scores": [0.5], "num_feature": 2,
            "trees": [{"nodes": [{"node_id": 0, "node_type": "categorical_test_node", "left_child": 1,
                                  "right_child": 2}]}]}  # fmt: skip

    with pytest.raises(BoosterError, match="has a categorical_test_node split"):
        _from_treelite(dump, "model.json", "json", "json")
