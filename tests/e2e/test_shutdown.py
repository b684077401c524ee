"""SIGTERM under load: every accepted request is answered, and the server stops promptly."""

from __future__ import annotations

import signal
import subprocess
import sys
from urllib.parse import urlsplit

import pytest
import requests

from harness.gunicorn import CONFIG, gunicorn
from tests.burst import burst_with_stop

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


# The repo's config, and a post_fork hook that holds each new worker in its boot window (forked,
# its own signal handlers not yet installed) until a SIGTERM has reached it there.
HOLD_IN_BOOT = """
import signal
import time
from pathlib import Path

__file__ = {config!r}
exec(compile(Path(__file__).read_text(), __file__, "exec"))
_repo_post_fork = globals().get("post_fork")


def post_fork(server, worker):
    if _repo_post_fork:
        _repo_post_fork(server, worker)
    server.log.info("{held} (pid: %s)", worker.pid)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        # The master's handler, inherited across fork, queues the signal in this copy of the master.
        pending = []
        while not server.SIG_QUEUE.empty():
            pending.append(server.SIG_QUEUE.get_nowait())
        for sig in pending:
            server.SIG_QUEUE.put_nowait(sig)
        if signal.SIGTERM in pending:
            return
        time.sleep(0.01)
"""
HELD = "held in its boot window until a SIGTERM"
BOOT_SIGTERM = "SIGTERM arrived while booting"  # web_service/server/worker.py, DrainingWorker.init_signals


def test_a_sigterm_that_reaches_workers_as_they_boot_still_stops_the_server(tmp_path):
    # Until a worker installs its own handlers, a SIGTERM runs the master's, inherited across fork;
    # stock Gunicorn workers forget it and serve on until the graceful timeout (120 s here) kills them.
    # Each worker is held in that window until the signal is there: it cannot miss it.
    config = tmp_path / "gunicorn.conf.py"
    config.write_text(HOLD_IN_BOOT.format(config=str(CONFIG), held=HELD))
    with gunicorn(APP, tmp_path / "boot.log", wait=False, config=config, WEB_CONCURRENCY="2",
                  GUNICORN_GRACEFUL_TIMEOUT="120") as server:  # fmt: skip
        server.wait_output(HELD, count=2, timeout=120)  # both workers are booting, handlers not yet theirs
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running 60 s after SIGTERM (graceful timeout 120 s):\n{server.output()}")
        log = server.output()

    assert log.count(BOOT_SIGTERM) == 2, log  # each worker found the signal its boot window caught
    assert "WORKER TIMEOUT" not in log and "Traceback" not in log, log
    assert server.process.returncode == 0


def test_a_stopped_server_refuses_new_connections(tmp_path):
    with gunicorn(APP, tmp_path / "stopped.log") as server:
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=30)

        with pytest.raises(requests.ConnectionError):
            requests.get(f"{server.url}/health", timeout=5)
