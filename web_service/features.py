"""The one feature transformation shared by training, serving and batch scoring.

A ride becomes ``{"PU_DO": "<PU>_<DO>", "trip_distance": <float>}``. Keeping the row form and the
DataFrame form side by side, and testing that they agree, is what stops training/serving skew.
"""

from __future__ import annotations

from collections.abc import Mapping
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
    pu_do = rides["PULocationID"].astype("int64").astype(str) + "_" + rides["DOLocationID"].astype("int64").astype(str)
    distance = rides["trip_distance"].astype("float64")
    return [
        {"PU_DO": key, "trip_distance": value} for key, value in zip(pu_do.tolist(), distance.tolist(), strict=True)
    ]
