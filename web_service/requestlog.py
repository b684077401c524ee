"""One JSON line per request on stdout: when, which request, what it asked, how it ended, how long.

Written straight to stdout rather than through `logging`: the logging module's record, caller
lookup and handler lock cost more than the prediction itself. Server events (start-up, retries,
errors with tracebacks) still go through `logging`, to stderr.
"""

from __future__ import annotations

import json
import sys
import time

from web_service import process
from web_service.observe import Answered

# Methods that need no JSON escaping; anything else a client sends is escaped like the path.
PLAIN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestLog:
    """An observer that writes each answered request as one JSON line."""

    def __init__(self, model_version: str) -> None:
        self._model_version = json.dumps(model_version)
        self._second, self._second_text = -1, ""

    def __call__(self, answered: Answered) -> None:
        # Built by hand, for speed: every text a client controls (method, path) goes through
        # json.dumps; the request ID is either generated hex or checked against a safe set.
        method = f'"{answered.method}"' if answered.method in PLAIN_METHODS else json.dumps(answered.method)
        route = f'"{answered.route}"' if answered.route else json.dumps(answered.path)
        batch = "null" if answered.batch_size is None else answered.batch_size
        sys.stdout.write(  # whatever sys.stdout is now: Gunicorn's inherited stream, or a test's capture
            f'{{"ts": "{self._timestamp()}", "request_id": "{answered.request_id}", "method": {method}, '
            f'"route": {route}, "status": {answered.status}, "latency_ms": {round(answered.seconds * 1000, 3)}, '
            f'"batch_size": {batch}, "model_version": {self._model_version}, "pid": {process.pid()}}}\n'
        )
        sys.stdout.flush()

    def _timestamp(self) -> str:
        """ISO 8601 in UTC to the millisecond, as datetime.isoformat(timespec="milliseconds")."""
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second, self._second_text = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._second_text}.{int((now - second) * 1000):03d}+00:00"
