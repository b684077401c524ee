import pandas as pd

from harness.trips import make_trips
from web_service.features import prepare_features, prepare_features_frame


def test_prepare_features_joins_zones_and_casts_distance_to_float():
    ride = {"PULocationID": 10, "DOLocationID": 50, "trip_distance": 40}

    assert prepare_features(ride) == {"PU_DO": "10_50", "trip_distance": 40.0}
    assert isinstance(prepare_features(ride)["trip_distance"], float)


def test_prepare_features_ignores_fields_the_model_does_not_use():
    ride = {"PULocationID": 1, "DOLocationID": 265, "trip_distance": 0.5, "fare_amount": 9.0}

    assert prepare_features(ride) == {"PU_DO": "1_265", "trip_distance": 0.5}


def test_frame_form_gives_identical_features_to_row_form():
    trips = make_trips(rows=3000, seed=7)

    by_row = [prepare_features(ride) for ride in trips.to_dict("records")]

    assert prepare_features_frame(trips) == by_row
    assert all(type(f["trip_distance"]) is float and type(f["PU_DO"]) is str for f in by_row)


def test_frame_form_reads_nullable_and_float_zone_columns_like_integers():
    trips = pd.DataFrame(
        {
            "PULocationID": pd.array([7, 264], dtype="Int64"),
            "DOLocationID": [12.0, 1.0],
            "trip_distance": [1, 2],
        }
    )

    assert prepare_features_frame(trips) == [
        {"PU_DO": "7_12", "trip_distance": 1.0},
        {"PU_DO": "264_1", "trip_distance": 2.0},
    ]
