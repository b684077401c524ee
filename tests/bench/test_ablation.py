"""The ablation's switches (bench/ablation_switches.py): each turns off what it says, and nothing else.

A refactor that renames or moves a trick must fail here, not leave the benchmark measuring
"as shipped" twice under another name.
"""

from __future__ import annotations

import json
import os

import flask
import numpy as np
import pytest
from prometheus_client import REGISTRY

import web_service.startup as startup
from bench import ablation, ablation_inprocess
from bench.ablation_switches import SWITCHES, load_uncompiled, replace, switch_off, tricks_off
from bench.serving import batch_body
from web_service import metrics, schema
from web_service.engine import fastpath
from web_service.errors import InvalidRequest
from web_service.features import prepare_features
from web_service.loading import Provenance
from web_service.predictor import Predictor
from web_service.server import process
from web_service.settings import AppSettings

RIDE = {"PULocationID": 10, "DOLocationID": 50, "trip_distance": 4.5}
IN_APP = [name for name, switch in SWITCHES.items() if switch.is_off is not None]


@pytest.fixture(scope="module")
def compiled_linear(linear_pipeline):
    """The fixture's pipeline compiled and verified once (fastpath.choose scores thousands of probe rides)."""
    model, engine, _ = fastpath.choose(linear_pipeline, "test")
    return model, engine


def build(linear_pipeline, *off: str, monkeypatch, compiled=None) -> flask.Flask:
    """The app as Gunicorn's master builds it, with the named tricks off."""
    switch_off(off, monkeypatch.setattr)
    if compiled is None or "compiled" in off:
        compiled = fastpath.choose(linear_pipeline, "test")[:2]
    model, engine = compiled
    return startup.create_app(AppSettings(max_body_bytes=2048), Predictor(model, "test-model", "test", engine=engine))


def test_as_shipped_has_every_trick_on(linear_pipeline, compiled_linear, monkeypatch):
    app = build(linear_pipeline, monkeypatch=monkeypatch, compiled=compiled_linear)

    assert tricks_off(app) == []
    assert app.test_client().post("/predict", json=RIDE).status_code == 200


@pytest.mark.parametrize("name", IN_APP)
def test_each_switch_turns_off_its_trick_alone_and_answers_as_shipped(
    name, linear_pipeline, compiled_linear, monkeypatch
):
    shipped = build(linear_pipeline, monkeypatch=monkeypatch, compiled=compiled_linear).test_client()
    expected = [shipped.post("/predict", json=body).get_json() for body in (RIDE, [RIDE, RIDE])]
    monkeypatch.undo()

    app = build(linear_pipeline, name, monkeypatch=monkeypatch, compiled=compiled_linear)

    assert tricks_off(app) == [name]
    assert [app.test_client().post("/predict", json=body).get_json() for body in (RIDE, [RIDE, RIDE])] == expected


def test_a_switch_whose_target_was_renamed_fails():
    with pytest.raises(AttributeError, match="the trick moved"):
        replace(process, "pid_renamed", os.getpid)


def test_compiled_off_serves_the_pipeline(linear_pipeline, monkeypatch):
    switch_off(["compiled"], monkeypatch.setattr)
    import web_service_mlflow.loader as loader

    model, engine = loader.load_model(
        [], "test", None, lambda: (linear_pipeline, Provenance("scikit-learn", None, "pickle"))
    )

    assert loader.load_model is load_uncompiled
    assert model is linear_pipeline and engine.name == "scikit-learn"


def test_scalar_off_sends_one_ride_down_the_numpy_path(compiled_linear, monkeypatch):
    compiled_form, _ = compiled_linear
    features = [prepare_features(RIDE)]
    assert isinstance(compiled_form.predict(features), list)

    switch_off(["scalar"], monkeypatch.setattr)

    assert isinstance(compiled_form.predict(features), np.ndarray)


def test_pending_off_counts_each_request_at_once(linear_pipeline, compiled_linear, monkeypatch):
    metrics.PENDING.flush()
    client = build(linear_pipeline, "pending", monkeypatch=monkeypatch, compiled=compiled_linear).test_client()
    labels = {"method": "POST", "route": "/predict", "status": "200"}
    before = REGISTRY.get_sample_value("ride_duration_http_requests_total", labels) or 0

    client.post("/predict", json=RIDE)

    assert REGISTRY.get_sample_value("ride_duration_http_requests_total", labels) == before + 1


def test_request_log_off_writes_the_same_fields_through_logging(linear_pipeline, compiled_linear, monkeypatch, capsys):
    build(linear_pipeline, monkeypatch=monkeypatch, compiled=compiled_linear).test_client().post("/predict", json=RIDE)
    shipped = json.loads(capsys.readouterr().out.splitlines()[-1])
    monkeypatch.undo()

    build(linear_pipeline, "request_log", monkeypatch=monkeypatch, compiled=compiled_linear).test_client().post(
        "/predict", json=RIDE
    )
    plain = json.loads(capsys.readouterr().out.splitlines()[-1])

    assert list(plain) == list(shipped)
    assert {key: plain[key] for key in ("method", "route", "status", "batch_size", "model_version", "pid")} == {
        key: shipped[key] for key in ("method", "route", "status", "batch_size", "model_version", "pid")
    }


def test_typed_dict_off_validates_into_a_model_and_gives_the_same_dicts_and_errors(monkeypatch):
    bodies = [RIDE, {"PULocationID": 14.0, "DOLocationID": 50, "trip_distance": 1}, [RIDE, RIDE]]
    expected = [schema.parse_rides(body, 10).rides for body in bodies]
    with pytest.raises(InvalidRequest) as shipped_error:
        schema.parse_rides([RIDE, {"PULocationID": 14.5, "DOLocationID": "x"}], 10)

    switch_off(["typed_dict"], monkeypatch.setattr)

    assert schema.RIDE.core_schema["type"] == "model"
    assert type(schema.parse_rides(RIDE, 10)).__name__ == "DumpedRideRequest"
    assert [schema.parse_rides(body, 10).rides for body in bodies] == expected
    with pytest.raises(InvalidRequest) as error:
        schema.parse_rides([RIDE, {"PULocationID": 14.5, "DOLocationID": "x"}], 10)
    assert error.value.to_dict() == shipped_error.value.to_dict()


def test_the_worker_is_switched_by_gunicorns_own_option():
    (worker,) = [variant for variant in ablation.variants(["worker"]) if variant.switch]

    assert worker.app == ablation.SERVICE_APP
    assert worker.env == {"GUNICORN_CMD_ARGS": "--worker-class sync"}


def test_the_report_shows_what_each_trick_buys():
    chosen = ablation.variants(["pending"])
    results = {v.name: ablation.Rounds([1000.0, 1100.0], [1.0, 1.2], [500.0, 510.0], [200.0, 210.0]) for v in chosen}
    results["pending"] = ablation.Rounds([900.0, 990.0], [1.1, 1.3], [550.0, 560.0], [220.0, 230.0])

    text = ablation.table(results, chosen)

    assert "| pending | 945 (-5/+5 %) | +10.0 % | 0.90-0.90 (0.90) |" in text
    assert "| pending | 225 µs (-2/+2 %) | 1.10-1.10 (1.10) | +20 µs | +3.8 % |" in ablation.inprocess_table(
        results, chosen
    )


def test_tricks_switched_off_together_are_all_off(linear_pipeline, compiled_linear, monkeypatch):
    (together,) = [variant for variant in ablation.variants([], ["pending", "request_log"]) if variant.switches]
    app = build(linear_pipeline, *together.switches, monkeypatch=monkeypatch, compiled=compiled_linear)

    assert together.app == 'bench.apps.ablation:serve("pending", "request_log")'
    assert tricks_off(app) == ["pending", "request_log"]


def test_the_batch_report_shows_what_each_trick_adds_to_a_batch_request():
    found = {"as shipped": [1000.0, 1200.0], "typed_dict": [1500.0, 1500.0]}

    text = ablation_inprocess.batch_table(found, rides=1000, rounds=2, seconds=1.0)

    assert "POST /predict of 1,000 rides" in text
    assert "| typed_dict | 1,500 µs | 1.25-1.50 (1.38) | +400 µs |" in text


def test_the_in_process_batch_is_the_serving_benchmarks_batch():
    rides = json.loads(ablation_inprocess.body(1000))

    assert rides == batch_body(1000) and json.loads(ablation_inprocess.body(1)) == ablation_inprocess.RIDE
