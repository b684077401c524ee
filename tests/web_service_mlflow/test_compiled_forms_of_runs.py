"""Verified compiled forms kept in the cache: reused across restarts, renewed when anything changes."""

from __future__ import annotations

import logging
import shutil

import pytest

from tests.conftest import make_rides
from web_service.engine import compiled_store
from web_service.engine.compiled_store import COMPILED_FOLDER, load_model, model_key
from web_service_mlflow.flavor import load_run_model
from web_service_mlflow.layout import run_artifacts


@pytest.fixture
def run_dir(tmp_path, trained_run):
    """A private copy of the trained run's artifacts, free to change."""
    artifacts = run_artifacts(trained_run.store, trained_run.run_id)
    return shutil.copytree(artifacts, tmp_path / "artifacts")


def entries(cache_dir):
    """Saved forms, without the lock files beside them."""
    return [path for path in (cache_dir / COMPILED_FOLDER).iterdir() if not path.name.startswith(".")]


def load(run_dir, cache_dir):
    model_dir, preprocessor_dir = run_dir / "model", run_dir / "preprocessor"
    return load_model([model_dir, preprocessor_dir], "test run", cache_dir,
                      lambda: load_run_model(model_dir, preprocessor_dir, "test run"))  # fmt: skip


def test_the_second_load_serves_the_saved_form_with_the_same_predictions(run_dir, tmp_path):
    from web_service.features import prepare_features

    features = [prepare_features(ride) for ride in make_rides(300, seed=51)]

    first, first_engine = load(run_dir, tmp_path / "cache")
    [entry] = entries(tmp_path / "cache")
    second, second_engine = load(run_dir, tmp_path / "cache")

    assert first_engine == second_engine and first_engine.name == "compiled tree_table"
    assert entry.name == model_key([run_dir / "model", run_dir / "preprocessor"])
    assert second.predict(features).tolist() == first.predict(features).tolist()


def test_the_key_changes_with_the_model_file_and_the_library_versions(run_dir, monkeypatch):
    before = model_key([run_dir / "model", run_dir / "preprocessor"])
    (run_dir / "model" / "MLmodel").write_text((run_dir / "model" / "MLmodel").read_text() + "\n# retrained\n")
    after_model = model_key([run_dir / "model", run_dir / "preprocessor"])
    monkeypatch.setattr(compiled_store, "version", lambda name: "99.0")
    after_upgrade = model_key([run_dir / "model", run_dir / "preprocessor"])

    assert len({before, after_model, after_upgrade}) == 3


def test_a_damaged_entry_is_compiled_again(run_dir, tmp_path, caplog):
    load(run_dir, tmp_path / "cache")
    [entry] = entries(tmp_path / "cache")
    (entry / "table.npy").write_bytes(b"half a file")

    with caplog.at_level(logging.WARNING):
        _, engine = load(run_dir, tmp_path / "cache")

    assert engine.name == "compiled tree_table"
    assert any("does not match its manifest" in message for message in caplog.messages)


def test_a_read_only_cache_still_serves_and_says_the_next_start_compiles_again(run_dir, tmp_path, caplog):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / COMPILED_FOLDER).write_text("a file where the folder should be")

    with caplog.at_level(logging.WARNING):
        model, engine = load(run_dir, cache)

    assert engine.name == "compiled tree_table"
    assert any("cannot keep the compiled form" in message and "the next start compiles again" in message
               for message in caplog.messages)  # fmt: skip
