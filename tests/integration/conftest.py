"""Real servers on loopback for the model-source tests: SeaweedFS as S3, `mlflow server`."""

from __future__ import annotations

import pytest

from harness.backends import S3Server, TrackingServer, s3_server, tracking_server
from harness.registry import Run, register_two_versions


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
    return register_two_versions(tmp_path_factory.mktemp("train"), tracking, train_parquet, valid_parquet)
