"""The slim image's model: one run's verified compiled form, baked at build time, served without scikit-learn."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from harness.fixtures import bits, expected, probe_rides, store
from tests.conftest import REPO
from web_service.errors import ModelLoadError, SettingsError
from web_service_mlflow.baked import bake, load_baked
from web_service_mlflow.layout import LOCAL_STORE
from web_service_mlflow.settings import default_run_id

RIDE = {"PULocationID": 10, "DOLocationID": 50, "trip_distance": 40}
OTHER_RUN = "0" * 32


@pytest.fixture(scope="module")
def baked(tmp_path_factory):
    folder = tmp_path_factory.mktemp("baked")
    bake({}, folder)  # the embedded default run, as the Dockerfile's bake stage does
    return folder


def test_the_baked_run_answers_as_the_embedded_run_does(baked):
    settings, predictor = load_baked({}, baked)

    assert predictor.model_version == default_run_id(LOCAL_STORE)
    assert predictor.engine.name == "compiled tree_table"
    assert predictor.predict([RIDE]) == [45.50965007660852]
    assert predictor.profile is not None  # the run's reference profile came along: live drift stays on
    assert predictor.source.startswith("baked into the image at build time (of local store ")


def test_the_baked_run_starts_without_scikit_learn_mlflow_or_yaml(baked):
    script = (
        "import sys; from pathlib import Path; from web_service_mlflow.baked import load_baked; "
        f"load_baked({{}}, Path({str(baked)!r})); "
        "print(sorted({'mlflow', 'skops', 'sklearn', 'scipy', 'pandas', 'treelite', 'yaml'} & set(sys.modules)))"
    )
    env = os.environ | {"PYTHONPATH": str(REPO)}

    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_baked_run_named_by_its_own_run_id_is_served(baked):
    _, predictor = load_baked({"RUN_ID": default_run_id(LOCAL_STORE)}, baked)

    assert predictor.model_version == default_run_id(LOCAL_STORE)


@pytest.mark.parametrize(
    ("environ", "starts"),
    [
        ({"RUN_ID": OTHER_RUN}, f"RUN_ID={OTHER_RUN}: this image serves only the run baked into it"),
        ({"MODEL_URI": "models:/ride-duration@production"}, "MODEL_URI is set: this image serves only"),
        ({"CANARY_RUN_ID": OTHER_RUN, "CANARY_PERCENT": "10"}, "CANARY_RUN_ID is set: this image serves only"),
        ({"SHADOW_MODEL_URI": "models:/ride-duration/2"}, "SHADOW_MODEL_URI is set: this image serves only"),
        ({"MODEL_PATH": "lin_reg.bin"}, "MODEL_PATH is set: this image serves only"),
    ],
)
def test_anything_but_the_baked_run_is_refused_naming_the_variable(baked, environ, starts):
    with pytest.raises(SettingsError) as raised:
        load_baked(environ, baked)

    assert raised.value.message.startswith(starts)
    assert "needs scikit-learn: use the full image" in raised.value.message


def test_a_form_that_no_longer_gives_its_recorded_answers_is_refused(baked, tmp_path):
    broken = tmp_path / "baked"
    subprocess.run(["cp", "-r", str(baked), str(broken)], check=True)
    probe = broken / "compiled" / "probe.json"
    record = json.loads(probe.read_text())
    record["expected"][0] = (1.5).hex()
    probe.write_text(json.dumps(record))

    with pytest.raises(ModelLoadError, match="no longer gives the answers recorded with it .* rebuild the image"):
        load_baked({}, broken)


def test_a_folder_without_a_baked_run_says_how_to_get_one(tmp_path):
    with pytest.raises(ModelLoadError, match="no baked run in .*: build the image's slim target"):
        load_baked({}, tmp_path)


def test_a_registry_alias_is_not_baked(tmp_path):
    with pytest.raises(SettingsError, match="names a registry model: bake a run"):
        bake({"MODEL_URI": "models:/ride-duration@production", "MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}, tmp_path)


def test_the_bake_command_stops_the_build_naming_a_run_it_cannot_find_without_a_traceback(tmp_path):
    env = os.environ | {"PYTHONPATH": str(REPO), "RUN_ID": OTHER_RUN}

    done = subprocess.run(
        [sys.executable, "-m", "web_service_mlflow.baked", "--out", str(tmp_path / "baked")],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert done.returncode == 1
    # The last line says why; any before it are the loader's own log lines.
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("cannot bake: ") and OTHER_RUN in last, done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "baked").exists()


@pytest.mark.parametrize("fixture", ["mlflow2-sklearn-1.2.2/forest", "mlflow3/skops"])
def test_a_run_logged_by_mlflows_own_log_model_bakes_and_answers_as_its_release_did(tmp_path, fixture):
    # Runs MLflow 2.9 and 3.17 logged themselves (tests/fixtures/make_fixtures.py), not our training.
    wanted = expected(fixture)
    environ = {"RUN_ID": wanted.run_id, "MODEL_ARTIFACT_ROOT": str(store(fixture.split("/")[0]))}
    if fixture != "mlflow3/skops":  # its preprocessor is a pickle, as the course wrote it
        environ["ALLOW_PICKLE"] = "true"

    bake(environ, tmp_path / "baked")
    _, predictor = load_baked({"RUN_ID": wanted.run_id}, tmp_path / "baked")

    assert predictor.model_version == wanted.run_id
    assert np.array_equal(bits(predictor.predict(list(probe_rides()))), bits(wanted.predictions))
