import re

import pytest

from tests.conftest import make_rides
from web_service.openapi import build_document

DOCUMENT = build_document(max_batch=1000, protected=False)
SCHEMAS = DOCUMENT["components"]["schemas"]
CSV = DOCUMENT["paths"]["/invocations"]["post"]["requestBody"]["content"]["text/csv"]["schema"]
ZONE = {"type": "integer", "minimum": 1, "maximum": 265}


def without_title(schema: dict) -> dict:
    return {key: value for key, value in schema.items() if key != "title"}


@pytest.mark.parametrize("field", ["PULocationID", "DOLocationID"])
def test_the_document_says_a_zone_is_an_integer_from_1_to_265(field):
    assert without_title(SCHEMAS["Ride"]["properties"][field]) == ZONE


def test_a_dataframe_split_row_is_described_by_the_ride_schema():
    split = SCHEMAS["Invocation"]["oneOf"][0]["properties"]["dataframe_split"]
    row = split["properties"]["data"]["items"]

    assert split["properties"]["columns"] == {"const": ["PULocationID", "DOLocationID", "trip_distance"]}
    assert [without_title(item) for item in row["prefixItems"]] == [
        ZONE,
        ZONE,
        {"type": "number", "minimum": 0, "exclusiveMaximum": 500.0},
    ]


def test_an_invocation_holds_exactly_one_input_key_and_may_hold_others():
    keys = {"dataframe_split", "dataframe_records", "instances", "inputs"}

    for form in SCHEMAS["Invocation"]["oneOf"]:
        (key,) = form["required"]
        assert {other for other, schema in form["properties"].items() if schema is False} == keys - {key}
        assert "additionalProperties" not in form


def csv_ride(pickup, dropoff, distance) -> str:
    return f"PULocationID,DOLocationID,trip_distance\n{pickup},{dropoff},{distance}\n"


def test_the_csv_pattern_takes_exactly_the_zones_1_to_265():
    matching = [zone for zone in range(-5, 1000) if re.search(CSV["pattern"], csv_ride(zone, 50, 1.5))]

    assert matching == list(range(1, 266))


@pytest.mark.parametrize(
    ("distance", "matches"),
    [("0", True), ("0.0", True), ("3.25", True), ("499.99", True), ("500", False), ("-1", False), ("1e3", False)],
)
def test_the_csv_pattern_takes_distances_from_0_to_below_500(distance, matches):
    assert bool(re.search(CSV["pattern"], csv_ride(10, 50, distance))) is matches


def test_a_csv_body_the_pattern_describes_is_answered_as_its_json_rides(client):
    rides = make_rides(20, seed=52)
    lines = ["PULocationID,DOLocationID,trip_distance"] + [
        f"{ride['PULocationID']},{ride['DOLocationID']},{ride['trip_distance']}" for ride in rides
    ]
    body = "\r\n".join(lines)
    assert re.search(CSV["pattern"], body)

    response = client.post("/invocations", data=body, content_type="text/csv")

    assert response.json == client.post("/invocations", json={"instances": rides}).json
