"""Commands whose packages `make run` and the image leave out say in one line what to install."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO
from web_service.errors import SettingsError
from web_service_mlflow import needs
from web_service_mlflow.loader import make_source
from web_service_mlflow.needs import MissingPackage, missing
from web_service_mlflow.settings import ModelSettings


def run_without(package: str, command: str) -> subprocess.CompletedProcess:
    """`python -m <command> --help` in a process where `package` cannot be imported (as after `make install`)."""
    script = f"import runpy, sys; sys.modules[{package!r}] = None; sys.argv = ['x', '--help']; " \
             f"runpy.run_module({command!r}, run_name='__main__')"  # fmt: skip
    env = os.environ | {"PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("package", "command", "category"),
    [
        ("pyarrow", "web_service_mlflow.batch", "batch"),
        ("pyarrow", "web_service_mlflow.monitor", "monitor"),  # through batch's imports: named as monitor's
        ("pandas", "web_service_mlflow.monitor.profile", "monitor"),
        ("pandas", "web_service_mlflow.parity", "batch"),
        ("pandas", "web_service_mlflow.train", "train"),
    ],
)
def test_a_command_missing_a_package_names_it_and_the_category_in_one_line(package, command, category):
    done = run_without(package, command)

    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"python -m {command}: needs {package}, which this environment lacks (the serving install leaves it out): "
        f'pipenv install --categories "packages {category}" (make install-dev installs every category)'
    ]


def test_a_missing_module_that_no_category_brings_is_raised_as_it_is():
    error = ModuleNotFoundError("No module named 'web_service_mlflow.gone'", name="web_service_mlflow.gone")

    assert missing(error, "python -m web_service_mlflow.batch", "batch") is error
    assert isinstance(missing(ModuleNotFoundError(name="pyarrow.parquet"), "x", "batch"), MissingPackage)


def test_a_tracking_database_without_sqlalchemy_is_refused_at_start_saying_what_to_do(monkeypatch):
    monkeypatch.setattr(needs, "find_spec", lambda name: None if name == "sqlalchemy" else object())
    settings = ModelSettings.from_env({"RUN_ID": "a" * 32, "MLFLOW_TRACKING_URI": "sqlite:///mlruns/mlflow.db"})

    with pytest.raises(SettingsError) as raised:
        make_source(settings)

    assert raised.value.message == (
        "MLFLOW_TRACKING_URI=sqlite:///mlruns/mlflow.db: a tracking database is read with SQLAlchemy, which the "
        "serving install leaves out: serve the run through its tracking server (mlflow server --backend-store-uri "
        'sqlite:...), or pipenv install --categories "packages train"'
    )


def test_a_tracking_server_or_a_database_with_sqlalchemy_is_no_concern_of_it():
    needs.tracking_client("http://mlflow.internal:5000")
    needs.tracking_client("sqlite:///mlruns/mlflow.db")  # the test environment has SQLAlchemy
    needs.tracking_client(None)
