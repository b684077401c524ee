"""Compiling happens in a child process: the master reads the saved form back, and each line is written once."""

from __future__ import annotations

import logging
import pickle

import pytest
from sklearn.neighbors import KNeighborsRegressor

from harness.fixtures import FIXTURES
from tests.web_service.conftest import fit_dict_pipeline
from web_service.bundle import load_bundle
from web_service.engine.compiled import TreeTable
from web_service.errors import ModelLoadError

FOREST = FIXTURES / "sklearn-1.0.2" / "forest" / "forest.bin"


def messages(caplog, text: str) -> list[str]:
    return [record.getMessage() for record in caplog.records if text in record.getMessage()]


def test_a_model_compiled_apart_is_served_from_its_saved_form_and_its_lines_are_written_once(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="web_service"):
        predictor = load_bundle(FOREST, tmp_path / "cache")

    assert isinstance(predictor.pipeline, TreeTable)
    assert len(messages(caplog, "model made with scikit-learn 1.0.2")) == 1  # said by the child, replayed here
    assert list((tmp_path / "cache" / "compiled").glob("*/table.npy"))  # what the child saved


def test_a_model_the_child_refuses_is_refused_with_its_message(tmp_path):
    foreign = FIXTURES / "foreign-features" / "foreign_features.bin"

    with pytest.raises(ModelLoadError, match=r"the model was trained on DOLocationID=… \(40 values\)"):
        load_bundle(foreign, tmp_path / "cache")


def test_a_model_with_no_compiled_form_is_loaded_by_the_master_and_said_once(tmp_path, caplog):
    path = tmp_path / "knn.bin"
    path.write_bytes(pickle.dumps(tuple(fit_dict_pipeline(KNeighborsRegressor(n_neighbors=3)).named_steps.values())))

    with caplog.at_level(logging.INFO, logger="web_service"):
        predictor = load_bundle(path, tmp_path / "cache")

    assert predictor.engine.name == "scikit-learn"
    assert len(messages(caplog, "no fast form for KNeighborsRegressor")) == 1
