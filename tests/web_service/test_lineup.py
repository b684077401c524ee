"""Canary and shadow: which model answers, the split, and what the shadow may never do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest
from sklearn.linear_model import LinearRegression

from tests.conftest import REPO
from tests.web_service.conftest import fit_dict_pipeline
from web_service.app import create_app
from web_service.lineup import BUCKETS, CANARY_KEY_HEADER, Lineup, bucket
from web_service.predictor import Predictor
from web_service.server.process import new_request_id
from web_service.settings import AppSettings

RIDE = {"PULocationID": 10, "DOLocationID": 50, "trip_distance": 4.2}


@pytest.fixture(scope="module")
def other_pipeline():
    return fit_dict_pipeline(LinearRegression(), seed=9)


@pytest.fixture
def canary(other_pipeline) -> Predictor:
    return Predictor(other_pipeline, model_version="canary-2", source="test fixture")


@pytest.mark.slow  # a subprocess
def test_a_key_lands_in_the_same_bucket_in_every_process():
    # blake2b of the key, not Python's salted hash(): another process, another hash seed, same bucket.
    code = "from web_service.lineup import bucket; print(bucket('ride-42'), bucket('é'))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO,
                           env=os.environ | {"PYTHONHASHSEED": "12345"})  # fmt: skip

    assert other.stdout.split() == [str(bucket("ride-42")), str(bucket("é"))] == ["3309", "3743"]
    assert 0 <= bucket("") < BUCKETS


def test_the_canary_answers_its_share_of_10000_request_ids_within_a_tenth_of_a_point(predictor, canary):
    for percent in (1, 10, 25, 50, 33.33):
        lineup = Lineup(predictor, canary, percent)
        ids = [new_request_id() for _ in range(10_000)]  # what the service makes when the caller sends none
        share = sum(lineup.answering(key) is canary for key in ids) / 100

        assert abs(share - percent) <= 0.1, (percent, share)


def test_the_split_relies_on_request_ids_being_a_prefix_and_a_counter():
    first, second = new_request_id(), new_request_id()

    assert len(first) == 32 and first[:16] == second[:16]
    assert int(second[16:], 16) == int(first[16:], 16) + 1


def test_caller_keys_split_as_their_hashes_do(predictor, canary):
    # Keys the caller chooses (customers, sessions) are hashed: the split is a fair coin per key.
    lineup = Lineup(predictor, canary, 10)
    share = sum(lineup.answering(f"customer-{i}") is canary for i in range(10_000)) / 100

    assert abs(share - 10) <= 1, share


def test_no_canary_share_and_all_of_it(predictor, canary):
    keys = [uuid.uuid4().hex for _ in range(1000)]

    assert all(Lineup(predictor, canary, 0).answering(key) is predictor for key in keys)
    assert all(Lineup(predictor, canary, 100).answering(key) is canary for key in keys)
    with pytest.raises(ValueError, match="from 0 to 100"):
        Lineup(predictor, canary, 101)


def test_the_answer_names_the_model_that_gave_it_and_a_key_sticks(predictor, canary):
    client = create_app(AppSettings(), Lineup(predictor, canary, 50)).test_client()
    seen = {}
    for key in (f"customer-{i}" for i in range(40)):
        answers = {client.post("/predict", json=RIDE, headers={CANARY_KEY_HEADER: key}).json["model_version"]
                   for _ in range(5)}  # fmt: skip
        assert len(answers) == 1  # sticky
        seen[key] = answers.pop()

    assert set(seen.values()) == {"test-model-1", "canary-2"}
    expected = {key: canary.predict_one(RIDE) if version == "canary-2" else predictor.predict_one(RIDE)
                for key, version in seen.items()}  # fmt: skip
    for key, duration in expected.items():
        assert client.post("/predict", json=RIDE, headers={CANARY_KEY_HEADER: key}).json["duration"] == duration


def test_without_a_key_the_request_id_splits(predictor, canary):
    client = create_app(AppSettings(), Lineup(predictor, canary, 50)).test_client()
    answers = [client.post("/predict", json=RIDE).json["model_version"] for _ in range(200)]

    assert 60 < answers.count("canary-2") < 140
    same_id = {client.post("/predict", json=RIDE, headers={"X-Request-ID": "req-7"}).json["model_version"]
               for _ in range(10)}  # fmt: skip
    assert len(same_id) == 1


def test_the_shadow_never_answers_and_is_logged_and_measured(tmp_path, predictor, canary):
    log = tmp_path / "predictions.jsonl"
    app = create_app(AppSettings(prediction_log=log), Lineup(predictor, shadow=canary))
    client = app.test_client()
    rides = [RIDE, {"PULocationID": 1, "DOLocationID": 2, "trip_distance": 12.0}]

    answers = client.post("/predict", json=rides).json
    app.extensions["ride_duration"].prediction_log.flush()

    assert {a["model_version"] for a in answers} == {"test-model-1"}
    assert [a["duration"] for a in answers] == predictor.predict(rides)
    record = json.loads(log.read_text().splitlines()[-1])
    assert record["shadow"] == {"model_version": "canary-2", "durations": canary.predict(rides)}
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'ride_duration_shadow_abs_diff_minutes_count{model_version="canary-2"} 2.0' in metrics
    assert client.get("/model").json["shadow"]["model_version"] == "canary-2"


class Broken:
    def predict(self, features):
        raise RuntimeError("the shadow cannot predict")


def test_a_failing_shadow_never_fails_the_request(predictor, canary, linear_pipeline):
    shadow = Predictor(linear_pipeline, model_version="shadow-3", source="test fixture")
    client = create_app(AppSettings(), Lineup(predictor, shadow=shadow)).test_client()
    shadow.pipeline = Broken()  # passed its self-check, fails later

    response = client.post("/predict", json=RIDE)

    assert response.status_code == 200 and response.json["model_version"] == "test-model-1"
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'ride_duration_shadow_errors_total{model_version="shadow-3"} 1.0' in metrics


def test_a_canary_that_fails_its_self_check_makes_the_app_not_ready(predictor, linear_pipeline):
    canary = Predictor(Broken(), model_version="canary-9", source="test fixture")
    client = create_app(AppSettings(), Lineup(predictor, canary, 10)).test_client()

    response = client.get("/ready")
    assert response.status_code == 503
    assert "canary model canary-9: RuntimeError" in response.json["error"]["message"]


def test_model_shows_the_canary_and_its_share(predictor, canary):
    shown = create_app(AppSettings(), Lineup(predictor, canary, 5)).test_client().get("/model").json

    assert shown["model_version"] == "test-model-1"
    assert shown["canary"]["percent"] == 5 and shown["canary"]["model_version"] == "canary-2"
    assert shown["canary"]["key_header"] == CANARY_KEY_HEADER
