"""Under real Gunicorn: a run whose files would run code when loaded stops start-up in one line, and runs
nothing; a pickled run serves only when ALLOW_PICKLE=true says so (issue 12, item 10)."""

from __future__ import annotations

import numpy as np
import pytest
import requests

from harness.fixtures import bits, expected, probe_rides, store
from harness.gunicorn import gunicorn, run_until_exit
from tests.tampered import RUN_ID, sklearn_run, touching_pickle, touching_skops
from web_service.startup import EXIT_STARTUP_FAILED

pytestmark = pytest.mark.e2e
APP = "web_service_mlflow.predict:app"
TRUSTING = "only if you trust whoever can write it"


def one_error_line(done) -> str:
    assert done.returncode == EXIT_STARTUP_FAILED, done.stderr
    assert "Traceback" not in done.stderr
    [line] = [line for line in done.stderr.splitlines() if "[ERROR]" in line]
    return line


def test_a_skops_file_its_own_mlmodel_trusts_to_run_a_command_stops_gunicorn_and_runs_nothing(tmp_path):
    marker, root = tmp_path / "ran", tmp_path / "store"
    sklearn_run(root, "skops", touching_skops(marker), skops_trusted_types=["os.system"])

    done = run_until_exit(APP, tmp_path / "skops.log", RUN_ID=RUN_ID, MODEL_ARTIFACT_ROOT=str(root))

    assert one_error_line(done).endswith(
        f"cannot start: local store {root}, run {RUN_ID}: the model artifact model.skops holds types this service "
        f"does not serve: os.system; SKOPS_TRUSTED_TYPES=os.system allows them, {TRUSTING}"
    )
    assert not marker.exists()


def test_a_pickled_run_stops_gunicorn_in_one_line_naming_artifact_format_and_setting_and_runs_nothing(tmp_path):
    marker, root = tmp_path / "ran", tmp_path / "store"
    sklearn_run(root, "cloudpickle", touching_pickle(marker))

    done = run_until_exit(APP, tmp_path / "pickle.log", RUN_ID=RUN_ID, MODEL_ARTIFACT_ROOT=str(root))

    assert one_error_line(done).endswith(
        f"cannot start: local store {root}, run {RUN_ID}: the model artifact model.pkl is a cloudpickle file, "
        f"and loading one runs any code it holds; ALLOW_PICKLE=true allows it, {TRUSTING}"
    )
    assert not marker.exists()


def test_the_courses_xgboost_run_needs_allow_pickle_for_its_preprocessor_and_then_serves_exactly(tmp_path):
    wanted = expected("mlflow1-xgboost-1.5")
    run = {"RUN_ID": wanted.run_id, "MODEL_ARTIFACT_ROOT": str(store("mlflow1-xgboost-1.5"))}

    refused = run_until_exit(APP, tmp_path / "refused.log", **run)
    with gunicorn(APP, tmp_path / "allowed.log", ALLOW_PICKLE="true", **run) as server:
        answers = requests.post(f"{server.url}/predict", json=list(probe_rides()), timeout=60).json()

    assert one_error_line(refused).endswith(
        f"run {wanted.run_id}: preprocessor/preprocessor.b is a pickle file, and loading one runs any code it holds; "
        f"ALLOW_PICKLE=true allows it, {TRUSTING}"
    )
    assert np.array_equal(bits([answer["duration"] for answer in answers]), bits(wanted.predictions))
