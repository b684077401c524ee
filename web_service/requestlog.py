"""One JSON line per request on stdout: when, which request, what it asked, how it ended, how long.

Written straight to stdout rather than through `logging`: the logging module's record, caller
lookup and handler lock cost more than the prediction itself. Server events (start-up, retries,
errors with tracebacks) still go through `logging`, to stderr.

Every line is at most PIPE_BUF bytes and written with one write(): Gunicorn's workers share one
stdout, and a pipe keeps a write whole only up to PIPE_BUF (4096 bytes on Linux). Longer, a line
from one worker can be cut by another's when the reader is slow. Only what a client sends (the
path of an unknown route, the method) can make a line that long: it is cut to fit, and the line
then says `"truncated": ["route"]`.
"""

from __future__ import annotations

import json
import os
import select
import sys
import time
from typing import Any

from web_service.observe import Answered

# Methods that need no JSON escaping; anything else a client sends is escaped like the path.
PLAIN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LINE_LIMIT = select.PIPE_BUF
# Of the room left in a line that is too long, the method gets at most this much (JSON included).
METHOD_ROOM = 64


class RequestLog:
    """An observer that writes each answered request as one JSON line."""

    def __init__(self, model_version: str) -> None:
        self._model_version = json.dumps(model_version)
        self._second, self._second_text = -1, ""
        self._stream: Any = None
        self._descriptor: int | None = None

    def __call__(self, answered: Answered) -> None:
        # Built by hand, for speed: every text a client controls (method, path) goes through
        # json.dumps; the request ID is either generated hex or checked against a safe set.
        method = f'"{answered.method}"' if answered.method in PLAIN_METHODS else json.dumps(answered.method)
        route = f'"{answered.route}"' if answered.route else json.dumps(answered.path)
        line = self._line(answered, method, route)
        if len(line) > LINE_LIMIT:  # json.dumps writes ASCII: characters are bytes
            line = self._cut(answered, line, method, route)
        self._write(line)

    def _line(self, answered: Answered, method: str, route: str, extra: str = "") -> str:
        batch = "null" if answered.batch_size is None else answered.batch_size
        return (
            f'{{"ts": "{self._timestamp()}", "request_id": "{answered.request_id}", "method": {method}, '
            f'"route": {route}, "status": {answered.status}, "latency_ms": {round(answered.seconds * 1000, 3)}, '
            f'"batch_size": {batch}, "model_version": {answered.answered_by or self._model_version}, '
            f'"pid": {os.getpid()}{extra}}}\n'
        )

    def _cut(self, answered: Answered, line: str, method: str, route: str) -> str:
        """The line again, with the client's method and path cut short so that it fits one atomic write."""
        truncated = ', "truncated": ["method", "route"]'
        room = max(0, LINE_LIMIT - (len(line) - len(method) - len(route)) - len(truncated))
        cut_method = _json_within(answered.method, min(len(method), METHOD_ROOM, room))
        cut_route = _json_within(answered.route or answered.path, room - len(cut_method))
        names = [name for name, was, now in (("method", method, cut_method), ("route", route, cut_route)) if was != now]
        return self._line(answered, cut_method, cut_route, f', "truncated": {json.dumps(names)}')

    def _write(self, line: str) -> None:
        # One os.write per line when stdout is a file or a pipe: a buffered stream written to from
        # several threads (gthread) could join two lines into one write over PIPE_BUF.
        stream = sys.stdout  # whatever sys.stdout is now: Gunicorn's inherited stream, or a test's capture
        if stream is not self._stream:
            self._stream, self._descriptor = stream, _descriptor(stream)
        if self._descriptor is None:
            stream.write(line)
            stream.flush()
        else:
            os.write(self._descriptor, line.encode())

    def _timestamp(self) -> str:
        """ISO 8601 in UTC to the millisecond, as datetime.isoformat(timespec="milliseconds")."""
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second, self._second_text = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._second_text}.{int((now - second) * 1000):03d}+00:00"


def _json_within(text: str, limit: int) -> str:
    """`text` as a JSON string of at most `limit` characters (at least ""), cut as little as it takes."""
    dumped = json.dumps(text)
    if len(dumped) <= limit:
        return dumped
    # A character takes 1 to 6 characters of JSON: the longest prefix that fits is searched for,
    # a dozen dumps of at most `limit` characters. text[:fits] fits, text[:too_long] does not.
    fits, too_long = 0, min(len(text), limit)
    while too_long - fits > 1:
        middle = (fits + too_long) // 2
        fits, too_long = (middle, too_long) if len(json.dumps(text[:middle])) <= limit else (fits, middle)
    return json.dumps(text[:fits])


def _descriptor(stream: Any) -> int | None:
    """The file descriptor under `stream`, emptied of what it buffered; None for an in-memory stream."""
    try:
        stream.flush()
        return stream.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both of the last two
        return None
