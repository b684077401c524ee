"""What web_service/server/worker.py takes from Gunicorn beyond its documented worker API.

The worker subclasses Gunicorn's sync worker and leans on four of its internals. Gunicorn is
pinned to a minor release in the Pipfile for that reason, and each test here fails, naming the
internal, when a release changes one, before the end-to-end worker tests fail in a less clear way.
"""

from __future__ import annotations

import inspect
import queue
import signal

import gunicorn
from gunicorn import util
from gunicorn.arbiter import Arbiter
from gunicorn.workers.base import Worker
from gunicorn.workers.sync import SyncWorker

from web_service.server.worker import Capture, DrainingWorker


def test_the_sync_worker_still_serves_one_client_as_handle_listener_client_addr() -> None:
    # DrainingWorker._serve reads a request itself and hands Gunicorn a BufferedClient to parse it from.
    assert list(inspect.signature(SyncWorker.handle).parameters) == ["self", "listener", "client", "addr"]
    assert list(inspect.signature(Worker.handle_error).parameters) == ["self", "req", "client", "addr", "exc"]


def test_gunicorn_still_writes_its_errors_through_sendall_as_an_http_status_line() -> None:
    # JsonErrors learns the status Gunicorn chose by capturing what it writes (Capture).
    capture = Capture()
    util.write_error(capture, 431, "Request Header Fields Too Large", "too large")
    assert capture.status() == (431, "Request Header Fields Too Large")


def test_the_masters_signal_handler_still_queues_signals_on_the_arbiter() -> None:
    # A SIGTERM that reaches a worker before it installs its own handlers runs the master's handler,
    # inherited across fork, which queues it on the arbiter: init_signals looks for it there.
    arbiter = Arbiter.__new__(Arbiter)
    arbiter.SIG_QUEUE = queue.SimpleQueue()
    Arbiter.signal(arbiter, signal.SIGTERM, None)
    assert arbiter.SIG_QUEUE.get_nowait() == signal.SIGTERM
    assert "SIG_QUEUE = queue.SimpleQueue()" in inspect.getsource(Arbiter.__init__), (
        "Gunicorn no longer makes SIG_QUEUE a queue.SimpleQueue in Arbiter.__init__: "
        "DrainingWorker.init_signals reads it with get_nowait"
    )


def test_a_worker_still_wakes_on_its_pipe_and_reports_to_the_arbiter_with_notify() -> None:
    assert "self.PIPE = os.pipe()" in inspect.getsource(Worker.init_process)
    assert callable(Worker.notify)
    assert DrainingWorker.run is not SyncWorker.run  # the event loop replaces Gunicorn's accept loop


def test_gunicorn_is_the_minor_release_these_internals_were_read_from() -> None:
    assert gunicorn.__version__.split(".")[:2] == ["26", "2"], (
        f"Gunicorn {gunicorn.__version__}: re-read its sync worker, arbiter and util.write_error "
        "against web_service/server/worker.py, then move the Pipfile pin and this test"
    )
