"""Facts about this process that stay true until it forks, kept without a system call per request.

`os.getpid()` and `os.urandom()` are system calls; under load a handful per request costs as much
as the prediction. Both are read once per process and renewed in every forked child (Gunicorn
forks its workers from the master that built the app).
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)


class _Process:
    def __init__(self) -> None:
        self.renew()

    def renew(self) -> None:
        self.pid = os.getpid()
        # 64 random bits per process, then a counter: IDs unique across workers and restarts.
        self.id_prefix = os.urandom(8).hex()
        self.counter = itertools.count()


_current = _Process()
os.register_at_fork(after_in_child=_current.renew)


def pid() -> int:
    """This process's ID, as os.getpid() would say."""
    return _current.pid


def new_request_id() -> str:
    """32 hex digits, unique across processes: this process's random prefix and a counter."""
    return f"{_current.id_prefix}{next(_current.counter):016x}"


class Periodic:
    """Call `action` every `seconds` from a daemon thread of this process, and once more at exit.

    Threads do not survive fork: `ensure_running()`, cheap enough for every request, starts the
    thread in whichever process (Gunicorn worker) first needs it.
    """

    def __init__(self, seconds: float, action: Callable[[], None], name: str) -> None:
        self.seconds, self.action, self.name = seconds, action, name
        self._thread_pid: int | None = None
        self._lock = threading.Lock()
        atexit.register(self._run_once)

    def ensure_running(self) -> None:
        if self._thread_pid == _current.pid:
            return
        with self._lock:
            if self._thread_pid != _current.pid:
                self._thread_pid = _current.pid
                threading.Thread(target=self._run_forever, name=self.name, daemon=True).start()

    def _run_forever(self) -> None:
        while True:
            time.sleep(self.seconds)
            self._run_once()

    def _run_once(self) -> None:
        try:
            self.action()
        except Exception:  # a full disk must not end the flushing for good
            logger.exception("%s failed", self.name)
