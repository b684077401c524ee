"""Under real Gunicorn: a course-style lin_reg.bin pickled by scikit-learn 1.0.2 answers what 1.0.2 answered,
one ride at a time and in batches; a model trained on other features stops start-up with one line."""

from __future__ import annotations

import numpy as np
import pytest
import requests

from harness.fixtures import FIXTURES, bits, expected, probe_rides
from harness.gunicorn import gunicorn, run_until_exit
from web_service.startup import EXIT_STARTUP_FAILED
from web_service_mlflow.parity import post_all

pytestmark = pytest.mark.e2e
FILE_APP = "web_service.predict:app"
LIN_REG = FIXTURES / "sklearn-1.0.2" / "lin_reg" / "lin_reg.bin"


def test_a_lin_reg_bin_from_scikit_learn_1_0_2_answers_over_http_exactly_what_1_0_2_answered(tmp_path):
    rides = list(probe_rides())

    with gunicorn(FILE_APP, tmp_path / "lin_reg.log", MODEL_PATH=str(LIN_REG)) as server:
        one_by_one = [answer["duration"] for answer in post_all(f"{server.url}/predict", rides)]
        batch = [answer["duration"] for answer in requests.post(f"{server.url}/predict", json=rides, timeout=30).json()]
        log = server.output()

    wanted = bits(expected("sklearn-1.0.2/lin_reg").predictions)
    assert np.array_equal(bits(one_by_one), wanted)
    assert np.array_equal(bits(batch), wanted)
    [line] = [line for line in log.splitlines() if "model made with" in line]
    assert "model made with scikit-learn 1.0.2 (pickle), served with scikit-learn " in line
    assert "mended on load: LinearRegression.tol=1e-06; verified: " in line


def test_a_model_trained_on_zone_one_hots_stops_gunicorn_with_one_line(tmp_path):
    foreign = FIXTURES / "foreign-features" / "foreign_features.bin"

    done = run_until_exit(FILE_APP, tmp_path / "foreign.log", MODEL_PATH=str(foreign))

    assert done.returncode == EXIT_STARTUP_FAILED
    [line] = [line for line in done.stderr.splitlines() if "[ERROR]" in line]
    assert line.endswith(
        f"cannot start: MODEL_PATH={foreign}: the model was trained on DOLocationID=… (40 values), "
        "PULocationID=… (40 values), trip_distance; the service makes PU_DO=<PULocationID>_<DOLocationID> "
        "(one-hot) and trip_distance, so this model cannot be served correctly"
    )
    assert "Traceback" not in done.stderr
