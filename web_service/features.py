"""The one feature transformation shared by training, serving and batch scoring.

A ride becomes ``{"PU_DO": "<PU>_<DO>", "trip_distance": <float>}``. Keeping the row form and the
DataFrame form side by side, and testing that they agree, is what stops training/serving skew.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas stays off the serving path's imports
    import pandas as pd

RIDE_FIELDS = ("PULocationID", "DOLocationID", "trip_distance")
FEATURE_NAMES = ("PU_DO", "trip_distance")


def prepare_features(ride: Mapping[str, Any]) -> dict[str, str | float]:
    """Turn one ride into the feature dict the DictVectorizer was fitted on."""
    return {
        "PU_DO": f"{int(ride['PULocationID'])}_{int(ride['DOLocationID'])}",
        "trip_distance": float(ride["trip_distance"]),
    }


def prepare_features_frame(rides: pd.DataFrame) -> list[dict[str, str | float]]:
    """Vectorised `prepare_features` for a DataFrame of rides; gives identical dicts, row by row."""
    return prepare_features_columns(
        rides["PULocationID"].astype("int64").tolist(),
        rides["DOLocationID"].astype("int64").tolist(),
        rides["trip_distance"].astype("float64").tolist(),
    )


def prepare_features_columns(
    pickup: Sequence[int], dropoff: Sequence[int], distance: Sequence[float]
) -> list[dict[str, str | float]]:
    """`prepare_features` for rides given as columns of Python ints and floats (batch scoring's form)."""
    return [
        {"PU_DO": f"{int(pu)}_{int(do)}", "trip_distance": float(miles)}
        for pu, do, miles in zip(pickup, dropoff, distance, strict=True)
    ]
