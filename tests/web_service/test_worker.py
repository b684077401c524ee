"""The draining worker's two mechanisms, each on its own: the connection filter and the boot-time SIGTERM."""

from __future__ import annotations

import os
import queue
import signal
import socket

import pytest
from gunicorn.config import Config
from gunicorn.glogging import Logger

from web_service.worker import DrainingWorker, refuse_new_connections


@pytest.fixture
def listener():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield sock
    sock.close()


def test_after_the_filter_queued_connections_are_still_accepted_and_new_ones_are_not(listener):
    queued = socket.create_connection(listener.getsockname(), timeout=2)

    assert refuse_new_connections(listener)

    with pytest.raises((TimeoutError, socket.timeout)):  # the SYN is dropped: no handshake completes
        socket.create_connection(listener.getsockname(), timeout=0.5)
    listener.settimeout(2)
    accepted, _ = listener.accept()
    queued.sendall(b"ping")
    assert accepted.recv(4) == b"ping"
    accepted.close()
    queued.close()
    listener.settimeout(0)
    with pytest.raises(BlockingIOError):  # nothing else got into the queue
        listener.accept()


class RecordingMaster:
    """Stands in for Gunicorn's arbiter, whose signal handler only queues the signal.

    A fake on purpose: with a real arbiter the window (a SIGTERM between fork and the worker's
    own handlers) cannot be hit on demand; tests/e2e/test_shutdown.py stops real servers as
    their workers boot.
    """

    def __init__(self) -> None:
        self.SIG_QUEUE: queue.SimpleQueue[int] = queue.SimpleQueue()

    def signal(self, sig: int, frame: object) -> None:
        self.SIG_QUEUE.put_nowait(sig)


@pytest.fixture
def restored_signals():
    saved = {sig: signal.getsignal(sig) for sig in DrainingWorker.SIGNALS}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)
    signal.set_wakeup_fd(-1)


def booting_worker() -> DrainingWorker:
    cfg = Config()
    worker = DrainingWorker(1, os.getpid(), [], None, 30, cfg, Logger(cfg))
    worker.PIPE = os.pipe()  # as Worker.init_process makes it
    for fd in worker.PIPE:
        os.set_blocking(fd, False)
    return worker


def test_a_sigterm_queued_by_the_inherited_master_handler_stops_the_worker(restored_signals):
    master = RecordingMaster()
    signal.signal(signal.SIGTERM, master.signal)
    master.signal(signal.SIGTERM, None)  # as if it had arrived between fork and init_signals
    worker = booting_worker()

    worker.init_signals()

    assert worker.alive is False and worker.terminating is True


def test_other_queued_master_signals_leave_a_booting_worker_serving(restored_signals):
    master = RecordingMaster()
    signal.signal(signal.SIGTERM, master.signal)
    master.signal(signal.SIGHUP, None)
    worker = booting_worker()

    worker.init_signals()

    assert worker.alive is True and worker.terminating is False
