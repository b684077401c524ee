"""Small TLC-shaped trip data and the training command, for tests and benchmarks that train a run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from harness import REPO

SMALL_FOREST = ["--n-estimators", "12", "--max-depth", "6", "--min-samples-leaf", "3", "--random-state", "1"]


def train_cli(workdir: Path, *args: str, tracking_uri: str | None = None, **env: str) -> subprocess.CompletedProcess:
    """Run the training command in `workdir`, against a sqlite store there unless told otherwise."""
    tracking_uri = tracking_uri or f"sqlite:///{workdir / 'mlflow.db'}"
    full_env = os.environ | env | {"MLFLOW_TRACKING_URI": tracking_uri, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "web_service_mlflow.train", *args],
        cwd=workdir,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


# Rides outside 1..60 minutes that every generated file carries, at its head.
OUTLIER_MINUTES = [0.5, 61.0, 120.0, -3.0, 0.2]


def make_trips(rows: int = 600, seed: int = 0, color: str = "green") -> pd.DataFrame:
    """A TLC-shaped trip table: green (lpep_*) or yellow (tpep_*) columns, a few outliers."""
    rng = np.random.default_rng(seed)
    prefix = {"green": "lpep", "yellow": "tpep"}[color]
    pickup = pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 31 * 86400, rows), unit="s")
    distance = rng.gamma(2.0, 1.5, rows).round(2)
    pickup_zone = rng.integers(1, 266, rows)
    dropoff_zone = rng.integers(1, 266, rows)
    minutes = np.clip(4 + 3 * distance + (pickup_zone % 7) + rng.normal(0, 2, rows), 1.5, 59)
    minutes[: len(OUTLIER_MINUTES)] = OUTLIER_MINUTES
    return pd.DataFrame(
        {
            "VendorID": rng.integers(1, 3, rows),
            f"{prefix}_pickup_datetime": pickup,
            f"{prefix}_dropoff_datetime": pickup + pd.to_timedelta(minutes * 60, unit="s"),
            "PULocationID": pickup_zone,
            "DOLocationID": dropoff_zone,
            "passenger_count": rng.integers(1, 5, rows).astype(float),
            "trip_distance": distance,
            "fare_amount": (2.5 + 2.5 * distance).round(2),
        }
    )


def write_trips(path: Path, **kwargs) -> Path:
    make_trips(**kwargs).to_parquet(path)
    return path
