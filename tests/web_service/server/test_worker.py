"""The worker's parts, each on its own: when a request is whole, and the boot-time SIGTERM.

Its behaviour with real clients (slow ones, reloads, stops under load) is tested end to end in
tests/e2e/test_worker.py and tests/e2e/test_shutdown.py."""

from __future__ import annotations

import os
import queue
import signal

import pytest
from gunicorn.config import Config
from gunicorn.glogging import Logger

from web_service.server.worker import HEAD_LIMIT, DrainingWorker, refusal, request_complete


@pytest.mark.parametrize(
    ("request_bytes", "whole"),
    [
        (b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", True),
        (b"GET /health HTTP/1.1\r\nHost: x\r\n", False),  # headers still coming
        (b"POST /predict HTTP/1.1\r\nContent-Length: 10\r\n\r\n12345", False),
        (b"POST /predict HTTP/1.1\r\ncontent-length:10\r\n\r\n1234567890", True),
        (b"POST /predict HTTP/1.1\r\nContent-Length: 5000000\r\n\r\n", True),  # over the limit: 413 unread
        (b"POST /predict HTTP/1.1\r\nContent-Length: ten\r\n\r\n", True),  # Gunicorn refuses it
        (b"POST /predict HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", False),
        (b"POST /predict HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n", False),
        (b"POST /predict HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", True),
        (b"POST /predict HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\r\n\r\n", True),
        (b"POST /predict HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", True),  # malformed
        (b"GET / HTTP/1.1\r\nX: " + b"a" * (HEAD_LIMIT + 1), True),  # endless headers: the parser says 431
    ],
)
def test_a_request_is_handed_to_gunicorn_when_whole_or_when_gunicorn_must_refuse_it(request_bytes, whole):
    assert request_complete(request_bytes, body_limit=1_000_000) is whole


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


@pytest.mark.parametrize(
    ("codings", "answer"),
    [
        (b"chunked", None),
        (b"Chunked", None),
        (b"gzip", 501),
        (b"gzip, chunked", 501),
        (b"chunked, gzip", 400),  # chunked not last: the body cannot be framed
        (b"chunked\r\nTransfer-Encoding: chunked", 400),  # twice: the body cannot be framed
    ],
)
def test_a_transfer_coding_other_than_chunked_is_answered_before_its_body_is_awaited(codings, answer):
    head = b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: " + codings

    refused = refusal(head)

    assert (refused[0] if refused else None) == answer
