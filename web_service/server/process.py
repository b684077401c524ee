"""Per-process state that must be renewed in every forked child: request IDs and periodic threads.

Gunicorn forks its workers from the master that built the app: a request-ID prefix copied into
every worker would repeat across them, and a thread started in the master does not survive fork.
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
        # 64 random bits per process, then a counter: IDs unique across workers and restarts, and
        # consecutive, which the canary's split relies on for an even stride (web_service.lineup).
        self.id_prefix = os.urandom(8).hex()
        self.counter = itertools.count()


_current = _Process()
os.register_at_fork(after_in_child=_current.renew)


def new_request_id() -> str:
    """32 hex digits, unique across processes: this process's random prefix and a counter."""
    return f"{_current.id_prefix}{next(_current.counter):016x}"


class Periodic:
    """Call `action` every `seconds` from a daemon thread of this process, and once more at exit.

    Threads do not survive fork: `ensure_running()`, cheap enough for every request, starts the
    thread in whichever process (Gunicorn worker) first needs it, and a forked child forgets it.
    """

    def __init__(self, seconds: float, action: Callable[[], None], name: str) -> None:
        self.seconds, self.action, self.name = seconds, action, name
        self._forget()
        os.register_at_fork(after_in_child=self._forget)
        atexit.register(self._run_once)

    def _forget(self) -> None:
        self._started = False
        self._lock = threading.Lock()  # a lock held at fork time would stay held in the child

    def ensure_running(self) -> None:
        if self._started:
            return
        with self._lock:
            if not self._started:
                self._started = True
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
