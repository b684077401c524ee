"""Facts about this process that stay true until it forks, kept without a system call per request.

`os.getpid()` and `os.urandom()` are system calls; under load a handful per request costs as much
as the prediction. Both are read once per process and renewed in every forked child (Gunicorn
forks its workers from the master that built the app).
"""

from __future__ import annotations

import itertools
import os


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
