"""TLC-typed trip files, the default model and a way to run the batch command, for batch scoring's tests."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import REPO
from web_service.predictor import Predictor
from web_service_mlflow.batch.__main__ import main
from web_service_mlflow.layout import LOCAL_STORE
from web_service_mlflow.loader import load_from_env
from web_service_mlflow.settings import default_run_id

DEFAULT_RUN = default_run_id(LOCAL_STORE)
# What the environment may say about the model: cleared, so that the default run is used unless a test says otherwise.
MODEL_VARIABLES = ("RUN_ID", "MODEL_URI", "MLFLOW_TRACKING_URI", "MODEL_ARTIFACT_ROOT", "MODEL_ARTIFACT_PATH")
PREFIXES = {"green": "lpep_", "yellow": "tpep_", "plain": ""}
# Every BAD_EVERY-th row is a ride the API refuses, cycling through these (column, value) changes.
BAD_EVERY = 37
BAD_CHANGES = (
    ("trip_distance", 612.0),
    ("trip_distance", -1.5),
    ("PULocationID", 0),
    ("DOLocationID", 266),
    ("trip_distance", None),
)
SUMMARY = re.compile(
    r"scored (?P<scored>[\d,]+) rides, rejected (?P<rejected>[\d,]+)(?: \((?P<reasons>[^)]*)\))?, "
    r"from (?P<files>\d+) files? in (?P<seconds>[\d.]+) s: (?P<rate>[\d,]+) rides/s"
)


def tlc_table(rows: int, seed: int = 0, color: str = "green", dropoff: bool = True, bad: bool = True) -> pa.Table:
    """Trip records with the TLC's column types: int64 zones, float64 miles, timestamp[us] times.

    `color` names the time columns: green (lpep_*), yellow (tpep_*) or plain (pickup_datetime).
    With `bad`, every BAD_EVERY-th row holds a value the API refuses (BAD_CHANGES, in turn).
    """
    rng = np.random.default_rng(seed)
    start = np.datetime64("2021-01-01T00:00:00", "us")
    pickup = start + rng.integers(0, 31 * 86400, rows).astype("timedelta64[s]")
    seconds = rng.integers(60, 3600, rows).astype("timedelta64[s]")
    columns = {
        "PULocationID": rng.integers(1, 266, rows).tolist(),
        "DOLocationID": rng.integers(1, 266, rows).tolist(),
        "trip_distance": rng.gamma(2.0, 1.5, rows).round(2).tolist(),
    }
    if bad:
        for number, row in enumerate(range(0, rows, BAD_EVERY)):
            name, value = BAD_CHANGES[number % len(BAD_CHANGES)]
            columns[name][row] = value
    prefix = PREFIXES[color]
    table = {"VendorID": pa.array(rng.integers(1, 3, rows), pa.int64())}
    table[f"{prefix}pickup_datetime"] = pa.array(pickup, pa.timestamp("us"))
    if dropoff:
        table[f"{prefix}dropoff_datetime"] = pa.array(pickup + seconds, pa.timestamp("us"))
    table |= {
        "PULocationID": pa.array(columns["PULocationID"], pa.int64()),
        "DOLocationID": pa.array(columns["DOLocationID"], pa.int64()),
        "passenger_count": pa.array(rng.integers(1, 5, rows).astype(float), pa.float64()),
        "trip_distance": pa.array(columns["trip_distance"], pa.float64()),
        "fare_amount": pa.array(rng.gamma(3.0, 4.0, rows).round(2), pa.float64()),
    }
    return pa.table(table)


def write_tlc(path: Path, rows: int = 500, seed: int = 0, color: str = "green", dropoff: bool = True,
              row_group_size: int | None = None) -> Path:  # fmt: skip
    pq.write_table(tlc_table(rows, seed, color, dropoff), path, row_group_size=row_group_size)
    return path


def write_pandas_trips(path: Path, rows: int = 400, seed: int = 5) -> Path:
    """A file as pandas writes it: zones holding nulls become float64 with NaN, times nanoseconds."""
    rng = np.random.default_rng(seed)
    pickup = pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 31 * 86400, rows), unit="s")
    frame = pd.DataFrame(
        {
            "lpep_pickup_datetime": pickup,
            "lpep_dropoff_datetime": pickup + pd.to_timedelta(rng.integers(60, 3600, rows), unit="s"),
            "PULocationID": rng.integers(1, 266, rows).astype(float),
            "DOLocationID": rng.integers(1, 266, rows).astype(float),
            "trip_distance": rng.gamma(2.0, 1.5, rows).round(2),
        }
    )
    frame.loc[::23, "PULocationID"] = np.nan
    frame.loc[5::29, "DOLocationID"] = np.nan
    frame.to_parquet(path)
    return path


# --- what the contract says, ride by ride ---------------------------------------------------------


def _absent(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def zone_problem(value: float | None) -> str | None:
    if _absent(value):
        return "missing"
    if not 1 <= value <= 265:
        return "out_of_range"
    return None if value == math.floor(value) else "not_an_integer"


def distance_problem(value: float | None) -> str | None:
    if _absent(value):
        return "missing"
    if math.isinf(value):
        return "not_finite"
    if value < 0:
        return "negative"
    return "too_large" if value >= 500 else None


def expected_reason(pickup: float | None, dropoff: float | None, distance: float | None) -> str | None:
    """A ride's first reason in REASONS' order (zones, then distance), or None when the API accepts it."""
    for field, problem in (
        ("PULocationID", zone_problem(pickup)),
        ("DOLocationID", zone_problem(dropoff)),
        ("trip_distance", distance_problem(distance)),
    ):
        if problem:
            return f"{field}_{problem}"
    return None


def expected_reasons(table: pa.Table) -> list[str | None]:
    """expected_reason of every row, values as a JSON client would send them."""
    columns = (table.column(name).to_pylist() for name in ("PULocationID", "DOLocationID", "trip_distance"))
    return [expected_reason(*values) for values in zip(*columns, strict=True)]


# --- running the command --------------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    scored: int
    rejected: int
    reasons: Counter
    files: int
    seconds: float
    rate: int


def parse_summary(line: str) -> Summary:
    found = SUMMARY.fullmatch(line)
    assert found, line
    reasons = Counter()
    for item in (found["reasons"] or "").split(", "):
        if item:
            reason, count = item.rsplit(" ", 1)
            reasons[reason] = int(count.replace(",", ""))
    number = lambda name: int(found[name].replace(",", ""))  # noqa: E731
    return Summary(number("scored"), number("rejected"), reasons, int(found["files"]), float(found["seconds"]),
                   number("rate"))  # fmt: skip


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> Path:
    """One model cache for the batch tests: the default run's compiled form is made once."""
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture
def model_environment(monkeypatch, model_cache) -> None:
    """The default run, whatever the environment the tests run in says; the session's model cache.

    Not autouse: the Spark engine's tests beside these keep their own environment. Each module here
    asks for it with `pytestmark = pytest.mark.usefixtures("model_environment")`.
    """
    for name in MODEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MODEL_CACHE_DIR", str(model_cache))


@pytest.fixture(scope="session")
def default_predictor(model_cache) -> Predictor:
    return load_from_env({"MODEL_CACHE_DIR": str(model_cache)})[1]


@pytest.fixture
def score(capsys):
    """Run the command in this process; its summary, parsed."""

    def run(*argv: str | Path) -> Summary:
        assert main([str(arg) for arg in argv]) == 0
        return parse_summary(capsys.readouterr().out.strip().splitlines()[-1])

    return run


def batch_command(*args: str | Path, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    """`python -m web_service_mlflow.batch ARGS` with the environment of the test (and `env`)."""
    return subprocess.run(
        [sys.executable, "-m", "web_service_mlflow.batch", *map(str, args)],
        cwd=REPO, env=os.environ | {"PYTHONPATH": str(REPO)} | env,
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def listing(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())
