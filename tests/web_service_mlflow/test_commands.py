"""Every command of the project answers bad input with one line on stderr and a non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.trips import train_cli
from tests.conftest import REPO
from web_service_mlflow.layout import DEFAULT_RUN_FILE, LOCAL_STORE

pytestmark = pytest.mark.slow  # each command run in a subprocess

NOT_PARQUET = "not a parquet file"


@pytest.fixture(params=["missing", "not-parquet"])
def bad_file(request, tmp_path) -> tuple[Path, str]:
    """A path the commands cannot read rides from, and the start of what they must say about it."""
    path = tmp_path / f"{request.param}.parquet"
    if request.param == "missing":
        return path, f"{path}: no such file"
    path.write_text("PULocationID,DOLocationID\n10,50\n")  # CSV, not parquet
    return path, f"{path}: cannot read it as a parquet file (Could not open Parquet input source '{path}'"


def command(module: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    env = os.environ | {"PYTHONPATH": str(REPO)} | env
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip


def assert_one_line(done: subprocess.CompletedProcess, start: str) -> None:
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("cannot ")]
    assert len(errors) == 1 and errors[0].startswith(start), done.stderr
    assert done.stderr.splitlines()[-1] == errors[0]


def test_train_says_in_one_line_which_file_it_cannot_read_and_leaves_no_tracking_store(tmp_path, bad_file,
                                                                                        valid_parquet):  # fmt: skip
    path, says = bad_file
    workdir = tmp_path / "work"
    workdir.mkdir()

    done = train_cli(workdir, "--train", str(path), "--valid", str(valid_parquet))

    assert_one_line(done, f"cannot train: {says}")
    assert list(workdir.iterdir()) == []  # read before MLflow is touched: no mlflow.db, no mlruns/
    assert done.stdout == ""


def test_embed_says_in_one_line_which_file_it_cannot_read_and_keeps_the_default_run(bad_file, valid_parquet):
    path, says = bad_file
    default = (LOCAL_STORE / DEFAULT_RUN_FILE).read_text()

    done = command("web_service_mlflow.embed", "--train", str(path), "--valid", str(valid_parquet))

    assert_one_line(done, f"cannot embed: {says}")
    assert (LOCAL_STORE / DEFAULT_RUN_FILE).read_text() == default


def test_parity_says_in_one_line_which_file_it_cannot_read(tmp_path, bad_file):
    path, says = bad_file

    done = command("web_service_mlflow.parity", "--rides", str(path), MODEL_CACHE_DIR=str(tmp_path / "cache"))

    assert_one_line(done, f"cannot check parity: {says}")


def test_parity_says_in_one_line_that_the_service_does_not_answer(tmp_path, train_parquet):
    done = command("web_service_mlflow.parity", "--url", "http://127.0.0.1:9/predict", "--rides", str(train_parquet),
                   MODEL_CACHE_DIR=str(tmp_path / "cache"))  # fmt: skip

    assert_one_line(done, "cannot check parity: HTTPConnectionPool(host='127.0.0.1', port=9)")


def test_parity_says_in_one_line_that_a_setting_names_no_model(train_parquet):
    done = command("web_service_mlflow.parity", "--rides", str(train_parquet), RUN_ID="latest")

    assert_one_line(done, "cannot check parity: RUN_ID must be an MLflow run ID")


def test_the_healthcheck_says_in_one_line_that_port_is_not_a_number():
    done = command("web_service.healthcheck", PORT="abc")

    assert done.returncode == 1
    assert done.stderr == "not ready: PORT must be a whole number from 1 to 65535, got 'abc'\n"


@pytest.mark.parametrize(
    ("url", "says"),
    [("foo", "unknown url type: 'foo'"), ("http://127.0.0.1:abc/predict", "nonnumeric port: 'abc'")],
)
def test_test_py_says_in_one_line_that_its_url_is_not_one(url, says):
    done = subprocess.run([sys.executable, "test.py", url], cwd=REPO, capture_output=True, text=True, timeout=30,
                          check=False)  # fmt: skip

    assert done.returncode == 1
    assert done.stderr == f"cannot post to {url}: {says}\n"
