"""Real servers on loopback for the model-source tests: SeaweedFS as S3, `mlflow server`."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.conftest import SMALL_FOREST, train_cli
from tests.integration.servers import S3Server, TrackingServer, s3_server, tracking_server

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


@pytest.fixture(scope="module")
def s3(tmp_path_factory) -> S3Server:
    with s3_server(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture(scope="module")
def tracking(tmp_path_factory, s3) -> TrackingServer:
    with tracking_server(tmp_path_factory.mktemp("tracking"), s3) as server:
        yield server


@pytest.fixture(scope="module")
def registered(tmp_path_factory, tracking, train_parquet, valid_parquet) -> tuple[Run, Run]:
    """Two versions of one registered model; @production points at the first."""
    workdir = tmp_path_factory.mktemp("train")
    first = train_run(
        workdir,
        tracking,
        train_parquet,
        valid_parquet,
        "--register",
        REGISTERED_NAME,
        "--alias",
        "production",
    )
    second = train_run(
        workdir, tracking, train_parquet, valid_parquet, "--register", REGISTERED_NAME, "--random-state", "7"
    )
    return first, second
