"""rides.py: TLC columns in, the output's columns out, and the API contract ride by ride."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.ensemble import RandomForestRegressor

from tests.web_service.conftest import fit_dict_pipeline
from tests.web_service_mlflow.batch.conftest import expected_reasons, tlc_table, write_pandas_trips, write_tlc
from web_service.errors import InvalidRequest
from web_service.predictor import Predictor
from web_service.schema import parse_rides
from web_service_mlflow.batch.rides import (
    REASONS,
    TripFile,
    describe_file,
    parse_period,
    period_of,
    reject_reasons,
    score_batch,
)
from web_service_mlflow.data import TripDataError

pytestmark = pytest.mark.usefixtures("model_environment")

NAN, INF = float("nan"), float("inf")
SCORED_COLUMNS = [
    ("ride_id", pa.string()),
    ("pickup_datetime", pa.timestamp("us")),
    ("PULocationID", pa.int64()),
    ("DOLocationID", pa.int64()),
    ("trip_distance", pa.float64()),
]
ACTUAL_COLUMNS = [("actual_duration", pa.float64()), ("diff", pa.float64())]
PREDICTED_COLUMNS = [("predicted_duration", pa.float64()), ("model_version", pa.string())]
RIDE_FIELDS = ("PULocationID", "DOLocationID", "trip_distance")

# Edge values per field, in the column type that carries them.
FLOAT_ZONES = [0.0, 1.0, 14.0, 14.5, 0.5, 265.0, 265.5, 266.0, -1.0, -0.0, NAN, None, 1e300, INF, -INF]
INT_ZONES = [0, 1, 14, 264, 265, 266, -1, None]
FLOAT_DISTANCES = [-1.0, -0.0, 0.0, 5e-324, 0.1, 3.7, 499.99, 500.0, 1e300, INF, -INF, NAN, None]
INT_DISTANCES = [-1, 0, 3, 499, 500, None]
HUGE_INTS = [2**53 + 1, 2**62, 2**63 - 1, -(2**63)]
GRIDS = {
    "float zones, float miles": (FLOAT_ZONES, pa.float64(), FLOAT_DISTANCES, pa.float64()),
    "int zones, float miles": (INT_ZONES, pa.int64(), FLOAT_DISTANCES, pa.float64()),
    "int zones, int miles": (INT_ZONES, pa.int64(), INT_DISTANCES, pa.int64()),
}


def grid_table(zones: list, zone_type: pa.DataType, distances: list, distance_type: pa.DataType) -> pa.Table:
    """Every (pickup zone, drop-off zone, distance) combination, one ride each."""
    rides = list(itertools.product(zones, zones, distances))
    return pa.table(
        {
            "pickup_datetime": pa.array([np.datetime64("2021-01-05T08:00:00", "us")] * len(rides), pa.timestamp("us")),
            "PULocationID": pa.array([ride[0] for ride in rides], zone_type),
            "DOLocationID": pa.array([ride[1] for ride in rides], zone_type),
            "trip_distance": pa.array([ride[2] for ride in rides], distance_type),
        }
    )


def as_trip(table: pa.Table, location: str = "grid_2021-01.parquet") -> TripFile:
    return describe_file(location, table.schema, (table.num_rows,), None)


def json_rides(table: pa.Table) -> list[dict]:
    """Each row as a JSON client would send it: Python ints and floats, None for null."""
    columns = [table.column(name).to_pylist() for name in RIDE_FIELDS]
    return [dict(zip(RIDE_FIELDS, values, strict=True)) for values in zip(*columns, strict=True)]


def contract(ride: dict) -> tuple[dict | None, set[str]]:
    """What POST /predict makes of one ride: (the validated ride, no fields) or (None, the fields it refuses)."""
    try:
        return parse_rides(ride, max_batch=1).rides[0], set()
    except InvalidRequest as refused:
        return None, {detail.field for detail in refused.details}


def bits(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).view(np.uint64)


def row_of(ride_id: str) -> int:
    return int(ride_id.rsplit("_", 1)[1])


# --- column mapping -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("names", "pickup", "dropoff"),
    [
        (["lpep_pickup_datetime", "lpep_dropoff_datetime"], "lpep_pickup_datetime", "lpep_dropoff_datetime"),
        (["tpep_pickup_datetime", "tpep_dropoff_datetime"], "tpep_pickup_datetime", "tpep_dropoff_datetime"),
        (["pickup_datetime", "dropoff_datetime"], "pickup_datetime", "dropoff_datetime"),
        (["pickup_datetime"], "pickup_datetime", None),
        (["lpep_pickup_datetime"], "lpep_pickup_datetime", None),
        (["tpep_pickup_datetime", "dropoff_datetime"], "tpep_pickup_datetime", None),  # not its own drop-off
    ],
)
def test_describe_file_finds_the_time_columns_of_green_yellow_and_plain_files(names, pickup, dropoff):
    schema = pa.schema([(name, pa.timestamp("us")) for name in names] +
                       [(name, pa.int64()) for name in RIDE_FIELDS])  # fmt: skip

    trip = describe_file("trips_2021-01.parquet", schema, (10, 5), None)

    assert (trip.pickup, trip.dropoff, trip.period, trip.rows) == (pickup, dropoff, "2021/01", 15)


def test_describe_file_ignores_a_dropoff_column_that_holds_no_timestamps():
    schema = pa.schema([("lpep_pickup_datetime", pa.timestamp("us")), ("lpep_dropoff_datetime", pa.string())] +
                       [(name, pa.float64()) for name in RIDE_FIELDS])  # fmt: skip

    assert describe_file("green_tripdata_2021-01.parquet", schema, (1,), None).dropoff is None


@pytest.mark.parametrize("color", ["green", "yellow"])
def test_a_tlc_file_is_scored_into_the_output_columns_with_its_actual_duration(tmp_path, score, color):
    source = write_tlc(tmp_path / f"{color}_tripdata_2021-01.parquet", rows=600, seed=3, color=color)
    prefix = {"green": "lpep_", "yellow": "tpep_"}[color]

    score(source, "--output", tmp_path / "scored.parquet")

    scored = pq.read_table(tmp_path / "scored.parquet")
    assert scored.schema.remove_metadata() == pa.schema(SCORED_COLUMNS + ACTUAL_COLUMNS + PREDICTED_COLUMNS)
    trips = pq.read_table(source).to_pandas()
    rows = [row_of(ride_id) for ride_id in scored.column("ride_id").to_pylist()]
    got, want = scored.to_pandas(), trips.iloc[rows].reset_index(drop=True)
    assert len(got) > 500
    assert (got["pickup_datetime"] == want[f"{prefix}pickup_datetime"]).all()
    assert (got[["PULocationID", "DOLocationID", "trip_distance"]] == want[list(RIDE_FIELDS)]).all().all()
    minutes = (want[f"{prefix}dropoff_datetime"] - want[f"{prefix}pickup_datetime"]).dt.total_seconds() / 60
    assert np.array_equal(got["actual_duration"], minutes)
    assert np.array_equal(got["diff"], got["actual_duration"] - got["predicted_duration"])


@pytest.mark.parametrize(("dropoff", "columns"), [(False, []), (True, ACTUAL_COLUMNS)])
def test_a_plain_pickup_datetime_file_has_actual_duration_only_with_dropoff_times(tmp_path, score, dropoff, columns):
    source = write_tlc(tmp_path / "fhv_tripdata_2021-01.parquet", rows=200, color="plain", dropoff=dropoff)

    score(source, "--output", tmp_path / "scored.parquet")

    schema = pq.read_schema(tmp_path / "scored.parquet").remove_metadata()
    assert schema == pa.schema(SCORED_COLUMNS + columns + PREDICTED_COLUMNS)


def test_inputs_with_and_without_dropoff_times_score_together_with_a_null_actual_duration(tmp_path, score):
    # BUG: score_batch asks _minutes for the drop-off column of a file that has none (rides.py:203).
    green = write_tlc(tmp_path / "green_tripdata_2021-01.parquet", rows=300, seed=1)
    plain = write_tlc(tmp_path / "fhv_tripdata_2021-02.parquet", rows=200, seed=2, color="plain", dropoff=False)

    summary = score(green, plain, "--output", tmp_path / "scored")

    scored = pq.read_table(tmp_path / "scored").to_pandas()
    assert len(scored) == summary.scored
    from_plain = scored["ride_id"].str.startswith("2021/02_")
    assert from_plain.sum() > 150 and scored.loc[from_plain, ["actual_duration", "diff"]].isna().all().all()
    assert scored.loc[~from_plain, ["actual_duration", "diff"]].notna().all().all()


def test_a_pandas_file_with_float_zones_and_nan_is_scored_with_integer_zones(tmp_path, score):
    source = write_pandas_trips(tmp_path / "green_tripdata_2021-01.parquet")
    assert pq.read_schema(source).field("PULocationID").type == pa.float64()
    expected = Counter(reason for reason in expected_reasons(pq.read_table(source)) if reason)

    summary = score(source, "--output", tmp_path / "scored.parquet")

    scored = pq.read_table(tmp_path / "scored.parquet")
    assert scored.schema.field("PULocationID").type == scored.schema.field("DOLocationID").type == pa.int64()
    assert summary.reasons == expected
    assert set(expected) == {"PULocationID_missing", "DOLocationID_missing"}
    assert scored.num_rows == 400 - expected.total()


def test_nanosecond_times_as_pandas_writes_them_are_truncated_to_microseconds(tmp_path, score):
    table = tlc_table(50)
    pickup, dropoff = (plus_nanoseconds(table.column(f"lpep_{end}_datetime"), extra)
                       for end, extra in (("pickup", 1_234), ("dropoff", 987)))  # fmt: skip
    table = table.set_column(1, "lpep_pickup_datetime", pickup).set_column(2, "lpep_dropoff_datetime", dropoff)
    source = tmp_path / "green_tripdata_2021-01.parquet"
    pq.write_table(table, source)

    score(source, "--output", tmp_path / "scored.parquet")

    scored = pq.read_table(tmp_path / "scored.parquet").to_pandas()
    trips = table.to_pandas().iloc[[row_of(ride_id) for ride_id in scored["ride_id"]]].reset_index(drop=True)
    assert (scored["pickup_datetime"] == trips["lpep_pickup_datetime"].dt.floor("us")).all()
    exact = (trips["lpep_dropoff_datetime"] - trips["lpep_pickup_datetime"]).dt.total_seconds() / 60
    assert np.allclose(scored["actual_duration"], exact, rtol=0, atol=1e-7)


def plus_nanoseconds(column: pa.ChunkedArray, nanoseconds: int) -> pa.Array:
    values = column.cast(pa.timestamp("ns")).cast(pa.int64()).to_numpy() + nanoseconds
    return pa.array(values, pa.int64()).cast(pa.timestamp("ns"))


# --- the month of the ride ids --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "period"),
    [
        ("green_tripdata_2021-01.parquet", "2021/01"),
        ("/data/yellow_tripdata_2023-12.parquet", "2023/12"),
        ("s3://trips/2019-05/fhv_tripdata_2020-02.parquet", "2020/02"),  # the name says it, not the folder
        ("https://example.org/green_tripdata_2021-07.parquet?download=1", "2021/07"),
    ],
)
def test_the_period_comes_from_the_file_name(location, period):
    assert period_of(location) == period


@pytest.mark.parametrize(
    "location",
    [
        "trips.parquet",
        "/data/2021-01/trips.parquet",
        "green_tripdata_2021-13.parquet",
        "green_tripdata_12021-01.parquet",
        "trips_2021-01_to_2021-02.parquet",
    ],
)
def test_a_name_without_one_month_fails_naming_the_file_and_period(location):
    with pytest.raises(TripDataError) as refused:
        period_of(location)

    message = str(refused.value)
    assert message.startswith(f"{location}: cannot tell its month") and "pass --period YYYY-MM" in message
    assert "\n" not in message


@pytest.mark.parametrize(("text", "period"), [("2021-01", "2021/01"), ("1999-12", "1999/12")])
def test_parse_period_takes_year_and_month(text, period):
    assert parse_period(text) == period


@pytest.mark.parametrize("text", ["2021-1", "2021/01", "2021-13", "2021-00", "21-01", "2021-01-05"])
def test_parse_period_refuses_anything_but_yyyy_mm(text):
    with pytest.raises(TripDataError, match=f"--period must be YYYY-MM, like 2021-01; got {text!r}"):
        parse_period(text)


@pytest.mark.parametrize("name", ["green_tripdata_2021-01.parquet", "trips.parquet"])
def test_the_period_option_names_the_month_of_the_ride_ids(tmp_path, score, name):
    source = write_tlc(tmp_path / name, rows=100)

    score(source, "--output", tmp_path / "scored.parquet", "--rejects", tmp_path / "rejects.parquet", "--period",
          "2020-07")  # fmt: skip

    for written in ("scored.parquet", "rejects.parquet"):
        ids = pq.read_table(tmp_path / written).column("ride_id").to_pylist()
        assert ids and all(ride_id.startswith("2020/07_") for ride_id in ids)


# --- the contract, ride by ride -------------------------------------------------------------------


@pytest.mark.parametrize("grid", sorted(GRIDS))
def test_a_ride_is_scored_exactly_when_the_api_accepts_it_and_gets_the_same_float(grid, default_predictor):
    table = grid_table(*GRIDS[grid])

    result = score_batch(table.to_batches()[0], as_trip(table), 0, default_predictor, with_actual=False)

    predicted = dict(zip(result.rides.column("ride_id").to_pylist(),
                         result.rides.column("predicted_duration").to_pylist(), strict=True))  # fmt: skip
    accepted = 0
    for row, ride in enumerate(json_rides(table)):
        validated, _ = contract(ride)
        ride_id = f"2021/01_{row}"
        assert (ride_id in predicted) == (validated is not None), ride
        if validated is not None:
            accepted += 1
            assert bits(predicted[ride_id]) == bits(default_predictor.predict_one(validated)), ride
    assert 0 < accepted < table.num_rows
    assert result.rides.num_rows + result.rejects.num_rows == table.num_rows


@pytest.mark.parametrize("grid", sorted(GRIDS))
def test_each_refused_ride_gets_its_first_reason_in_the_order_of_reasons(grid):
    table = grid_table(*GRIDS[grid])
    pickup, dropoff, distance = (table.column(name).cast(pa.float64()).to_numpy() for name in RIDE_FIELDS)

    codes = reject_reasons(pickup, dropoff, distance)

    for code, reason, ride in zip(codes, expected_reasons(table), json_rides(table), strict=True):
        _, refused_fields = contract(ride)
        # The reason names one of the fields the API refuses, the first of them in REASONS' order.
        assert {name for name in RIDE_FIELDS if reason and reason.startswith(name)} <= refused_fields
        assert bool(refused_fields) == (reason is not None), ride
        assert code == (REASONS.index(reason) if reason else -1), ride
        if refused_fields:
            first = min(refused_fields, key=RIDE_FIELDS.index)
            assert reason.startswith(first), ride


def test_zones_too_large_for_a_float_are_refused_as_out_of_range_not_a_crash(default_predictor):
    # BUG: int64 -> float64 is a "safe" cast in _floats (rides.py:232): beyond 2**53 pyarrow raises
    # ArrowInvalid, and the command ends with "<file>: not a parquet file (Integer value ... not in range)".
    table = grid_table(HUGE_INTS + [7], pa.int64(), [2**62, 3], pa.int64())
    reasons = expected_reasons(table)

    result = score_batch(table.to_batches()[0], as_trip(table), 0, default_predictor, with_actual=False)

    assert result.rides.num_rows == reasons.count(None) == 1
    assert result.reasons == Counter(reason for reason in reasons if reason)


def test_a_batch_with_no_ride_to_score_passes_through_a_scikit_learn_predictor(tmp_path):
    # BUG: scikit-learn refuses to predict zero rows ("Sample sequence X is empty"), and score_batch
    # calls predict_columns even when every ride of the batch is refused (rides.py:194).
    predictor = Predictor(fit_dict_pipeline(RandomForestRegressor(n_estimators=5, random_state=0)), "sk", "test")
    table = grid_table([0, 300], pa.int64(), [1.0], pa.float64())

    result = score_batch(table.to_batches()[0], as_trip(table), 0, predictor, with_actual=False)

    assert (result.rides.num_rows, result.rejects.num_rows) == (0, 4)


def test_the_summary_and_the_rejects_file_account_for_every_refused_ride(tmp_path, score):
    table = grid_table(*GRIDS["float zones, float miles"])
    source = tmp_path / "grid_2021-01.parquet"
    pq.write_table(table, source)
    reasons = expected_reasons(table)
    refused = {f"2021/01_{row}": reason for row, reason in enumerate(reasons) if reason}

    summary = score(source, "--output", tmp_path / "scored.parquet", "--rejects", tmp_path / "rejects.parquet")

    assert summary.reasons == Counter(refused.values())
    assert summary.rejected == summary.reasons.total() == len(refused)
    assert summary.scored + summary.rejected == table.num_rows
    assert pq.read_metadata(tmp_path / "scored.parquet").num_rows == summary.scored
    rejects = pq.read_table(tmp_path / "rejects.parquet")
    ids, why = rejects.column("ride_id").to_pylist(), rejects.column("reason").to_pylist()
    assert dict(zip(ids, why, strict=True)) == refused
    assert set(rejects.column("source").to_pylist()) == {str(source)}
    rows = [row_of(ride_id) for ride_id in rejects.column("ride_id").to_pylist()]
    for name in RIDE_FIELDS:  # the values as they were, null as NaN
        np.testing.assert_array_equal(rejects.column(name).to_numpy(), table.column(name).to_numpy()[rows])
