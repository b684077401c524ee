"""A run's reference profile: made from a TLC file through the contract, written and read back."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.trips import OUTLIER_MINUTES, write_trips
from web_service.drift import PROFILE_FORMAT, profile_setting
from web_service.errors import SettingsError
from web_service.predictor import Predictor
from web_service_mlflow.data import read_rides
from web_service_mlflow.reference import ProfileError, profile_json, profile_of_file, read_profile

METRICS = {"train_rmse": 4.0, "valid_rmse": 5.0, "valid_mae": 3.5}


@pytest.fixture(scope="module")
def trip_file(tmp_path_factory):
    return write_trips(tmp_path_factory.mktemp("trips") / "green.parquet", rows=700, seed=8)


@pytest.fixture(scope="module")
def profile(trip_file, linear_pipeline):
    predictor = Predictor(linear_pipeline, model_version="run-1", source="test")
    return profile_of_file(str(trip_file), predictor, METRICS, run_id="run-1", model_version="run-1")


def test_the_profile_counts_every_ride_the_contract_accepts_not_only_the_fitted_ones(trip_file, profile):
    # make_trips puts rides outside 1-60 minutes at its head: the service would be sent them too.
    fitted = read_rides(str(trip_file))

    assert len(fitted) == 700 - len(OUTLIER_MINUTES)
    assert profile.rides == 700
    assert profile.numeric["trip_distance"].count == profile.numeric["predicted_duration"].count == 700
    assert sum(profile.zones["PULocationID"].counts.values()) == 700


def test_predicted_durations_are_the_models_own(trip_file, linear_pipeline, profile):
    import pandas as pd

    from web_service.features import prepare_features_frame

    predicted = linear_pipeline.predict(prepare_features_frame(pd.read_parquet(trip_file)))
    assert profile.numeric["predicted_duration"].mean == pytest.approx(float(np.mean(predicted)), rel=1e-5)


def test_the_profile_carries_metrics_and_where_it_came_from(trip_file, profile):
    assert profile.metrics == METRICS
    assert profile.about["source"] == str(trip_file)
    assert profile.about["run_id"] == profile.about["model_version"] == "run-1"
    assert profile.about["created"].endswith("+00:00")


def test_a_written_profile_reads_back_equal(tmp_path, profile):
    path = tmp_path / "profile.json"
    path.write_text(profile_json(profile))

    assert read_profile(path) == profile
    assert len(path.read_bytes()) < 40_000


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("{not json", "not JSON (Expecting property name"),
        ('{"format": 99, "rides": 1}', f"not a reference profile of format {PROFILE_FORMAT} (format: 99)"),
        ('["a", "list"]', f"not a reference profile of format {PROFILE_FORMAT} (format: list)"),
        ('{"format": 1, "rides": 3}', "a reference profile with a missing or malformed part (KeyError('numeric'))"),
    ],
)
def test_a_file_that_is_not_a_profile_is_refused_naming_it_and_why(tmp_path, text, why):
    path = tmp_path / "profile.json"
    path.write_text(text)

    with pytest.raises(ProfileError) as raised:
        read_profile(path)

    assert str(raised.value).startswith(f"{path}: {why}")


def test_a_missing_file_is_refused_naming_it(tmp_path):
    with pytest.raises(ProfileError, match=f"^{tmp_path}/nope.json: cannot read it \\(No such file or directory\\)$"):
        read_profile(tmp_path / "nope.json")


def test_drift_profile_is_read_at_start_and_a_bad_one_names_the_variable(tmp_path, profile):
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(profile_json(profile))
    bad.write_text(json.dumps({"format": 0}))

    assert profile_setting({}) is None
    assert profile_setting({"DRIFT_PROFILE": str(good)}) == profile
    with pytest.raises(SettingsError) as raised:
        profile_setting({"DRIFT_PROFILE": str(bad)})
    assert raised.value.message.startswith(
        f"DRIFT_PROFILE={bad}: not a reference profile of format {PROFILE_FORMAT} (format: 0); set DRIFT_PROFILE to"
    )
