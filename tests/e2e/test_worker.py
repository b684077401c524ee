"""The worker against real clients: slow senders and slow readers, reloads, scale-downs and recycling
under load, as root and as an unprivileged user, and Gunicorn's own errors in the service's shape."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from harness.gunicorn import gunicorn
from tests.burst import steady_load
from tests.conftest import SUMMARY
from tests.privileges import needs_root, unprivileged

pytestmark = pytest.mark.e2e
APP = "web_service_mlflow.predict:app"
RIDE = {"PULocationID": 10, "DOLocationID": 50, "trip_distance": 40}
BATCH = json.dumps([RIDE] * 1000).encode()
# What "no normal request waits" is held to. Beside the 50 slow clients a normal prediction took
# 4-15 ms (median) and at most 35 ms of 20 here, with the 2 cores shared at a load average of 6 to 10
# (2026-11-26): the bound is about 30 times the worst of those. A worker held by a slow client
# answers in 30 s (the request timeout) or never. The claim is speed, so a bound, loose on purpose.
SPEED_BOUND_S = 1.0


def address(server) -> tuple[str, int]:
    parts = urlsplit(server.url)
    return parts.hostname, parts.port


def answered_within(url: str, seconds: float, tries: int = 20) -> int:
    """How many of `tries` normal predictions were answered 200 within `seconds` each."""
    answered = 0
    for _ in range(tries):
        try:
            response = requests.post(f"{url}/predict", json=RIDE, timeout=seconds)
            answered += response.status_code == 200
        except requests.RequestException:
            pass
    return answered


def report(request, line: str) -> None:
    """Put the figure in the run's summary, where CI output keeps it."""
    request.config.stash.setdefault(SUMMARY, []).append(line)


def test_fifty_slow_senders_keep_no_normal_request_waiting_over_a_second(tmp_path, request):
    with gunicorn(APP, tmp_path / "slow.log") as server:  # 2 workers: make run's default on this machine
        slow = [socket.create_connection(address(server)) for _ in range(50)]
        for sock in slow:  # headers started, never finished: each would hold a sync worker
            sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
        try:
            # No pause needed: the 50 are connected and queued first, so the workers take them first.
            answered = answered_within(server.url, SPEED_BOUND_S)
        finally:
            for sock in slow:
                sock.close()

    report(request, f"50 slow senders: {answered} of 20 normal requests answered within 1 s")
    assert answered == 20


def test_fifty_clients_that_never_read_their_answers_keep_no_normal_request_waiting(tmp_path, request):
    with gunicorn(APP, tmp_path / "unread.log") as server:
        readers = []
        for _ in range(50):
            sock = socket.create_connection(address(server))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(BATCH), BATCH))  # fmt: skip
            readers.append(sock)  # an 82 KB answer each, never read
        try:
            # Once all 50 are answered (1,000 rides each: CPU the normal requests would otherwise queue
            # behind), their answers wait, unread, while the normal requests come.
            server.wait_output('"batch_size": 1000', count=50)
            answered = answered_within(server.url, SPEED_BOUND_S)
        finally:
            for sock in readers:
                sock.close()

    report(request, f"50 clients not reading 82 KB answers: {answered} of 20 normal requests answered within 1 s")
    assert answered == 20


def read_all(sock: socket.socket) -> bytes:
    answer = b""
    while chunk := sock.recv(4096):
        answer += chunk
    return answer


def test_a_request_that_never_arrives_whole_gets_a_json_408_after_the_timeout(tmp_path):
    with gunicorn(APP, tmp_path / "timeout.log", GUNICORN_TIMEOUT="2") as server:
        started = time.monotonic()  # before the connection: the worker's clock starts when it accepts it
        sock = socket.create_connection(address(server), timeout=60)
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        answer = read_all(sock)
        waited = time.monotonic() - started
        sock.close()

    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert json.loads(body) == {"error": {"code": "request_timeout", "details": [],
                                          "message": "the request did not arrive whole within 2 s"}}  # fmt: skip
    # Not before the timeout: no load can make this shorter. How much later is not the claim (a loaded
    # machine delays it), and the body above says which path answered.
    assert waited >= 2 - 0.01


def test_a_client_that_expects_100_continue_is_told_to_send_its_body(tmp_path):
    body = json.dumps(RIDE).encode()
    with gunicorn(APP, tmp_path / "continue.log") as server:
        sock = socket.create_connection(address(server), timeout=5)
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body))  # fmt: skip
        interim = sock.recv(4096)
        sock.sendall(body)
        answer = read_all(sock)
        sock.close()

    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b'"duration":45.50965007660852' in answer


ROOT_NEEDS = "to run Gunicorn as root, holding CAP_NET_ADMIN (where the old socket filter bit)"


@dataclass(frozen=True)
class Who:
    """Whom the server runs as: Gunicorn's arguments, and the master's effective uid and CAP_NET_ADMIN."""

    name: str
    server: dict
    uid: int
    net_admin: bool


@pytest.fixture(params=[pytest.param("root", marks=needs_root(ROOT_NEEDS)), "unprivileged"])
def who(request) -> Who:
    """Run the server as root and as nobody (as this user, with no capabilities, when not root)."""
    if request.param == "root":
        return Who("root", {}, 0, True)
    server = unprivileged()
    return Who("nobody" if server else f"uid {os.geteuid()}", server, server.get("user", os.geteuid()), False)


def privileges(pid: int) -> tuple[int, bool]:
    """The effective user ID of the Gunicorn master, and whether it holds CAP_NET_ADMIN."""
    status = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        status[key] = value.split()
    return int(status["Uid"][1]), bool(int(status["CapEff"][0], 16) & (1 << 12))  # CAP_NET_ADMIN is 12


@pytest.mark.parametrize("change", ["SIGHUP (reload)", "SIGTTOU (scale down)", "max_requests (recycling)"])
def test_replacing_workers_under_load_fails_no_request_and_the_server_keeps_answering(tmp_path, who, change, request):
    recycling = {"GUNICORN_CMD_ARGS": "--max-requests 40 --max-requests-jitter 10"} if "max_requests" in change else {}
    with gunicorn(APP, tmp_path / "server.log", WEB_CONCURRENCY="3", **who.server, **recycling) as server:
        server.wait_output("Booting worker", count=3)
        assert privileges(server.process.pid) == (who.uid, who.net_admin)
        with steady_load(*address(server), clients=12) as load:
            load.wait_answered(100)  # the load is flowing
            if change.startswith("SIGHUP"):  # three new workers boot, the three old ones exit
                server.process.send_signal(signal.SIGHUP)
                server.wait_output("Booting worker", count=6)
                server.wait_output("Worker exiting", count=3)
            elif change.startswith("SIGTTOU"):
                server.process.send_signal(signal.SIGTTOU)
                server.wait_output("Worker exiting", count=1)
            else:  # a worker reached max_requests, exited and was replaced
                server.wait_output("Worker exiting", count=1)
                server.wait_output("Booting worker", count=4)
            load.wait_answered(load.answered + 100)  # and the load is served on after the change
        after = answered_within(server.url, 3.0, tries=5)
        log = server.output()

    report(request, f"{change} under load as {who.name}: {load.answered} answered, {len(load.lost)} failed")
    assert load.lost == [], f"{load.lost[:5]}\n{log[-3000:]}"
    # A stopping worker that took connections for as long as the load sent them was killed by the
    # master's timeout, a request in hand: it must stop taking them and exit well before.
    assert "WORKER TIMEOUT" not in log
    assert load.answered > 100
    assert after == 5  # new connections are taken after the change: nothing left refusing them
    if "max_requests" in change:
        assert "Autorestarting worker after current request" in log


def test_a_file_response_is_answered_whole(tmp_path):
    # Gunicorn sends a file response with sock.sendfile(): the worker's buffered client must take it.
    from tests.e2e.apps.file_answer import FILE

    with gunicorn("tests.e2e.apps.file_answer:app", tmp_path / "file.log") as server:
        answer = requests.get(f"{server.url}/file", timeout=10)
        assert answer.status_code == 200
        assert answer.content == FILE.read_bytes()
        assert "Traceback" not in server.output()
