import pandas as pd
import pytest

from harness.trips import OUTLIER_MINUTES, make_trips, write_trips
from web_service_mlflow.data import TripDataError, read_rides


@pytest.mark.parametrize("color", ["green", "yellow"])
def test_read_rides_reads_both_cab_schemas(tmp_path, color):
    path = write_trips(tmp_path / f"{color}.parquet", rows=100, color=color)

    rides = read_rides(str(path))

    assert list(rides.columns) == ["PULocationID", "DOLocationID", "trip_distance", "duration"]
    assert len(rides) == 100 - len(OUTLIER_MINUTES)


def test_read_rides_keeps_only_rides_of_1_to_60_minutes(tmp_path):
    trips = make_trips(rows=50)
    pickup = trips["lpep_pickup_datetime"]
    trips["lpep_dropoff_datetime"] = pickup + pd.to_timedelta([1, 60, 0.99, 60.01] + [30] * 46, unit="min")
    trips.to_parquet(tmp_path / "edges.parquet")

    rides = read_rides(str(tmp_path / "edges.parquet"))

    assert rides["duration"].iloc[:2].tolist() == [1.0, 60.0]
    assert len(rides) == 48


def test_read_rides_drops_rows_missing_a_feature(tmp_path):
    trips = make_trips(rows=20)
    trips["PULocationID"] = trips["PULocationID"].astype("Int64")
    trips.loc[10, "PULocationID"] = pd.NA
    trips.to_parquet(tmp_path / "gaps.parquet")

    assert len(read_rides(str(tmp_path / "gaps.parquet"))) == 20 - len(OUTLIER_MINUTES) - 1


def test_read_rides_names_what_is_missing_from_a_file_that_is_not_trip_data(tmp_path):
    make_trips(rows=10).drop(columns=["lpep_pickup_datetime"]).to_parquet(tmp_path / "odd.parquet")

    with pytest.raises(TripDataError, match="neither lpep_\\* \\(green\\) nor tpep_\\* \\(yellow\\)"):
        read_rides(str(tmp_path / "odd.parquet"))
