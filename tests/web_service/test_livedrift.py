"""Live drift: the window each worker keeps, the verdicts it reaches, the gauges /metrics shows."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest

from web_service import drift
from web_service.app import create_app
from web_service.errors import SettingsError
from web_service.livedrift import LiveDrift, LiveDriftSettings, start_live_drift
from web_service.metrics import service_metrics
from web_service.predictor import Predictor
from web_service.settings import AppSettings, live_drift_settings

# Zones skewed as the TLC's are (a few zones carry most rides), distances with an atom at 0.
ZONE_WEIGHTS = 1.0 / np.arange(1, 266) ** 1.1


def rides_of(count: int, seed: int, stretch: float = 1.0) -> list[dict]:
    rng = np.random.default_rng(seed)
    zones = rng.choice(np.arange(1, 266), size=(2, count), p=ZONE_WEIGHTS / ZONE_WEIGHTS.sum())
    distance = np.where(rng.random(count) < 0.03, 0.0, rng.lognormal(0.8, 0.7, count)).round(2) * stretch
    return [{"PULocationID": int(pu), "DOLocationID": int(do), "trip_distance": float(d)}
            for pu, do, d in zip(zones[0], zones[1], distance, strict=True)]  # fmt: skip


def durations_of(rides: list[dict]) -> list[float]:
    return [4.0 + 3.0 * ride["trip_distance"] for ride in rides]


@pytest.fixture(scope="module")
def profile() -> drift.Profile:
    rides = rides_of(60_000, seed=1)
    columns = {name: np.array([ride[name] for ride in rides], dtype=float) for name in rides[0]}
    columns["predicted_duration"] = np.array(durations_of(rides))
    return drift.build_profile(columns, {"valid_rmse": 5.0}, source="synthetic")


def settings(window: int = 6000, min_rides: int = 5000) -> LiveDriftSettings:
    return LiveDriftSettings(interval_s=3600, window=window, thresholds=drift.Thresholds(min_rides=min_rides))


def feed(live: LiveDrift, rides: list[dict], batch: int = 50) -> None:
    for start in range(0, len(rides), batch):
        part = rides[start : start + batch]
        live.record(part, durations_of(part))


def metrics_text(client) -> str:
    return client.get("/metrics").get_data(as_text=True)


def gauge(text: str, name: str, **labels: str) -> float | None:
    wanted = ",".join(f'{key}="{value}"' for key, value in labels.items())
    pattern = rf"^{name}{{{re.escape(wanted)}}} (\S+)$" if labels else rf"^{name} (\S+)$"
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else None


def test_rides_like_the_reference_raise_no_drift(profile):
    live = LiveDrift(profile, settings(), service_metrics(), "m")
    feed(live, rides_of(6000, seed=2))
    live.update()
    assert {check.column for check in live.checks} == set(drift.COLUMNS)
    assert not [check for check in live.checks if check.drifted]


def test_longer_trips_are_detected_on_distance_and_prediction(profile):
    live = LiveDrift(profile, settings(), service_metrics(), "m")
    feed(live, rides_of(6000, seed=3, stretch=1.3))
    live.update()
    assert drift.drifted_columns(live.checks) == ["trip_distance", "predicted_duration"]


def test_no_verdict_before_the_minimum_of_rides(profile):
    live = LiveDrift(profile, settings(), service_metrics(), "m")
    feed(live, rides_of(4999, seed=4, stretch=2.0))
    live.update()
    assert live.checks == []


def test_the_window_keeps_only_the_newest_rides(profile):
    live = LiveDrift(profile, settings(window=5000), service_metrics(), "m")
    feed(live, rides_of(5000, seed=5, stretch=2.0))
    live.update()
    assert drift.drifted_columns(live.checks) == ["trip_distance", "predicted_duration"]
    feed(live, rides_of(5000, seed=6))  # the drifted rides slide out
    live.update()
    assert drift.drifted_columns(live.checks) == []


def test_the_queue_between_looks_holds_at_most_two_windows_of_rides(profile):
    live = LiveDrift(profile, settings(window=5000), service_metrics(), "m")
    rides = rides_of(20_000, seed=7)
    feed(live, rides, batch=100)
    assert all(5000 <= len(column) <= 10_000 for column in live._queued)
    live.update()
    assert all(len(column) == 0 for column in live._queued)
    window = live._window["trip_distance"]
    assert window.tolist() == [ride["trip_distance"] for ride in rides[-5000:]]  # the newest, in order


def test_metrics_show_scores_thresholds_and_verdicts(profile, linear_pipeline):
    predictor = Predictor(linear_pipeline, model_version="m", source="test", profile=profile)
    app = create_app(AppSettings(live_drift=settings()), predictor)
    client = app.test_client()
    live = app.extensions["ride_duration"].live_drift
    rides = rides_of(6000, seed=8, stretch=1.3)
    for start in range(0, len(rides), 500):
        assert client.post("/predict", json=rides[start : start + 500]).status_code == 200
    live.update()

    text = metrics_text(client)
    assert gauge(text, "ride_duration_drift_window_rides", model_version="m") == 6000
    assert gauge(text, "ride_duration_drift_detected", column="trip_distance") == 1
    assert gauge(text, "ride_duration_drift_score", column="trip_distance", method="ks") > 0.06
    assert gauge(text, "ride_duration_drift_threshold", column="trip_distance", method="ks") == 0.06
    assert gauge(text, "ride_duration_drift_threshold", column="PULocationID", method="js") == 0.1
    assert gauge(text, "ride_duration_ready") == 1


def test_a_model_without_a_profile_serves_with_live_drift_off(linear_pipeline, caplog):
    predictor = Predictor(linear_pipeline, model_version="no-profile", source="test")
    with caplog.at_level(logging.INFO, "web_service.livedrift"):
        app = create_app(AppSettings(), predictor)
    assert app.extensions["ride_duration"].live_drift is None
    assert "live drift is off: model no-profile has no reference profile" in caplog.text
    assert app.test_client().post("/predict", json=rides_of(1, seed=9)[0]).status_code == 200


def test_drift_monitor_false_switches_it_off(profile):
    chosen = live_drift_settings({"DRIFT_MONITOR": "false"})
    assert start_live_drift(profile, chosen, service_metrics(), "m") is None


def test_drift_settings_are_read_from_the_environment():
    chosen = live_drift_settings({"DRIFT_INTERVAL_SECONDS": "1", "DRIFT_WINDOW": "800", "DRIFT_PSI": "0.2"})
    assert (chosen.interval_s, chosen.window, chosen.thresholds.psi) == (1.0, 800, 0.2)
    assert chosen.thresholds.min_rides == 800  # the default 5,000, capped by a smaller window


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"DRIFT_WINDOW": "100", "DRIFT_MIN_RIDES": "200"}, "DRIFT_MIN_RIDES=200 is more than DRIFT_WINDOW=100"),
        ({"DRIFT_PSI": "-1"}, "DRIFT_PSI must be a number above 0, got '-1'"),
        ({"DRIFT_KS": "nan"}, "DRIFT_KS must be a number above 0, got 'nan'"),
        ({"DRIFT_INTERVAL_SECONDS": "soon"}, "DRIFT_INTERVAL_SECONDS must be a number above 0, got 'soon'"),
    ],
)
def test_wrong_drift_settings_stop_start_up_naming_the_variable(environ, message):
    with pytest.raises(SettingsError, match=re.escape(message)):
        live_drift_settings(environ)
