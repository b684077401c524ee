import json

import pytest

from tests.conftest import make_rides
from tests.web_service.conftest import MODEL_VERSION
from web_service.app import create_app
from web_service.features import prepare_features
from web_service.predictor import Predictor
from web_service.settings import AppSettings

RIDE = {"PULocationID": 10, "DOLocationID": 50, "trip_distance": 40}


def error(code, message, details=()):
    return {"error": {"code": code, "message": message, "details": list(details)}}


def test_predict_returns_duration_and_model_version(client):
    response = client.post("/predict", json=RIDE)

    assert response.status_code == 200
    assert set(response.json) == {"duration", "model_version"}
    assert isinstance(response.json["duration"], float)
    assert response.json["model_version"] == MODEL_VERSION


def test_predict_gives_exactly_the_pipeline_floats(client, linear_pipeline):
    rides = make_rides(200, seed=3)
    expected = linear_pipeline.predict([prepare_features(ride) for ride in rides])

    served = [client.post("/predict", json=ride).json["duration"] for ride in rides]

    assert served == expected.tolist()


def test_predict_missing_field_gets_400_naming_it(client):
    response = client.post("/predict", json={"PULocationID": 10, "trip_distance": 40})

    assert response.status_code == 400
    assert response.json == error(
        "invalid_request",
        "invalid ride: DOLocationID",
        [{"field": "DOLocationID", "expected": "a value: the field is required", "received": None}],
    )


def test_predict_wrong_types_get_400_naming_every_field(client):
    ride = {"PULocationID": "10", "DOLocationID": True, "trip_distance": "40"}

    response = client.post("/predict", json=ride)

    assert response.status_code == 400
    assert response.json["error"]["details"] == [
        {"field": "PULocationID", "expected": "a valid integer", "received": "10"},
        {"field": "DOLocationID", "expected": "a valid integer", "received": True},
        {"field": "trip_distance", "expected": "a valid number", "received": "40"},
    ]


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("PULocationID", 0, "greater than or equal to 1"),
        ("DOLocationID", 266, "less than or equal to 265"),
        ("trip_distance", -0.1, "greater than or equal to 0"),
    ],
)
def test_predict_out_of_range_values_get_400(client, field, value, expected):
    response = client.post("/predict", json=RIDE | {field: value})

    assert response.status_code == 400
    assert response.json["error"]["details"] == [{"field": field, "expected": expected, "received": value}]


def test_predict_non_finite_distance_gets_400_echoing_it_as_text(client):
    response = client.post(
        "/predict",
        data='{"PULocationID": 10, "DOLocationID": 50, "trip_distance": NaN}',
        content_type="application/json",
    )

    assert response.status_code == 400
    assert response.json["error"]["details"] == [
        {"field": "trip_distance", "expected": "a finite number", "received": "nan"}
    ]


def a_pair_seen_in_training(pipeline) -> tuple[int, int]:
    """A pickup/dropoff pair with its own DictVectorizer column: a wrong key would change the answer."""
    name = next(name for name in pipeline.named_steps["dictvectorizer"].feature_names_ if name.startswith("PU_DO="))
    pickup, dropoff = name.removeprefix("PU_DO=").split("_")
    return int(pickup), int(dropoff)


def test_predict_accepts_integral_float_zones_and_predicts_as_for_integers(client, linear_pipeline):
    pickup, dropoff = a_pair_seen_in_training(linear_pipeline)
    ride = {"PULocationID": pickup, "DOLocationID": dropoff, "trip_distance": 3.0}
    as_floats = f'{{"PULocationID": {pickup}.0, "DOLocationID": {dropoff}.0, "trip_distance": 3.0}}'
    expected = linear_pipeline.predict([prepare_features(ride)])[0]
    assert expected != linear_pipeline.predict([{"trip_distance": 3.0}])[0]  # the pair's own column counts

    one = client.post("/predict", data=as_floats, content_type="application/json")
    batch = client.post("/predict", data=f"[{json.dumps(ride)}, {as_floats}]", content_type="application/json")

    assert one.status_code == 200
    assert one.json == {"duration": expected, "model_version": MODEL_VERSION}
    assert batch.json == [{"duration": expected, "model_version": MODEL_VERSION}] * 2


def test_predict_a_zone_with_a_fractional_part_gets_400_naming_it(client):
    response = client.post("/predict", json=RIDE | {"PULocationID": 14.5})

    assert response.status_code == 400
    assert response.json == error(
        "invalid_request",
        "invalid ride: PULocationID",
        [
            {
                "field": "PULocationID",
                "expected": "a valid integer, got a number with a fractional part",
                "received": 14.5,
            }
        ],
    )


def test_predict_ignores_extra_fields(client):
    plain = client.post("/predict", json=RIDE).json
    extra = client.post("/predict", json=RIDE | {"fare_amount": 12.5, "VendorID": 2}).json

    assert extra == plain


def test_predict_accepts_json_sent_without_json_content_type(client):
    # curl -d sends application/x-www-form-urlencoded unless told otherwise.
    response = client.post("/predict", data=json.dumps(RIDE), content_type="application/x-www-form-urlencoded")

    assert response.status_code == 200
    assert response.json == client.post("/predict", json=RIDE).json


def test_predict_body_that_is_not_json_gets_415(client):
    response = client.post("/predict", data="PULocationID=10", content_type="application/x-www-form-urlencoded")

    assert response.status_code == 415
    assert response.json == error(
        "unsupported_media_type",
        "the body must be JSON (Content-Type: application/json)",
        [
            {
                "field": "Content-Type",
                "expected": "application/json",
                "received": "application/x-www-form-urlencoded",
            }
        ],
    )


def test_predict_malformed_json_gets_400(client):
    response = client.post("/predict", data='{"PULocationID": 10,', content_type="application/json")

    assert response.status_code == 400
    assert response.json == error(
        "invalid_request",
        "the body is not valid JSON",
        [{"field": "body", "expected": "valid JSON", "received": '{"PULocationID": 10,'}],
    )


@pytest.mark.parametrize(("body", "received"), [("null", "null"), ('"ride"', "string"), ("42", "number")])
def test_predict_json_that_is_neither_ride_nor_list_names_its_type(client, body, received):
    response = client.post("/predict", data=body, content_type="application/json")

    assert response.status_code == 400
    assert response.json == error(
        "invalid_request",
        "the body must be a ride (JSON object) or a list of rides",
        [{"field": "body", "expected": "a JSON object or array", "received": received}],
    )


def test_predict_a_list_answers_a_list_in_the_same_order(client, linear_pipeline):
    rides = make_rides(25, seed=6)
    expected = linear_pipeline.predict([prepare_features(ride) for ride in rides]).tolist()

    response = client.post("/predict", json=rides)

    assert response.status_code == 200
    assert response.json == [{"duration": duration, "model_version": MODEL_VERSION} for duration in expected]


def test_predict_a_list_of_one_still_answers_a_list(client):
    assert client.post("/predict", json=[RIDE]).json == [client.post("/predict", json=RIDE).json]


def test_predict_a_list_over_the_batch_limit_gets_400(predictor):
    client = create_app(AppSettings(max_batch_size=3), predictor).test_client()

    response = client.post("/predict", json=[RIDE] * 4)

    assert response.status_code == 400
    assert response.json == error(
        "invalid_request",
        "a batch holds 1 to 3 rides, this one 4",
        [{"field": "body", "expected": "1 to 3 rides", "received": 4}],
    )


def test_predict_an_empty_list_gets_400(client):
    response = client.post("/predict", json=[])

    assert response.status_code == 400
    assert response.json["error"]["details"] == [{"field": "body", "expected": "1 to 1000 rides", "received": 0}]


def test_predict_a_list_names_each_bad_ride_by_position(client):
    response = client.post("/predict", json=[RIDE, RIDE | {"trip_distance": -1}, "ride", RIDE | {"PULocationID": None}])

    assert response.status_code == 400
    assert response.json == error(
        "invalid_request",
        "invalid rides: [1].trip_distance, [2], [3].PULocationID",
        [
            {"field": "[1].trip_distance", "expected": "greater than or equal to 0", "received": -1},
            {"field": "[2]", "expected": "a ride (JSON object)", "received": "ride"},
            {"field": "[3].PULocationID", "expected": "a valid integer", "received": None},
        ],
    )


def test_predict_rejects_distances_of_500_miles_and_more(client):
    response = client.post("/predict", json=RIDE | {"trip_distance": 500})

    assert response.status_code == 400
    assert response.json["error"]["details"] == [
        {"field": "trip_distance", "expected": "less than 500", "received": 500}
    ]


@pytest.mark.parametrize("zones", [(264, 265), (1, 1)])
def test_unknown_zones_and_pairs_never_seen_in_training_are_predicted_from_distance(client, linear_pipeline, zones):
    ride = {"PULocationID": zones[0], "DOLocationID": zones[1], "trip_distance": 3.0}
    vectorizer = linear_pipeline.named_steps["dictvectorizer"]
    assert f"PU_DO={zones[0]}_{zones[1]}" not in vectorizer.vocabulary_

    response = client.post("/predict", json=ride)

    assert response.status_code == 200
    assert response.json["duration"] == linear_pipeline.predict([{"trip_distance": 3.0}])[0]


def test_body_over_the_limit_gets_413(client):
    response = client.post("/predict", json=RIDE | {"padding": "x" * 4096})

    assert response.status_code == 413
    assert response.json == error(
        "request_entity_too_large",
        "the body is over the 2048-byte limit (MAX_BODY_BYTES)",
        [{"field": "body", "expected": "at most 2048 bytes", "received": len(response.request.get_data())}],
    )


def test_unknown_route_gets_json_404(client):
    response = client.get("/nope")

    assert response.status_code == 404
    assert response.json == error("not_found", "no endpoint at /nope; the API is described at /openapi.json and /docs")


@pytest.mark.parametrize(
    ("method", "path", "allow", "expected"),
    [
        ("GET", "/predict", "OPTIONS, POST", "POST"),
        ("DELETE", "/health", "GET, HEAD, OPTIONS", "GET"),
        ("TRACE", "/invocations", "OPTIONS, POST", "POST"),
    ],
)
def test_wrong_method_gets_405_with_an_allow_header_listing_the_paths_methods(client, method, path, allow, expected):
    response = client.open(path, method=method)

    assert response.status_code == 405
    assert response.headers["Allow"] == allow
    assert response.json == error(
        "method_not_allowed",
        f"{method} is not allowed on {path}",
        [{"field": "method", "expected": expected, "received": method}],
    )


def test_options_lists_the_same_methods_as_a_405(client):
    def methods(response):
        return set(response.headers["Allow"].split(", "))

    assert methods(client.options("/predict")) == methods(client.get("/predict")) == {"OPTIONS", "POST"}


class FailsOnLongRides:
    """Stands in for a model with a bug on some inputs: no real model fails on demand."""

    def predict(self, features):
        if any(f["trip_distance"] > 100 for f in features):
            raise RuntimeError("secret internal detail")
        return [7.0] * len(features)


class AlwaysFails:
    """Stands in for a model that cannot predict at all (a broken artifact, say)."""

    def predict(self, features):
        raise RuntimeError("cannot predict")


def test_unexpected_error_gets_generic_500_and_is_logged_with_traceback_and_request_id(caplog):
    app = create_app(AppSettings(), Predictor(FailsOnLongRides(), "buggy", "test"))

    response = app.test_client().post(
        "/predict", json=RIDE | {"trip_distance": 150}, headers={"X-Request-ID": "req-42"}
    )

    assert response.status_code == 500
    assert response.json == error("internal_error", "internal server error")
    assert "secret" not in response.get_data(as_text=True)
    assert "RuntimeError: secret internal detail" in caplog.text
    assert "(request req-42)" in caplog.text


def test_a_model_that_fails_its_self_check_is_not_ready_and_answers_503():
    client = create_app(AppSettings(), Predictor(AlwaysFails(), "broken", "test")).test_client()

    for response in (client.get("/ready"), client.post("/predict", json=RIDE)):
        assert response.status_code == 503
        assert response.json == error("not_ready", "the model failed its self-check (RuntimeError: cannot predict)")
    assert client.get("/health").status_code == 200


def test_health_answers_200_while_the_process_is_up(client):
    response = client.get("/health")

    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_ready_reports_the_self_check_prediction(client, linear_pipeline):
    response = client.get("/ready")

    assert response.status_code == 200
    expected = linear_pipeline.predict([prepare_features(RIDE)])[0]
    assert response.json == {
        "status": "ready",
        "model_version": MODEL_VERSION,
        "self_check": {"passed": True, "ride": RIDE | {"trip_distance": 40.0}, "duration": expected},
    }


def test_model_describes_identity_class_params_features_and_libraries(client, linear_pipeline):
    response = client.get("/model")

    assert response.status_code == 200
    body = response.json
    assert (body["model_version"], body["source"], body["model_class"]) == (
        MODEL_VERSION,
        "test fixture",
        "LinearRegression",
    )
    assert body["model_params"]["fit_intercept"] is True
    assert body["features"] == {
        "input": ["PU_DO", "trip_distance"],
        "vectorized": len(linear_pipeline.named_steps["dictvectorizer"].feature_names_),
    }
    assert {"python", "scikit-learn", "numpy", "flask"} <= set(body["libraries"])
    assert body["loaded_at"].endswith("+00:00")


TOO_DEEP = {
    "code": "invalid_request",
    "message": "the body is JSON nested too deeply",
    "details": [
        {
            "field": "body",
            "expected": "JSON nested at most 900 levels deep (a list of rides is 2)",
            "received": "deeper nesting",
        }
    ],
}


@pytest.mark.parametrize("depth", [1_000, 100_000])
@pytest.mark.parametrize(("path", "wrap"), [("/predict", "{}"), ("/invocations", '{{"inputs": {}}}')])
def test_json_nested_past_the_parsers_limit_gets_400_not_a_500(predictor, caplog, depth, path, wrap):
    body = wrap.format("[" * depth + "]" * depth)

    response = create_app(AppSettings(), predictor).test_client().post(path, data=body, content_type="application/json")

    assert response.status_code == 400
    assert response.json == {"error": TOO_DEEP}
    assert "Traceback" not in caplog.text


def test_a_batch_of_a_thousand_empty_rides_gets_the_first_20_problems_and_a_count_of_the_rest(predictor):
    body = "[" + ",".join(["{}"] * 1000) + "]"  # 3 KB
    fields = [f"[{i}].{name}" for i in range(7) for name in ("PULocationID", "DOLocationID", "trip_distance")][:20]

    response = (
        create_app(AppSettings(), predictor).test_client().post("/predict", data=body, content_type="application/json")
    )

    assert (len(body), response.status_code, len(response.data)) == (3001, 400, 2321)  # was 334 KB
    assert response.json == error(
        "invalid_request",
        f"invalid rides: {', '.join(fields)} and 2980 more",
        [{"field": field, "expected": "a value: the field is required", "received": None} for field in fields]
        + [{"field": "body", "expected": "at most 20 problems listed", "received": "2980 more"}],
    )


def test_an_error_with_20_problems_lists_them_all():
    from web_service.errors import ErrorDetail, InvalidRequest

    details = [ErrorDetail(f"[{i}]", "a ride", "null") for i in range(20)]

    assert InvalidRequest("twenty", details).details == details
