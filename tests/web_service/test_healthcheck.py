"""The image's HEALTHCHECK command: which URL it asks, and what it answers when nothing is there."""

from __future__ import annotations

import pytest

from tests.processes import free_port
from web_service import healthcheck


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
