"""Fixtures shared by every suite: small TLC-shaped data the tests make themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline

from harness.trips import OUTLIER_MINUTES, make_trips, write_trips
from web_service.features import prepare_features_frame

REPO = Path(__file__).resolve().parents[1]


def make_rides(rows: int, seed: int) -> list[dict]:
    """Rides as clients send them: every zone 1..265, distances including 0 and long ones."""
    rng = np.random.default_rng(seed)
    return [
        {"PULocationID": int(pu), "DOLocationID": int(do), "trip_distance": float(dist)}
        for pu, do, dist in zip(
            rng.integers(1, 266, rows),
            rng.integers(1, 266, rows),
            rng.exponential(3.0, rows).round(2),
            strict=True,
        )
    ]


@pytest.fixture(scope="session")
def trips() -> pd.DataFrame:
    return make_trips()


@pytest.fixture(scope="session")
def train_parquet(tmp_path_factory) -> Path:
    return write_trips(tmp_path_factory.mktemp("data") / "green_train.parquet", rows=800, seed=1)


@pytest.fixture(scope="session")
def valid_parquet(tmp_path_factory) -> Path:
    return write_trips(tmp_path_factory.mktemp("data") / "green_valid.parquet", rows=300, seed=2)


@pytest.fixture(scope="session")
def linear_pipeline(trips) -> Pipeline:
    """A small real model: the course's DictVectorizer + LinearRegression on generated rides."""
    rides = trips.iloc[len(OUTLIER_MINUTES) :]
    durations = (rides["lpep_dropoff_datetime"] - rides["lpep_pickup_datetime"]).dt.total_seconds() / 60
    pipeline = Pipeline([("dictvectorizer", DictVectorizer()), ("model", LinearRegression())])
    return pipeline.fit(prepare_features_frame(rides), durations)


# Lines tests ask to report (such as schemathesis' case count); they close the run's output.
SUMMARY = pytest.StashKey[list]()


def pytest_terminal_summary(terminalreporter, config) -> None:
    for line in config.stash.get(SUMMARY, []):
        terminalreporter.write_line(line)
