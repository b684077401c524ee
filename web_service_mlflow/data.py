"""Read NYC TLC trip records into the rides the model trains and scores on."""

from __future__ import annotations

import pandas as pd

from web_service.features import RIDE_FIELDS

# Green cabs say lpep_*, yellow cabs tpep_*; everything else the model uses is shared.
PICKUP_DROPOFF = (
    ("lpep_pickup_datetime", "lpep_dropoff_datetime"),
    ("tpep_pickup_datetime", "tpep_dropoff_datetime"),
)
MIN_MINUTES, MAX_MINUTES = 1.0, 60.0


class TripDataError(ValueError):
    """The file is not TLC trip data this project can read."""


def read_rides(source: str) -> pd.DataFrame:
    """Read a TLC parquet file (path or URL) into rides with a `duration` in minutes.

    Keeps rides of 1 to 60 minutes, as the course does, and drops rows missing a feature.
    """
    trips = _read_parquet(source)
    pickup, dropoff = _timestamp_columns(trips, source)
    missing = [name for name in RIDE_FIELDS if name not in trips.columns]
    if missing:
        raise TripDataError(f"{source}: no column {', '.join(missing)}; is this TLC trip data?")
    rides = trips[list(RIDE_FIELDS)].copy()
    rides["duration"] = (trips[dropoff] - trips[pickup]).dt.total_seconds() / 60
    rides = rides.dropna()
    keep = rides["duration"].between(MIN_MINUTES, MAX_MINUTES)
    return rides[keep].reset_index(drop=True)


def _read_parquet(source: str) -> pd.DataFrame:
    try:
        return pd.read_parquet(source)
    except FileNotFoundError:  # pyarrow's says only the path
        raise TripDataError(f"{source}: no such file") from None
    except (OSError, ValueError) as error:  # unreadable, unreachable, or not parquet (pyarrow's ArrowInvalid)
        raise TripDataError(f"{source}: cannot read it as a parquet file ({error})") from None


def _timestamp_columns(trips: pd.DataFrame, source: str) -> tuple[str, str]:
    for pickup, dropoff in PICKUP_DROPOFF:
        if pickup in trips.columns and dropoff in trips.columns:
            return pickup, dropoff
    raise TripDataError(f"{source}: found neither lpep_* (green) nor tpep_* (yellow) pickup and dropoff columns")
