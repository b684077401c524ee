"""The compiled form serves only when it equals scikit-learn; anything else falls back, and says so."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LinearRegression
from sklearn.neighbors import KNeighborsRegressor

from tests.conftest import make_rides
from tests.web_service.conftest import fit_dict_pipeline
from web_service.app import create_app
from web_service.engine import compiled, fastpath
from web_service.engine.compiled import TreeTable
from web_service.features import prepare_features
from web_service.predictor import Predictor
from web_service.settings import AppSettings


@pytest.fixture(scope="module")
def forest():
    return fit_dict_pipeline(RandomForestRegressor(n_estimators=15, min_samples_leaf=2, random_state=0))


def fastpath_log(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "web_service.engine.fastpath"]


def serve(pipeline, where="test model"):
    model, engine, _ = fastpath.choose(pipeline, where)
    return create_app(AppSettings(), Predictor(model, "v1", "test", engine=engine)).test_client()


def test_a_forest_is_served_by_its_compiled_table(forest):
    model, engine, probe = fastpath.choose(forest, "test forest")

    assert isinstance(model, TreeTable)
    assert engine.name == "compiled tree_table"
    assert f"equal to scikit-learn on {len(probe.rides)} probe rides" in engine.detail


def test_a_model_the_fast_path_cannot_compile_is_served_by_scikit_learn_and_logged(caplog):
    pipeline = fit_dict_pipeline(KNeighborsRegressor(n_neighbors=3))
    rides = make_rides(200, seed=41)

    with caplog.at_level(logging.INFO, logger="web_service.engine.fastpath"):
        client = serve(pipeline, "knn model")
    answers = client.post("/predict", json=rides).get_json()
    described = client.get("/model").get_json()

    assert [a["duration"] for a in answers] == pipeline.predict([prepare_features(r) for r in rides]).tolist()
    assert described["engine"] == {
        "name": "scikit-learn",
        "detail": "no compiled form: no fast form for KNeighborsRegressor",
    }
    assert fastpath_log(caplog) == ["knn model: serving with scikit-learn: no fast form for KNeighborsRegressor"]


def test_a_compiled_form_that_differs_by_one_bit_falls_back_with_a_warning(forest, monkeypatch, caplog):
    honest = compiled.compile_pipeline

    def off_by_one_bit(pipeline):
        fast = honest(pipeline)
        fast.table[0, :] = np.nextafter(fast.table[0, :], np.inf)  # the row every unseen pair uses
        return fast

    monkeypatch.setattr(compiled, "compile_pipeline", off_by_one_bit)
    rides = make_rides(100, seed=42)

    with caplog.at_level(logging.WARNING, logger="web_service.engine.fastpath"):
        client = serve(forest, "tampered forest")
    answers = client.post("/predict", json=rides).get_json()

    assert [a["duration"] for a in answers] == forest.predict([prepare_features(r) for r in rides]).tolist()
    assert client.get("/model").get_json()["engine"]["name"] == "scikit-learn"
    [warning] = fastpath_log(caplog)
    assert warning.startswith("tampered forest: the compiled tree_table differs from scikit-learn on ")
    assert warning.endswith("; serving with scikit-learn")


def test_a_compiler_that_fails_in_any_way_falls_back_to_scikit_learn_with_one_warning(forest, monkeypatch, caplog):
    def broken(pipeline):
        raise IndexError("index 7 is out of bounds")

    monkeypatch.setattr(compiled, "compile_pipeline", broken)
    rides = make_rides(50, seed=43)

    with caplog.at_level(logging.INFO, logger="web_service.engine.fastpath"):
        client = serve(forest, "odd model")
    answers = client.post("/predict", json=rides).get_json()

    assert [a["duration"] for a in answers] == forest.predict([prepare_features(r) for r in rides]).tolist()
    assert fastpath_log(caplog) == [
        "odd model: compiling failed (IndexError: index 7 is out of bounds); serving with scikit-learn"
    ]
    assert client.get("/model").get_json()["engine"]["name"] == "scikit-learn"


def test_a_model_missing_a_parameter_its_class_reads_still_compiles_and_describes_itself():
    # A LinearRegression unpickled from an old release, unmended, lacks `tol`; get_params() raises.
    pipeline = fit_dict_pipeline(LinearRegression())
    del pipeline.named_steps["model"].tol

    client = serve(pipeline, "old model")

    assert client.get("/model").get_json()["engine"]["name"] == "compiled linear"


def test_a_saved_form_is_checked_again_against_scikit_learns_recorded_answers(forest, tmp_path, caplog):
    fast, engine, probe = fastpath.choose(forest, "forest")
    fastpath.save_verified(fast, probe, engine, tmp_path / "good")
    fastpath.save_verified(fast, probe, engine, tmp_path / "bad")
    record = json.loads((tmp_path / "bad" / fastpath.PROBE_FILE).read_text())
    record["expected"][0] = (float.fromhex(record["expected"][0]) + 1e-9).hex()
    (tmp_path / "bad" / fastpath.PROBE_FILE).write_text(json.dumps(record))

    loaded, engine = fastpath.load_verified(tmp_path / "good", "forest")
    with caplog.at_level(logging.WARNING, logger="web_service.engine.fastpath"):
        refused = fastpath.load_verified(tmp_path / "bad", "forest")

    assert engine.name == "compiled tree_table"
    assert probe.mismatches(loaded) == []
    assert refused is None
    assert caplog.messages == [
        f"forest: the saved compiled form in {tmp_path / 'bad'} differs on 1 probe rides; compiling again"
    ]


def test_an_unreadable_saved_form_is_compiled_again(forest, tmp_path, caplog):
    fast, engine, probe = fastpath.choose(forest, "forest")
    fastpath.save_verified(fast, probe, engine, tmp_path / "form")
    (tmp_path / "form" / "table.npy").write_bytes(b"not numpy")

    with caplog.at_level(logging.WARNING, logger="web_service.engine.fastpath"):
        assert fastpath.load_verified(tmp_path / "form", "forest") is None

    [warning] = fastpath_log(caplog)
    assert "unreadable" in warning and warning.endswith("compiling again")


def reachable_intervals(thresholds: np.ndarray) -> set[int]:
    """Intervals (t[k-1], t[k]] that some float32 distance falls in; the others no ride can reach."""
    below = thresholds.astype(np.float32)
    below = np.where(below.astype(np.float64) > thresholds, np.nextafter(below, np.float32(-np.inf)), below)
    inside = below.astype(np.float64) > np.concatenate([[-np.inf], thresholds[:-1]])
    return set(np.flatnonzero(inside).tolist()) | {len(thresholds)}


def test_probe_rides_reach_every_table_row_and_both_sides_of_every_threshold(forest):
    fast = compiled.compile_pipeline(forest)
    rides = fastpath.probe_rides(fast)
    features = [prepare_features(ride) for ride in rides]
    distances = np.array([f["trip_distance"] for f in features], dtype=np.float32).astype(np.float64)

    rows = {fast.rows.get(f["PU_DO"], 0) for f in features}
    intervals = set(np.searchsorted(fast.thresholds, distances, side="left").tolist())

    assert rows == set(range(fast.table.shape[0]))
    assert intervals == reachable_intervals(fast.thresholds)
    assert len(intervals) > 1000
