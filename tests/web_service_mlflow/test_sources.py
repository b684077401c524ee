"""MLflow's HTTP client gets the service's defaults without a write to the environment."""

from __future__ import annotations

import inspect
import os

import pytest

# mlflow-skinny is a serving package: installed wherever the tests run, so a plain import, which
# fails (rather than skips) if MLflow moves the variable objects the service sets defaults on.
from mlflow import environment_variables as variables

from web_service_mlflow import sources
from web_service_mlflow.sources import MLFLOW_CLIENT_DEFAULTS


@pytest.fixture
def mlflow_defaults(monkeypatch):
    """MLflow's own defaults back after the test; the variables unset during it."""
    for name in MLFLOW_CLIENT_DEFAULTS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.setattr(getattr(variables, name), "default", getattr(variables, name).default)


def test_the_service_lowers_mlflows_defaults_and_leaves_the_environment_alone(mlflow_defaults):
    before = dict(os.environ)

    sources._import_mlflow()

    assert {name: getattr(variables, name).get() for name in MLFLOW_CLIENT_DEFAULTS} == MLFLOW_CLIENT_DEFAULTS
    assert dict(os.environ) == before


def test_a_value_the_user_sets_still_wins(mlflow_defaults, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "40")

    sources._import_mlflow()

    assert variables.MLFLOW_HTTP_REQUEST_TIMEOUT.get() == 40


def test_mlflows_http_client_still_takes_its_retries_and_timeout_from_these_variables():
    # When it stops (or takes them from elsewhere), MLFLOW_CLIENT_DEFAULTS no longer reaches it.
    from mlflow.utils import rest_utils

    source = inspect.getsource(rest_utils.http_request)
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES.get()" in source
    assert "MLFLOW_HTTP_REQUEST_TIMEOUT.get()" in source
