"""SIGTERM under load: every accepted request is answered, and the server stops promptly."""

from __future__ import annotations

import signal
import sys
import time
from urllib.parse import urlsplit

import pytest
import requests

from tests.burst import burst_with_stop
from tests.processes import gunicorn

pytestmark = pytest.mark.e2e
APP = "web_service_mlflow.predict:app"


def test_sigterm_during_a_burst_answers_every_accepted_request(tmp_path):
    with gunicorn(APP, tmp_path / "burst.log", WEB_CONCURRENCY="5") as server:
        address = urlsplit(server.url)

        def stop() -> None:
            server.process.send_signal(signal.SIGTERM)
            server.process.wait(timeout=30)

        burst = burst_with_stop(address.hostname, address.port, stop, clients=32)

    print(f"\nburst: {burst.answered} answered, {len(burst.lost)} lost", file=sys.stderr)
    assert burst.lost == []
    assert burst.answered > 32  # the stop came in the middle of the traffic, not before it
    assert server.process.returncode == 0
    assert "Shutting down: Master" in server.output()


def test_a_sigterm_that_reaches_workers_as_they_boot_still_stops_the_server_promptly(tmp_path):
    # Until a worker installs its own handlers, a SIGTERM runs the master's, inherited across fork;
    # stock Gunicorn workers forget it and serve on until the graceful timeout (20 s here) kills them.
    for attempt in range(3):
        with gunicorn(APP, tmp_path / f"boot-{attempt}.log", wait=False, WEB_CONCURRENCY="5",
                      GUNICORN_GRACEFUL_TIMEOUT="20") as server:  # fmt: skip
            deadline = time.monotonic() + 60
            while "Booting worker" not in server.output() and time.monotonic() < deadline:
                time.sleep(0.005)
            started = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            server.process.wait(timeout=30)
            stopped_in = time.monotonic() - started

        assert stopped_in < 10, server.output()
        assert server.process.returncode == 0


def test_a_stopped_server_refuses_new_connections(tmp_path):
    with gunicorn(APP, tmp_path / "stopped.log") as server:
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=30)

        with pytest.raises(requests.ConnectionError):
            requests.get(f"{server.url}/health", timeout=5)
