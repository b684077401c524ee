"""The image's HEALTHCHECK command: which URL it asks, and what it answers when nothing is there."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from harness.processes import free_port
from tests.conftest import REPO
from web_service import healthcheck
from web_service.serve import bind_address


@pytest.mark.parametrize(
    ("environ", "url"),
    [
        ({}, "http://127.0.0.1:9696/ready"),
        ({"PORT": "8080"}, "http://127.0.0.1:8080/ready"),
        ({"BIND": "0.0.0.0:7000", "PORT": "8080"}, "http://127.0.0.1:7000/ready"),
        ({"BIND": "[::]:7001"}, "http://127.0.0.1:7001/ready"),
    ],
)
def test_the_healthcheck_asks_readiness_on_the_port_gunicorn_binds(environ, url):
    assert healthcheck.ready_url(environ) == url


def test_the_healthcheck_fails_with_a_reason_when_no_server_answers(monkeypatch, capsys):
    monkeypatch.setenv("PORT", str(free_port()))
    monkeypatch.delenv("BIND", raising=False)

    assert healthcheck.main() == 1
    assert "not ready: http://127.0.0.1:" in capsys.readouterr().err


def test_the_healthcheck_asks_the_address_gunicorn_conf_binds():
    environ = {"BIND": "0.0.0.0:7002", "PORT": "8080"}

    assert healthcheck.ready_url(environ) == f"http://127.0.0.1:{bind_address(environ).rsplit(':', 1)[1]}/ready"


def test_a_port_the_server_would_refuse_is_not_ready_with_the_servers_reason(monkeypatch, capsys):
    monkeypatch.setenv("PORT", "abc")
    monkeypatch.delenv("BIND", raising=False)

    assert healthcheck.main() == 1
    assert capsys.readouterr().err == "not ready: PORT must be a whole number from 1 to 65535, got 'abc'\n"


def test_the_healthcheck_imports_neither_the_app_nor_flask_nor_numpy():
    done = subprocess.run(
        [sys.executable, "-c", "import sys, web_service.healthcheck; print(sorted(sys.modules))"],
        cwd=REPO, capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip

    loaded = set(ast.literal_eval(done.stdout))
    assert not loaded & {"flask", "numpy", "prometheus_client", "gunicorn", "web_service.app", "web_service.settings"}
