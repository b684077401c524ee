import math

import pytest
from pydantic import TypeAdapter, ValidationError

from web_service.errors import InvalidRequest
from web_service.features import prepare_features
from web_service.schema import parse_rides, ride_batch

RIDE_14_50 = {"PULocationID": 14, "DOLocationID": 50, "trip_distance": 3.5}
# Zones and distances of every kind a client sends: right, wrong, out of range, not numbers.
ZONES = [1, 14, 265, 14.0, 265.0, 14.5, 0, 266, 0.0, 1e300, -1, 10**400, math.nan, math.inf, "14", True, None, []]
DISTANCES = [0, 3.5, 499.9, 14.0, -0.1, 500, math.nan, "3.5", False, None]


def test_an_integral_float_zone_is_validated_into_an_int():
    ride = parse_rides(RIDE_14_50 | {"PULocationID": 14.0, "DOLocationID": 50.0}, max_batch=10).rides[0]

    assert ride == RIDE_14_50
    assert type(ride["PULocationID"]) is int and type(ride["DOLocationID"]) is int
    assert prepare_features(ride)["PU_DO"] == "14_50"


def test_a_batch_mixing_integer_and_integral_float_zones_is_all_ints():
    rides = parse_rides([RIDE_14_50, RIDE_14_50 | {"DOLocationID": 50.0}], max_batch=10).rides

    assert rides == [RIDE_14_50, RIDE_14_50]
    assert {type(ride["DOLocationID"]) for ride in rides} == {int}


@pytest.mark.parametrize(
    ("zone", "expected", "received"),
    [
        (14.5, "a valid integer, got a number with a fractional part", 14.5),
        ("14", "a valid integer", "14"),
        (True, "a valid integer", True),
        (266.0, "less than or equal to 265", 266.0),
        (1e300, "less than or equal to 265", 1e300),
        (math.inf, "a finite number", "inf"),
    ],
)
def test_a_zone_that_is_not_an_integer_from_1_to_265_is_refused_naming_it(zone, expected, received):
    with pytest.raises(InvalidRequest) as refused:
        parse_rides(RIDE_14_50 | {"PULocationID": zone}, max_batch=10)

    assert refused.value.message == "invalid ride: PULocationID"
    assert [detail.to_dict() for detail in refused.value.details] == [
        {"field": "PULocationID", "expected": expected, "received": received}
    ]


def test_a_batch_names_every_bad_ride_not_only_the_first():
    rides = [RIDE_14_50 | {"PULocationID": 14.5}, RIDE_14_50, RIDE_14_50 | {"trip_distance": -1}]

    with pytest.raises(InvalidRequest) as refused:
        parse_rides(rides, max_batch=10)

    assert [detail.field for detail in refused.value.details] == ["[0].PULocationID", "[2].trip_distance"]


def outcome(validate, ride):
    try:
        return validate(ride)
    except ValidationError as error:
        return [(item["loc"], item["type"]) for item in error.errors()]


@pytest.mark.parametrize("max_batch", [1, 3, 1000])
def test_the_batch_type_the_document_shows_takes_exactly_the_sizes_parse_rides_does(max_batch):
    def parsed(rides):
        try:
            return parse_rides(rides, max_batch).rides
        except InvalidRequest:
            return None

    batch = TypeAdapter(ride_batch(max_batch))
    for size in range(max_batch + 3):
        rides = [RIDE_14_50] * size
        assert (outcome(batch.validate_python, rides) == rides) is (parsed(rides) == rides), size
