"""Synthetic TLC months for the monitor's tests, and a way to run the report command.

The zones are skewed as real ones are (a few dozen zones hold most rides): with 265 equally likely
zones every zone is under drift's 0.5 % pooling line, all pool into "other" and no zone move could
ever show. Actual durations are the default model's prediction plus noise, so that its error on
them is a known, quiet one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import REPO
from tests.web_service_mlflow.batch.conftest import (  # noqa: F401  (fixtures, registered by importing them)
    DEFAULT_RUN,
    MODEL_VARIABLES,
    batch_command,
    default_predictor,
    model_cache,
    tlc_table,
)
from web_service.drift import build_profile
from web_service.predictionlog import PredictionLog
from web_service.predictor import Predictor
from web_service_mlflow.layout import LOCAL_STORE, PROFILE_FILE, REFERENCE_ARTIFACT, run_artifacts
from web_service_mlflow.monitor.rides import read_rides

RIDES = 12_000
ZONES = np.random.default_rng(99).permutation(np.arange(1, 266))  # most popular first
POPULARITY = 1 / np.arange(1, 266) ** 1.1
POPULARITY /= POPULARITY.sum()
NOISE_MINUTES = 4.0  # the default run's validation RMSE is 6.76: these errors stay well under it


def trip_table(predictor: Predictor, rides: int = RIDES, seed: int = 0, distance_scale: float = 1.0,
               moved_pickups: float = 0.0) -> pa.Table:  # fmt: skip
    """A green TLC month: skewed zones, gamma distances, durations near `predictor`'s answers.

    `distance_scale` stretches the distances after the durations are drawn (longer trips
    reported for the same rides); `moved_pickups` moves that share of the pickups to the least
    used zones.
    """
    rng = np.random.default_rng(seed)
    pickup, dropoff = rng.choice(ZONES, rides, p=POPULARITY), rng.choice(ZONES, rides, p=POPULARITY)
    distance = rng.gamma(2.0, 1.5, rides).round(2)
    minutes = np.clip(predictor.predict_columns(pickup, dropoff, distance) + rng.normal(0, NOISE_MINUTES, rides),
                      1.5, 59.5)  # fmt: skip
    moved = rng.random(rides) < moved_pickups
    pickup[moved] = rng.choice(ZONES[-100:], moved.sum())
    table = tlc_table(rides, seed, bad=False)
    start = table.column("lpep_pickup_datetime").to_numpy()
    columns = {
        "lpep_dropoff_datetime": pa.array(start + (minutes * 60e6).astype("timedelta64[us]"), pa.timestamp("us")),
        "PULocationID": pa.array(pickup, pa.int64()),
        "DOLocationID": pa.array(dropoff, pa.int64()),
        "trip_distance": pa.array((distance * distance_scale).round(2), pa.float64()),
    }
    for name, values in columns.items():
        table = table.set_column(table.schema.get_field_index(name), name, values)
    return table


def write_log(path: Path, predictor: Predictor, model_version: str, seed: int = 7, per_line: int = 100) -> Path:
    """A PREDICTION_LOG written by the service's own writer: one JSON line per request of `per_line` rides."""
    table = trip_table(predictor, seed=seed)
    rides = [{name: table.column(name)[i].as_py() for name in ("PULocationID", "DOLocationID", "trip_distance")}
             for i in range(table.num_rows)]  # fmt: skip
    durations = predictor.predict(rides)
    log = PredictionLog(path)
    for first in range(0, len(rides), per_line):
        log.record(f"r{first}", model_version, rides[first : first + per_line], durations[first : first + per_line])
    assert log.flush(timeout=30)
    with path.open("a") as handle:
        handle.write('{"ts": "2021-02-01T00:00:00.000+00:00", "rides": [{"PULoc\n')  # a line torn by a crash
    return path


@dataclass(frozen=True)
class Data:
    """The files every monitor test reads, made once per session."""

    folder: Path
    reference: Path
    same: Path  # another month from the reference's generator
    longer: Path  # the same rides, distances x1.3
    moved: Path  # a third of the pickups moved to rarely used zones
    log: Path  # a prediction log, by another model version
    batch_output: Path  # `same`, scored by the real batch command


@pytest.fixture(scope="session")
def data(tmp_path_factory, default_predictor, model_cache) -> Data:  # noqa: F811
    folder = tmp_path_factory.mktemp("monitor-data")
    files = {
        "reference": trip_table(default_predictor, seed=1),
        "same": trip_table(default_predictor, seed=2),
        "longer": trip_table(default_predictor, seed=2, distance_scale=1.3),
        "moved": trip_table(default_predictor, seed=2, moved_pickups=1 / 3),
    }
    for name, table in files.items():
        pq.write_table(table, folder / f"{name}.parquet")
    # The batch command wants the month in the file's name, for the ride ids.
    month = shutil.copy(folder / "same.parquet", folder / "green_tripdata_2021-02.parquet")
    done = batch_command(month, "--output", folder / "scored.parquet", **model_env(model_cache))
    assert done.returncode == 0, done.stderr
    return Data(folder, folder / "reference.parquet", folder / "same.parquet", folder / "longer.parquet",
                folder / "moved.parquet", write_log(folder / "predictions.jsonl", default_predictor, "0" * 32),
                folder / "scored.parquet")  # fmt: skip


def model_env(cache: Path) -> dict[str, str]:
    """The default run whatever the test's own environment names (blank is unset), and the session's cache."""
    return {name: "" for name in MODEL_VARIABLES} | {"MODEL_CACHE_DIR": str(cache)}


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str
    output: Path | None

    @property
    def report(self) -> dict[str, Any]:
        return json.loads((self.output / "report.json").read_text())

    @property
    def html(self) -> str:
        return (self.output / "report.html").read_text()


def monitor(cache: Path, *args: str | Path, output: Path | None = None, **env: str) -> Result:
    """`python -m web_service_mlflow.monitor ARGS [--output OUTPUT]` in a process of its own, with the default run."""
    argv = [*map(str, args), *(["--output", str(output)] if output else [])]
    done = subprocess.run(
        [sys.executable, "-m", "web_service_mlflow.monitor", *argv],
        cwd=REPO, env=os.environ | model_env(cache) | env | {"PYTHONPATH": str(REPO)},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    return Result(done.returncode, done.stdout, done.stderr, output)


def run_all(commands: dict[str, Callable[[], Result]]) -> dict[str, Result]:
    """Run every command at once: each is a process that mostly waits on its imports and the disk."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(command) for name, command in commands.items()}
        return {name: future.result() for name, future in futures.items()}


def copy_of_default_run(store: Path) -> Path:
    """The embedded default run in a store of its own, without its reference profile: ready to be given one."""
    artifacts = run_artifacts(LOCAL_STORE, DEFAULT_RUN)
    target = store / "1" / DEFAULT_RUN / "artifacts"
    shutil.copytree(artifacts, target, ignore=shutil.ignore_patterns(REFERENCE_ARTIFACT))
    return target


@pytest.fixture(scope="session")
def stores(tmp_path_factory, data: Data, default_predictor) -> dict[str, Path]:  # noqa: F811
    """Two copies of the default run: one given a profile of the reference file, one without any."""
    root = tmp_path_factory.mktemp("stores")
    profiled = copy_of_default_run(root / "profiled")
    rides = read_rides([str(data.reference)], default_predictor)
    profile = build_profile(rides.columns, {"valid_rmse": 6.7558}, source="reference.parquet", run_id=DEFAULT_RUN)
    (profiled / REFERENCE_ARTIFACT).mkdir()
    (profiled / REFERENCE_ARTIFACT / PROFILE_FILE).write_text(json.dumps(profile.to_json()))
    copy_of_default_run(root / "bare")
    return {"profiled": root / "profiled", "bare": root / "bare"}


@pytest.fixture(scope="session")
def reports(tmp_path_factory, data: Data, stores, model_cache) -> dict[str, Result]:  # noqa: F811
    """Every report of the tests, made at once: most read one of them each."""
    out = tmp_path_factory.mktemp("reports")
    ref = ("--reference", data.reference)
    run = partial(monitor, model_cache)
    return run_all({
        "same": partial(run, *ref, "--current", data.same, output=out / "same"),
        "longer": partial(run, *ref, "--current", data.longer, output=out / "longer"),
        "moved": partial(run, *ref, "--current", data.moved, output=out / "moved"),
        "log": partial(run, *ref, "--current", data.log, output=out / "log"),
        "batch output": partial(run, *ref, "--current", data.batch_output, output=out / "batch"),
        "mixed": partial(run, *ref, "--current", data.same, data.log, output=out / "mixed" / "deeper"),
        "run profile": partial(run, "--run-id", DEFAULT_RUN, "--current", data.longer, output=out / "run-profile",
                               MODEL_ARTIFACT_ROOT=str(stores["profiled"])),
        # The run's model with a file's profile; and a --min-rides that no column reaches.
        "run and file": partial(run, "--run-id", DEFAULT_RUN, *ref, "--current", data.same, "--min-rides", "20000",
                                output=out / "run-file"),
    })  # fmt: skip
