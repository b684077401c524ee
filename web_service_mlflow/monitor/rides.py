"""What the monitor compares, read into columns: TLC trip files, batch outputs, the prediction log.

Every kind ends as the same `Rides`: trip_distance, PULocationID and DOLocationID of the rides
the API accepts, with predicted_duration when something predicted them, actual_duration when
drop-off times are known, and a time per ride (pickup, or the moment the service answered).
TLC files go through batch scoring's own reader and contract checks, so a ride the service
would refuse is not counted here either.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from web_service.features import RIDE_FIELDS
from web_service.predictor import Predictor
from web_service_mlflow.batch.local import _batches
from web_service_mlflow.batch.rides import PICKUP, describe_file, score_batch
from web_service_mlflow.batch.storage import parquet_file, reading, shown
from web_service_mlflow.data import TripDataError

PREDICTED, ACTUAL, TIME = "predicted_duration", "actual_duration", "time"
# Columns of a batch output (web_service_mlflow.batch) that tell it from a TLC file.
BATCH_OUTPUT_COLUMNS = {"ride_id", PREDICTED, "model_version"}
LOG_SUFFIXES = (".jsonl", ".json", ".log", ".ndjson")


@dataclass
class Rides:
    """Rides as columns; `kinds` and `model_versions` say where they came from."""

    columns: dict[str, np.ndarray]
    sources: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    model_versions: list[str] = field(default_factory=list)
    skipped: int = 0  # rides the contract refuses, or log lines that are not predictions

    def __len__(self) -> int:
        return len(self.columns["trip_distance"])

    def has(self, name: str) -> bool:
        values = self.columns.get(name)
        return values is not None and len(values) > 0 and not bool(np.all(np.isnan(values)))


def read_rides(locations: Sequence[str], predictor: Predictor | None) -> Rides:
    """Read every location and put them end to end; TLC files are scored when `predictor` is given."""
    parts = [read_one(location, predictor) for location in locations]
    return concat(parts)


def read_one(location: str, predictor: Predictor | None) -> Rides:
    if location.endswith(LOG_SUFFIXES):
        return read_prediction_log(location)
    with parquet_file(location) as parquet:
        names = set(parquet.schema_arrow.names)
        if names >= BATCH_OUTPUT_COLUMNS:
            return _batch_output(location, parquet)
        return _trip_file(location, parquet, predictor)


def _batch_output(location: str, parquet) -> Rides:
    wanted = [name for name in (*RIDE_FIELDS, PREDICTED, ACTUAL, PICKUP, "model_version")
              if name in parquet.schema_arrow.names]  # fmt: skip
    with reading(location):
        table = parquet.read(columns=wanted)
    columns = {name: _numbers(table.column(name)) for name in (*RIDE_FIELDS, PREDICTED)}
    columns[ACTUAL] = _numbers(table.column(ACTUAL)) if ACTUAL in wanted else _nans(table.num_rows)
    columns[TIME] = _times(table.column(PICKUP)) if PICKUP in wanted else _no_times(table.num_rows)
    versions = pc.unique(table.column("model_version")).to_pylist() if "model_version" in wanted else []
    return Rides(columns, [shown(location)], ["batch output"], [v for v in versions if v])


class _NoModel:
    """Stands in for a predictor when none is given: TLC rides are read, not scored."""

    model_version = ""

    def predict_columns(self, pickup: np.ndarray, dropoff: np.ndarray, distance: np.ndarray) -> np.ndarray:
        return np.full(len(distance), np.nan)


def _trip_file(location: str, parquet, predictor: Predictor | None) -> Rides:
    trip = describe_file(location, parquet.schema_arrow, _row_groups(parquet), period="0000/00")
    scorer = predictor if predictor is not None else _NoModel()
    tables, skipped = [], 0
    for first_row, batch in _batches(parquet, trip, None):
        result = score_batch(batch, trip, first_row, scorer, with_actual=True)
        tables.append(result.rides)
        skipped += sum(result.reasons.values())
    if not tables:
        raise TripDataError(f"{shown(location)}: holds no rides")
    table = pa.concat_tables(tables)
    columns = {name: _numbers(table.column(name)) for name in (*RIDE_FIELDS, PREDICTED, ACTUAL)}
    columns[TIME] = _times(table.column(PICKUP))
    versions = [predictor.model_version] if predictor is not None else []
    return Rides(columns, [shown(location)], ["trip data"], versions, skipped)


def _row_groups(parquet) -> tuple[int, ...]:
    metadata = parquet.metadata
    return tuple(metadata.row_group(i).num_rows for i in range(metadata.num_row_groups))


def read_prediction_log(location: str) -> Rides:
    """The service's PREDICTION_LOG: one JSON line per request, its rides and their durations."""
    zones_pu, zones_do, distances, durations, times = [], [], [], [], []
    versions: dict[str, None] = {}
    skipped = 0
    path = Path(location)
    with reading(location):
        handle = path.open("rb")
    with handle:
        for line in handle:
            record = _record(line)
            if record is None:
                skipped += 1
                continue
            rides, predicted, when, version = record
            zones_pu += [ride["PULocationID"] for ride in rides]
            zones_do += [ride["DOLocationID"] for ride in rides]
            distances += [ride["trip_distance"] for ride in rides]
            durations += predicted
            times += [when] * len(rides)
            versions[version] = None
    if not distances:
        raise TripDataError(
            f"{location}: holds no prediction records ({skipped} lines that are not); is this the service's "
            "PREDICTION_LOG?"
        )
    columns = {
        "PULocationID": np.asarray(zones_pu, dtype=float),
        "DOLocationID": np.asarray(zones_do, dtype=float),
        "trip_distance": np.asarray(distances, dtype=float),
        PREDICTED: np.asarray(durations, dtype=float),
        ACTUAL: _nans(len(distances)),
        TIME: np.asarray(times, dtype="datetime64[us]"),
    }
    return Rides(columns, [location], ["prediction log"], [v for v in versions if v], skipped)


def _record(line: bytes) -> tuple[list[dict], list[float], np.datetime64, str] | None:
    """One log line's rides, durations, time and model; None for a line that is not one."""
    try:
        record = json.loads(line)
        rides, durations = record["rides"], record["durations"]
        if not isinstance(rides, list) or not isinstance(durations, list) or len(rides) != len(durations):
            return None
        for ride in rides:
            for name in RIDE_FIELDS:
                float(ride[name])
        when = np.datetime64(str(record.get("ts", "")).replace("+00:00", "").rstrip("Z") or "NaT", "us")
        return rides, [float(value) for value in durations], when, str(record.get("model_version", ""))
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def concat(parts: Iterable[Rides]) -> Rides:
    parts = list(parts)
    names = set.intersection(*(set(part.columns) for part in parts))
    columns = {name: np.concatenate([part.columns[name] for part in parts]) for name in names}
    return Rides(
        columns,
        [source for part in parts for source in part.sources],
        [kind for part in parts for kind in part.kinds],
        list(dict.fromkeys(version for part in parts for version in part.model_versions)),
        sum(part.skipped for part in parts),
    )


def _numbers(column: pa.ChunkedArray) -> np.ndarray:
    return pc.fill_null(pc.cast(column, pa.float64(), safe=False), float("nan")).to_numpy()


def _times(column: pa.ChunkedArray) -> np.ndarray:
    return pc.cast(column, pa.timestamp("us"), safe=False).to_numpy().astype("datetime64[us]")


def _nans(count: int) -> np.ndarray:
    return np.full(count, np.nan)


def _no_times(count: int) -> np.ndarray:
    return np.full(count, np.datetime64("NaT"), dtype="datetime64[us]")
