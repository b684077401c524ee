"""A run trained once per session into a temporary MLflow store, through the real CLI."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.trips import SMALL_FOREST, train_cli


@dataclass(frozen=True)
class TrainedRun:
    run_id: str
    tracking_uri: str  # sqlite:///<tmp>/mlflow.db
    store: Path  # <tmp>/mlruns, MLflow's default artifact root for that store
    stdout: str
    stderr: str


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, train_parquet, valid_parquet) -> TrainedRun:
    workdir = tmp_path_factory.mktemp("mlflow")
    done = train_cli(workdir, "--train", str(train_parquet), "--valid", str(valid_parquet), *SMALL_FOREST)
    assert done.returncode == 0, done.stderr
    return TrainedRun(
        run_id=done.stdout.strip().splitlines()[-1],
        tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}",
        store=workdir / "mlruns",
        stdout=done.stdout,
        stderr=done.stderr,
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Whatever uses `trained_run` waits for the training command, in a subprocess: `slow`, out of make test-fast."""
    for item in items:
        if "trained_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
