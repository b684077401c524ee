"""The OpenAPI document follows the code: every bound and shape in it is what the service does.

The expected values are found by asking the service (what parse_rides accepts, what the views
answer), never copied from the constants, so a constant changed without the document following
fails here.
"""

import base64
import copy
import hashlib
import math
import re

import pytest
from jsonschema import Draft202012Validator
from pydantic import TypeAdapter

from tests.conftest import make_rides
from web_service import openapi
from web_service.app import create_app
from web_service.errors import InvalidRequest, ServiceError
from web_service.lineup import Lineup
from web_service.openapi import build_document
from web_service.predictor import EXAMPLE_RIDE, ModelDescription, Predictor
from web_service.schema import parse_rides
from web_service.settings import AppSettings

DOCUMENT = build_document(max_batch=1000, protected=False)
SCHEMAS = DOCUMENT["components"]["schemas"]
PATHS = DOCUMENT["paths"]
CSV = PATHS["/invocations"]["post"]["requestBody"]["content"]["text/csv"]["schema"]
RIDE = {"PULocationID": 14, "DOLocationID": 50, "trip_distance": 3.5}


def without_title(schema: dict) -> dict:
    return {key: value for key, value in schema.items() if key != "title"}


def accepted(ride: dict) -> bool:
    try:
        parse_rides(ride, max_batch=10)
    except InvalidRequest:
        return False
    return True


def closed(schema: dict) -> dict:
    """The schema with every object closed: a key the code sends and the document lacks is an error."""
    schema = copy.deepcopy(schema)
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "properties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return schema


def errors_against(schema: dict, instance, document: dict = DOCUMENT, strict: bool = True) -> list[str]:
    components = closed(document["components"]) if strict else document["components"]
    validator = Draft202012Validator(schema | {"components": components})
    return [f"{list(error.absolute_path)}: {error.message}" for error in validator.iter_errors(instance)]


def answer_schema(path: str, method: str = "get", status: str = "200", document: dict = DOCUMENT) -> dict:
    return document["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]


# --- the ride: bounds found by asking parse_rides ---------------------------------------------


@pytest.mark.parametrize("field", ["PULocationID", "DOLocationID"])
def test_the_documented_zone_range_is_exactly_the_zones_parse_rides_accepts(field):
    schema = SCHEMAS["Ride"]["properties"][field]
    zones = [zone for zone in range(-5, 1000) if accepted(RIDE | {field: zone})]

    assert without_title(schema) == {"type": "integer", "minimum": zones[0], "maximum": zones[-1]}
    assert zones == list(range(zones[0], zones[-1] + 1))


def test_the_documented_distance_bounds_are_where_parse_rides_starts_and_stops_accepting():
    schema = SCHEMAS["Ride"]["properties"]["trip_distance"]
    low, high = schema["minimum"], schema["exclusiveMaximum"]

    assert schema["type"] == "number"
    assert accepted(RIDE | {"trip_distance": low}) and not accepted(RIDE | {"trip_distance": math.nextafter(low, -1)})
    assert not accepted(RIDE | {"trip_distance": high}) and accepted(RIDE | {"trip_distance": math.nextafter(high, 0)})


def test_the_documented_ride_fields_are_the_ones_parse_rides_requires():
    required = [name for name in RIDE if not accepted({k: v for k, v in RIDE.items() if k != name})]

    assert SCHEMAS["Ride"]["required"] == required == list(SCHEMAS["Ride"]["properties"])


@pytest.mark.parametrize("max_batch", [1000, 7])
def test_every_documented_batch_bound_is_the_one_parse_rides_enforces(max_batch):
    document = build_document(max_batch=max_batch, protected=False)
    body = document["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    rides = body["oneOf"][1]
    forms = {f["required"][0]: f["properties"][f["required"][0]] for f in document["components"]["schemas"]
             ["Invocation"]["oneOf"]}  # fmt: skip
    sizes = [size for size in range(0, max_batch + 3) if _batch_accepted(size, max_batch)]

    assert (rides["minItems"], rides["maxItems"]) == (sizes[0], sizes[-1])
    for key, form in forms.items():
        bounds = form["properties"]["data"] if key == "dataframe_split" else form
        assert (bounds["minItems"], bounds["maxItems"]) == (sizes[0], sizes[-1]), key
    csv = document["paths"]["/invocations"]["post"]["requestBody"]["content"]["text/csv"]["schema"]
    assert f"{{{sizes[0]},{sizes[-1]}}}" in csv["pattern"]


def _batch_accepted(size: int, max_batch: int) -> bool:
    try:
        parse_rides([RIDE] * size, max_batch=max_batch)
    except InvalidRequest:
        return False
    return True


def test_a_dataframe_split_row_is_described_by_the_ride_schema():
    split = SCHEMAS["Invocation"]["oneOf"][0]["properties"]["dataframe_split"]
    row = split["properties"]["data"]["items"]

    assert split["properties"]["columns"] == {"const": list(SCHEMAS["Ride"]["properties"])}
    assert row["prefixItems"] == list(SCHEMAS["Ride"]["properties"].values())


def test_an_invocation_holds_exactly_one_input_key_and_may_hold_others(client):
    keys = {form["required"][0] for form in SCHEMAS["Invocation"]["oneOf"]}

    for form in SCHEMAS["Invocation"]["oneOf"]:
        (key,) = form["required"]
        assert {other for other, schema in form["properties"].items() if schema is False} == keys - {key}
        assert "additionalProperties" not in form
        refused = client.post("/invocations", json={key: [RIDE], **{other: [RIDE] for other in keys - {key}}})
        assert refused.status_code == 400  # two keys
    assert all(client.post("/invocations", json={key: [RIDE]}).status_code == 200 for key in keys - {"dataframe_split"})


# --- CSV: the pattern is built from the ride schema ---------------------------------------------


def csv_ride(pickup, dropoff, distance) -> str:
    return f"PULocationID,DOLocationID,trip_distance\n{pickup},{dropoff},{distance}\n"


def test_the_csv_pattern_takes_exactly_the_zones_parse_rides_accepts():
    matching = [zone for zone in range(-5, 1000) if re.search(CSV["pattern"], csv_ride(zone, 50, 1.5))]

    assert matching == [zone for zone in range(-5, 1000) if accepted(RIDE | {"PULocationID": zone})]


@pytest.mark.parametrize("distance", ["0", "0.0", "3.25", "499.99", "500", "-1", "1e3", "12.", "007"])
def test_the_csv_pattern_takes_a_plain_distance_exactly_when_parse_rides_does(distance):
    plain = re.fullmatch(r"(0|[1-9][0-9]*)(\.[0-9]+)?", distance) is not None

    matches = bool(re.search(CSV["pattern"], csv_ride(10, 50, distance)))

    assert matches is (plain and accepted(RIDE | {"trip_distance": float(distance)}))


def test_the_csv_header_names_the_ride_fields_in_order():
    assert CSV["pattern"].startswith("^" + ",".join(SCHEMAS["Ride"]["properties"]) + "(")


def test_a_csv_body_the_pattern_describes_is_answered_as_its_json_rides(client):
    rides = make_rides(20, seed=52)
    lines = ["PULocationID,DOLocationID,trip_distance"] + [
        f"{ride['PULocationID']},{ride['DOLocationID']},{ride['trip_distance']}" for ride in rides
    ]
    body = "\r\n".join(lines)
    assert re.search(CSV["pattern"], body)

    response = client.post("/invocations", data=body, content_type="text/csv")

    assert response.json == client.post("/invocations", json={"instances": rides}).json


@pytest.mark.parametrize(
    ("low", "high"), [(0, 0), (0, 9), (1, 265), (7, 1234), (10, 99), (5, 5), (100, 100), (99, 101), (0, 10_000)]
)
def test_the_integer_pattern_takes_exactly_its_range(low, high):
    pattern = re.compile(openapi._integers(low, high))

    assert [n for n in range(12_000) if pattern.fullmatch(str(n))] == list(range(low, high + 1))
    assert not pattern.fullmatch(f"0{low}")  # no leading zeros


# --- answers: what the views send is what the document says -----------------------------------


def test_the_predict_answers_are_the_documented_ones(client):
    one = client.post("/predict", json=RIDE)
    batch = client.post("/predict", json=[RIDE, RIDE])

    schema = answer_schema("/predict", "post")
    assert errors_against(schema, one.json) == errors_against(schema, batch.json) == []
    assert errors_against(schema["oneOf"][0], batch.json) and errors_against(schema["oneOf"][1], one.json)


def test_health_ready_invocations_and_model_answers_are_the_documented_ones(client):
    answers = {
        ("/health", "get"): client.get("/health"),
        ("/ready", "get"): client.get("/ready"),
        ("/model", "get"): client.get("/model"),
        ("/invocations", "post"): client.post("/invocations", json={"instances": [RIDE]}),
    }

    for (path, method), response in answers.items():
        assert response.status_code == 200
        assert errors_against(answer_schema(path, method), response.json) == [], path


def test_model_is_documented_from_predictor_describe(predictor):
    described = predictor.describe()
    generated = TypeAdapter(ModelDescription).json_schema(mode="serialization", ref_template=openapi.REF)
    generated.pop("$defs")

    assert answer_schema("/model") == {"$ref": "#/components/schemas/ModelDescription"}
    assert SCHEMAS["ModelDescription"] == generated
    assert set(described) <= set(SCHEMAS["ModelDescription"]["properties"])
    assert set(SCHEMAS["ModelDescription"]["required"]) <= set(described)


def test_model_with_metadata_a_canary_and_a_shadow_still_matches_the_document(linear_pipeline):
    metadata = {"run_id": "r" * 32, "registered_model": "ride-duration/3", "logged_model_id": None,
                "artifact_path": "model", "training": {"params": {}, "metrics": {"rmse": 6.7}}}  # fmt: skip
    primary = Predictor(linear_pipeline, "primary", "test fixture", metadata=metadata)
    other = Predictor(linear_pipeline, "other", "test fixture")
    app = create_app(AppSettings(), Lineup(primary, canary=other, canary_percent=10, shadow=other), announce=False)

    body = app.test_client().get("/model").json

    assert (
        errors_against(answer_schema("/model"), {k: v for k, v in body.items() if k not in ("canary", "shadow")}) == []
    )
    assert errors_against(answer_schema("/model"), body, strict=False) == []


def test_every_error_has_the_documented_shape(app):
    client = app.test_client()
    answers = [
        client.post("/predict", json={}),  # 400
        client.post("/predict", data="[" + ",".join(["{}"] * 50) + "]", content_type="application/json"),  # capped
        client.get("/nope"),  # 404
        client.get("/predict"),  # 405
        client.post("/predict", data="x" * 4096, content_type="application/json"),  # 413
        client.post("/invocations", data="x", content_type="text/plain"),  # 415
    ]
    raised = [kind("message").to_dict() for kind in _subclasses(ServiceError)]

    for body in [answer.json for answer in answers] + raised:
        assert errors_against({"$ref": "#/components/schemas/Error"}, body) == [], body
    details = SCHEMAS["ErrorBody"]["properties"]["details"]
    assert len(answers[1].json["error"]["details"]) == details["maxItems"]  # the cap, and the count of the rest


def _subclasses(kind: type) -> list[type]:
    return [kind] + [sub for child in kind.__subclasses__() for sub in _subclasses(child)]


def test_the_example_ride_is_the_self_checks_and_is_answered(client):
    body = PATHS["/predict"]["post"]["requestBody"]["content"]["application/json"]
    invocation = PATHS["/invocations"]["post"]["requestBody"]["content"]["application/json"]["example"]

    assert body["example"] == EXAMPLE_RIDE
    assert client.post("/predict", json=body["example"]).status_code == 200
    assert client.post("/invocations", json=invocation).json == {
        "predictions": [client.post("/predict", json=EXAMPLE_RIDE).json["duration"]]
    }


def test_operations_need_the_bearer_token_exactly_when_the_app_does(predictor):
    for tokens in [(), ("secret",)]:
        app = create_app(AppSettings(api_tokens=tokens), predictor, announce=False)
        document = app.test_client().get("/openapi.json").json
        for path, item in document["paths"].items():
            for method, operation in item.items():
                answer = app.test_client().open(path, method=method.upper(), json=EXAMPLE_RIDE)
                assert (operation.get("security") == [{"bearer": []}]) is (answer.status_code == 401), path
        assert document["components"]["securitySchemes"]["bearer"] == {
            "type": "http",
            "scheme": "bearer",
            "description": "One of the tokens in API_TOKEN, when it is set.",
        }


def test_the_document_is_built_with_the_app_not_per_request(app, monkeypatch):
    def rebuilt(*args, **kwargs):
        raise AssertionError("the document was built again")

    monkeypatch.setattr(openapi, "build_document", rebuilt)
    monkeypatch.setattr(openapi.TypeAdapter, "json_schemas", rebuilt)
    client = app.test_client()

    assert client.post("/predict", json=RIDE).status_code == 200
    assert client.get("/openapi.json").json == DOCUMENT
    assert client.get("/docs").status_code == 200


# --- GET /docs ---------------------------------------------------------------------------------


def test_docs_is_swagger_ui_from_this_server_under_a_content_security_policy(client):
    page = client.get("/docs")
    html = page.get_data(as_text=True)
    policy = dict(part.strip().split(" ", 1) for part in page.headers["Content-Security-Policy"].split(";"))
    (script,) = re.findall(r"<script>(.*?)</script>", html)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()

    assert page.status_code == 200 and page.mimetype == "text/html"
    assert "http" not in html and "//" not in html  # no URL elsewhere, not even scheme-relative
    assert policy["default-src"] == "'none'" and policy["connect-src"] == "'self'"
    assert policy["script-src"] == f"'self' 'sha256-{digest}'"  # the one inline script, nothing else
    assert '"url": "openapi.json"' in script and '"validatorUrl": null' in script
    for asset in re.findall(r"(?:href|src)='(docs/[^']+)'", html):
        answer = client.get(f"/{asset}")
        assert answer.status_code == 200 and len(answer.data) > 500, asset
        assert answer.data == (openapi.SWAGGER_UI / asset.removeprefix("docs/")).read_bytes()


def test_a_docs_asset_is_cached_and_revalidated(client):
    first = client.get("/docs/swagger-ui.css")
    again = client.get("/docs/swagger-ui.css", headers={"If-None-Match": first.headers["ETag"]})

    assert first.mimetype == "text/css" and "max-age=3600" in first.headers["Cache-Control"]
    assert again.status_code == 304


def test_docs_assets_are_fixed_routes_and_nothing_else_is_served_from_the_package(client):
    assert client.get("/docs/index.html").status_code == 404
    assert client.get("/docs/LICENSE").status_code == 404


def test_the_document_is_the_same_however_many_apps_a_process_builds():
    # pydantic wrote its hooks into a shared zone schema on every build: after ~250 apps, a RecursionError
    documents = [build_document.__wrapped__(max_batch=1000, protected=False) for _ in range(300)]

    assert documents[-1] == documents[0] == DOCUMENT
