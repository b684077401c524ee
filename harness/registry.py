"""Registered models on a real `mlflow server`: runs trained by the training command, versions, aliases."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness.backends import TrackingServer, s3_server, tracking_server
from harness.trips import SMALL_FOREST, train_cli, write_trips

REGISTERED_NAME = "ride-duration"


@dataclass(frozen=True)
class Run:
    run_id: str
    experiment_id: str


def train_run(workdir, tracking: TrackingServer, train_parquet, valid_parquet, *extra: str, **env: str) -> Run:
    """Train a small run through the tracking server; its artifacts land in S3 via the proxy."""
    workdir.mkdir(parents=True, exist_ok=True)
    done = train_cli(
        workdir, "--train", str(train_parquet), "--valid", str(valid_parquet), *SMALL_FOREST, *extra,
        tracking_uri=tracking.url, **env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.split()[-1]
    from mlflow import MlflowClient

    return Run(run_id, MlflowClient(tracking.url).get_run(run_id).info.experiment_id)


def register_two_versions(workdir: Path, tracking: TrackingServer, train_parquet, valid_parquet) -> tuple[Run, Run]:
    """Two versions of one registered model, told apart by their forests' seeds; @production on the first."""
    first = train_run(workdir, tracking, train_parquet, valid_parquet, "--register", REGISTERED_NAME,
                      "--alias", "production")  # fmt: skip
    second = train_run(workdir, tracking, train_parquet, valid_parquet, "--register", REGISTERED_NAME,
                       "--random-state", "7")  # fmt: skip
    return first, second


@contextmanager
def two_registered_versions(workdir: Path) -> Iterator[tuple[TrackingServer, str, str, str]]:
    """S3, a tracking server and two registered versions, for a benchmark outside pytest's fixtures."""
    data = workdir / "data"
    data.mkdir(parents=True, exist_ok=True)
    train = write_trips(data / "green_train.parquet", rows=800, seed=1)
    valid = write_trips(data / "green_valid.parquet", rows=300, seed=2)
    with s3_server(workdir / "s3") as s3, tracking_server(workdir / "tracking", s3) as tracking:
        first, second = register_two_versions(workdir / "train", tracking, train, valid)
        yield tracking, first.run_id, second.run_id, REGISTERED_NAME
