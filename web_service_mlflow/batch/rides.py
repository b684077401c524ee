"""TLC trip records in, scored rides and rejects out: one record batch at a time.

Every step is a column operation, and every rule comes from the service's own: the contract's
zone range and distance limit (`web_service.schema`), the predictor's compiled table
(`Predictor.predict_columns`). A ride gets a prediction here exactly when POST /predict would
answer it, and then the same float.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from web_service.features import RIDE_FIELDS
from web_service.predictor import Predictor
from web_service.schema import FIRST_ZONE, LAST_ZONE, MAX_TRIP_DISTANCE
from web_service_mlflow.data import TripDataError

PICKUP, DROPOFF = "pickup_datetime", "dropoff_datetime"
# (pickup, drop-off) column names: green cabs, yellow cabs, and files already in the plain form.
TIME_COLUMNS = (
    ("lpep_pickup_datetime", "lpep_dropoff_datetime"),
    ("tpep_pickup_datetime", "tpep_dropoff_datetime"),
    (PICKUP, DROPOFF),
)
# The TLC names its files <type>_tripdata_<YYYY>-<MM>.parquet; the course's ride ids use that month.
PERIOD_IN_NAME = re.compile(r"(?<!\d)(\d{4})-(\d{2})(?!\d)")
PERIOD = re.compile(r"(\d{4})-(\d{2})")
TIMESTAMP = pa.timestamp("us")
NAN = pa.scalar(float("nan"), pa.float64())

# Why a ride is not scored, in the order they are checked: a ride counts under its first reason.
# Zones are checked as the contract checks them: the range on the number first, then integrality.
REASONS = (
    "PULocationID_missing",
    "PULocationID_out_of_range",
    "PULocationID_not_an_integer",
    "DOLocationID_missing",
    "DOLocationID_out_of_range",
    "DOLocationID_not_an_integer",
    "trip_distance_missing",
    "trip_distance_not_finite",
    "trip_distance_negative",
    "trip_distance_too_large",
)

REJECTS_SCHEMA = pa.schema([
    ("ride_id", pa.string()),
    ("source", pa.string()),
    ("reason", pa.string()),
    (PICKUP, TIMESTAMP),
    ("PULocationID", pa.float64()),
    ("DOLocationID", pa.float64()),
    ("trip_distance", pa.float64()),
])  # fmt: skip


def scored_schema(with_actual: bool) -> pa.Schema:
    """The output's columns; `actual_duration` and `diff` only when drop-off times are known."""
    fields = [
        ("ride_id", pa.string()),
        (PICKUP, TIMESTAMP),
        ("PULocationID", pa.int64()),
        ("DOLocationID", pa.int64()),
        ("trip_distance", pa.float64()),
    ]
    if with_actual:
        fields += [("actual_duration", pa.float64()), ("diff", pa.float64())]
    return pa.schema(fields + [("predicted_duration", pa.float64()), ("model_version", pa.string())])


@dataclass(frozen=True)
class TripFile:
    """One input file as batch scoring reads it: which columns, which month, how many rows."""

    location: str  # as the user named it
    period: str  # "YYYY/MM": the prefix of its ride ids
    pickup: str
    dropoff: str | None
    row_groups: tuple[int, ...]  # rows per row group

    @property
    def rows(self) -> int:
        return sum(self.row_groups)

    @property
    def columns(self) -> list[str]:
        return [self.pickup, *([self.dropoff] if self.dropoff else []), *RIDE_FIELDS]

    def first_row(self, row_group: int) -> int:
        return sum(self.row_groups[:row_group])


def describe_file(location: str, schema: pa.Schema, row_groups: tuple[int, ...], period: str | None) -> TripFile:
    """Check that a parquet file's schema is TLC trip data; name what is missing otherwise."""
    names = set(schema.names)
    missing = [name for name in RIDE_FIELDS if name not in names]
    if missing:
        raise TripDataError(f"{location}: no column {', '.join(missing)}; is this TLC trip data?")
    for name in RIDE_FIELDS:
        kind = schema.field(name).type
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)):
            raise TripDataError(f"{location}: column {name} holds {kind}, expected numbers")
    pickup, dropoff = _time_columns(location, schema)
    return TripFile(location, period or period_of(location), pickup, dropoff, row_groups)


def _time_columns(location: str, schema: pa.Schema) -> tuple[str, str | None]:
    for pickup, dropoff in TIME_COLUMNS:
        if pickup in schema.names:
            kind = schema.field(pickup).type
            if not pa.types.is_timestamp(kind):
                raise TripDataError(f"{location}: column {pickup} holds {kind}, expected timestamps")
            has_dropoff = dropoff in schema.names and pa.types.is_timestamp(schema.field(dropoff).type)
            return pickup, dropoff if has_dropoff else None
    raise TripDataError(
        f"{location}: no pickup time column (lpep_pickup_datetime for green cabs, tpep_pickup_datetime "
        "for yellow, or pickup_datetime); is this TLC trip data?"
    )


def period_of(location: str) -> str:
    """The "YYYY/MM" of a TLC file name (green_tripdata_2021-01.parquet -> "2021/01")."""
    found = PERIOD_IN_NAME.findall(PurePosixPath(location.split("?")[0]).name)
    if len(found) != 1 or not 1 <= int(found[0][1]) <= 12:
        raise TripDataError(
            f"{location}: cannot tell its month for the ride ids from the name (TLC files are named like "
            "green_tripdata_2021-01.parquet); pass --period YYYY-MM"
        )
    year, month = found[0]
    return f"{year}/{month}"


def parse_period(text: str) -> str:
    """--period 2021-01 -> "2021/01"."""
    match = PERIOD.fullmatch(text)
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise TripDataError(f"--period must be YYYY-MM, like 2021-01; got {text!r}")
    return f"{match.group(1)}/{match.group(2)}"


@dataclass
class Scored:
    """One batch's results: the scored rides, the rejected ones, and the count per reason."""

    rides: pa.Table
    rejects: pa.Table
    reasons: Counter[str]


def reject_reasons(pickup: np.ndarray, dropoff: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """Per ride, the index into REASONS of its first problem, or -1 when the contract accepts it.

    Arrays are float64 with NaN for nulls: the contract refuses a missing field and NaN alike.
    """
    reason = np.full(len(distance), -1, dtype=np.int8)
    checks = [*_zone_checks(pickup), *_zone_checks(dropoff), *_distance_checks(distance)]
    # Last to first, so that each ride ends with its first reason.
    for code in range(len(checks) - 1, -1, -1):
        reason[checks[code]] = code
    return reason


def _zone_checks(zone: np.ndarray) -> list[np.ndarray]:
    missing = np.isnan(zone)
    with np.errstate(invalid="ignore"):
        out_of_range = ~missing & ~((zone >= FIRST_ZONE) & (zone <= LAST_ZONE))
    return [missing, out_of_range, ~missing & ~out_of_range & (zone != np.floor(zone))]


def _distance_checks(distance: np.ndarray) -> list[np.ndarray]:
    missing = np.isnan(distance)
    not_finite = np.isinf(distance)
    with np.errstate(invalid="ignore"):
        return [missing, not_finite, distance < 0, np.isfinite(distance) & (distance >= MAX_TRIP_DISTANCE)]


def score_batch(
    batch: pa.RecordBatch | pa.Table, trip: TripFile, first_row: int, predictor: Predictor, with_actual: bool
) -> Scored:
    """Score the rides the contract accepts; keep the others, with their reason, as rejects."""
    pickup_zone, dropoff_zone, distance = (_floats(batch.column(name)) for name in RIDE_FIELDS)
    reason = reject_reasons(pickup_zone, dropoff_zone, distance)
    accepted = reason < 0
    rows = np.arange(first_row, first_row + len(reason), dtype=np.int64)
    pickup_time = _microseconds(batch.column(trip.pickup))
    keep = pa.array(accepted)
    pu, do, miles = pickup_zone[accepted].astype(np.int64), dropoff_zone[accepted].astype(np.int64), distance[accepted]
    predicted = predictor.predict_columns(pu, do, miles)
    columns = {
        "ride_id": ride_ids(trip.period, rows[accepted]),
        PICKUP: pickup_time.filter(keep),
        "PULocationID": pu,
        "DOLocationID": do,
        "trip_distance": miles,
    }
    if with_actual:  # null for a file without drop-off times, scored beside files with them
        actual = _minutes(batch, trip).filter(keep) if trip.dropoff else pa.nulls(len(pu), pa.float64())
        columns |= {"actual_duration": actual, "diff": pc.subtract(actual, pa.array(predicted))}
    columns |= {"predicted_duration": predicted, "model_version": pa.repeat(predictor.model_version, len(pu))}
    rides = pa.table(columns, schema=scored_schema(with_actual))
    rejected = ~accepted
    rejects = pa.table(
        {
            "ride_id": ride_ids(trip.period, rows[rejected]),
            "source": pa.repeat(trip.location, int(rejected.sum())),
            "reason": pa.array(np.asarray(REASONS, dtype=object)[reason[rejected]], pa.string()),
            PICKUP: pickup_time.filter(pa.array(rejected)),
            "PULocationID": pickup_zone[rejected],
            "DOLocationID": dropoff_zone[rejected],
            "trip_distance": distance[rejected],
        },
        schema=REJECTS_SCHEMA,
    )
    counts = np.bincount(reason[rejected], minlength=len(REASONS))
    return Scored(rides, rejects, Counter({REASONS[i]: int(n) for i, n in enumerate(counts) if n}))


def ride_ids(period: str, rows: np.ndarray) -> pa.Array:
    """The course's ride ids: "YYYY/MM_<row index in its file>"."""
    return pc.binary_join_element_wise(f"{period}_", pa.array(rows).cast(pa.string()), "")


def _floats(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    # Nulls become NaN: the contract refuses both as a missing value. int64 -> float64 is exact up
    # to 2**53, and anything that large is out of the zone range either way.
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    # Unsafe: an integer beyond 2**53 (or a uint64) rounds instead of failing; it is refused anyway.
    return pc.fill_null(pc.cast(column, pa.float64(), safe=False), NAN).to_numpy(zero_copy_only=True)


def _microseconds(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    # TLC files hold whole seconds; pandas writes nanoseconds. Microseconds, truncated, for every file.
    return pc.cast(column, TIMESTAMP, safe=False)


def _minutes(batch: pa.RecordBatch | pa.Table, trip: TripFile) -> pa.Array:
    """Drop-off minus pickup, in minutes; null when either is missing."""
    start = _microseconds(batch.column(trip.pickup))
    end = _microseconds(batch.column(trip.dropoff))
    microseconds = pc.subtract(end.cast(pa.int64()), start.cast(pa.int64()))
    return pc.divide(microseconds.cast(pa.float64()), 60e6)
