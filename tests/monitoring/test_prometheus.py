"""A real Prometheus scrapes the service under Gunicorn and evaluates monitoring/alerts.yml."""

from __future__ import annotations

import pytest

from tests.monitoring.conftest import (
    ALERTS,
    BAD_REQUESTS,
    BATCH,
    CANARY_RIDES,
    DRIFT_WINDOW,
    JOB,
    LINEUP_VERSION,
    PRIMARY,
    RIDES,
    SINGLE_RIDES,
    alert_names,
)
from web_service.drift import Thresholds

pytestmark = pytest.mark.e2e
DRIFT_SCORES = {
    ("trip_distance", "psi"),
    ("trip_distance", "ks"),
    ("predicted_duration", "psi"),
    ("predicted_duration", "ks"),
    ("PULocationID", "js"),
    ("DOLocationID", "js"),
}
COLUMNS = {column for column, _ in DRIFT_SCORES}


def values(result: list[dict], *labels: str) -> dict[tuple[str, ...], float]:
    return {tuple(series["metric"].get(label, "") for label in labels): float(series["value"][1]) for series in result}


def test_prometheus_scrapes_the_service(stack):
    assert values(stack.prometheus.vector(f'up{{job="{JOB}"}}')) == {(): 1.0}


def test_requests_arrive_counted_by_route_and_status(stack):
    counted = values(stack.prometheus.vector("sum by (route, status) (ride_duration_http_requests_total)"),
                     "route", "status")  # fmt: skip

    batches = SINGLE_RIDES + len(range(SINGLE_RIDES, RIDES, BATCH))
    assert counted[("/predict", "200")] == batches
    assert counted[("/predict", "400")] + counted[("/predict", "405")] == BAD_REQUESTS
    assert counted[("/metrics", "200")] >= 1  # Prometheus' own scrapes
    rides = stack.prometheus.vector("sum(ride_duration_batch_size_sum)")
    assert values(rides) == {(): RIDES}


def test_the_service_reports_ready_and_the_model_it_serves(stack):
    ready = values(stack.prometheus.vector("ride_duration_ready"))
    served = values(stack.prometheus.vector("ride_duration_model_info"), "model_version", "source")

    assert ready == {(): 1.0}  # /ready answers 200: the model passed its self-check
    assert len(served) == 1 and set(served.values()) == {1.0}


def test_the_canary_answers_its_batches_and_the_shadow_scores_every_ride(stack):
    answered = values(stack.prometheus.vector("sum by (model_version) (ride_duration_predicted_minutes_count)"),
                      "model_version")  # fmt: skip
    shadowed = values(stack.prometheus.vector("sum by (model_version) (ride_duration_shadow_abs_diff_minutes_count)"),
                      "model_version")  # fmt: skip
    differences = values(stack.prometheus.vector("sum(ride_duration_shadow_abs_diff_minutes_sum)"))
    served = values(stack.prometheus.vector("ride_duration_model_info"), "model_version")

    assert answered == {(PRIMARY,): RIDES - CANARY_RIDES, (LINEUP_VERSION,): CANARY_RIDES}
    assert shadowed == {(LINEUP_VERSION,): RIDES}
    assert differences == {(): 0.0}  # the same model as the one that answered: the same durations
    assert served == {(PRIMARY,): 1.0}  # the primary only


def test_drift_scores_and_thresholds_arrive_for_every_column_and_method(stack):
    scores = values(stack.prometheus.vector("max by (column, method) (ride_duration_drift_score)"), "column", "method")
    thresholds = values(stack.prometheus.vector("max by (column, method) (ride_duration_drift_threshold)"),
                        "column", "method")  # fmt: skip

    assert set(scores) == DRIFT_SCORES
    assert all(score >= 0 for score in scores.values()), scores
    # The live check compares with the thresholds the monitor report uses (web_service.drift).
    assert thresholds == {(column, method): Thresholds().for_method(method) for column, method in DRIFT_SCORES}


def test_drift_is_detected_on_pickup_zones_and_the_window_holds_the_rides(stack):
    detected = values(stack.prometheus.vector("max by (column) (ride_duration_drift_detected)"), "column")
    window = values(stack.prometheus.vector("sum(ride_duration_drift_window_rides)"))

    assert {column for (column,) in detected} == COLUMNS
    assert set(detected.values()) <= {0.0, 1.0}
    # make_rides draws pickups uniformly over 265 zones; real green-taxi pickups crowd into a few.
    assert detected[("PULocationID",)] == 1.0, detected
    assert window == {(): DRIFT_WINDOW}


def test_prometheus_loads_every_alert_of_alerts_yml_and_evaluates_them_without_error(stack):
    groups = stack.prometheus.groups()
    alerts = {rule["name"]: rule for group in groups for rule in group["rules"] if rule["type"] == "alerting"}

    assert sorted(alerts) == sorted(alert_names())
    health = {name: (rule["health"], rule.get("lastError", "")) for name, rule in alerts.items()}
    assert health == dict.fromkeys(alerts, ("ok", ""))
    assert {group["file"] for group in groups} == {str(ALERTS)}


def test_drift_on_live_traffic_puts_the_drift_alert_in_pending_and_nothing_else(stack):
    active = values(stack.prometheus.vector("ALERTS"), "alertname", "column", "alertstate")

    assert ("RideDurationDrift", "PULocationID", "pending") in active, active
    assert {name for name, _, _ in active} <= {"RideDurationDrift", "RideDurationPredictionDrift"}, active
