"""Watch every request once, at the WSGI boundary: its ID, its time, its outcome.

One middleware around the Flask app, rather than a before- and an after-request hook per
concern: it gives each request an ID (the caller's X-Request-ID when it is safe to echo, else a
generated one), sends it back, times the request, and hands the outcome to the observers (the
Prometheus counters and the JSON request log). Measured, this is a third of the cost of four
Flask hooks reaching the request through context proxies.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any, NamedTuple

from flask import request

from web_service.server.process import new_request_id

REQUEST_ID_HEADER = "X-Request-ID"
# Keys the views fill in the WSGI environ for the observers to read.
REQUEST_ID_KEY = "ride_duration.request_id"
BATCH_SIZE_KEY = "ride_duration.batch_size"
ANSWERED_BY_KEY = "ride_duration.answered_by"  # with a canary: the JSON of the answering model's version
# A caller's ID is echoed into logs and headers: keep it short and printable.
_SAFE_ID = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")


class Answered(NamedTuple):
    """One answered request, as the observers see it."""

    request_id: str
    method: str
    path: str
    route: str | None  # the endpoint's path, or None when no endpoint has that path
    status: int
    seconds: float
    batch_size: int | None
    answered_by: str | None = None  # a canary's model_version, JSON-encoded, when it answered


Observer = Callable[[Answered], None]
StartResponse = Callable[..., Any]


class ObservedApp:
    """WSGI middleware: request IDs, timing, and the observers, around `wsgi_app`."""

    def __init__(self, wsgi_app: Callable, routes: Collection[str], observers: Sequence[Observer]) -> None:
        self.wsgi_app = wsgi_app
        self.routes = frozenset(routes)  # every endpoint is a fixed path, so a set lookup names the route
        self.observers = tuple(observers)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        given = environ.get("HTTP_X_REQUEST_ID", "")
        request_id = given if given and _SAFE_ID.fullmatch(given) else new_request_id()
        environ[REQUEST_ID_KEY] = request_id
        statuses = []

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            statuses.append(status)
            headers.append((REQUEST_ID_HEADER, request_id))
            return start_response(status, headers, exc_info)

        body = self.wsgi_app(environ, start)
        path = environ.get("PATH_INFO", "")
        answered = Answered(
            request_id, environ.get("REQUEST_METHOD", ""), path, path if path in self.routes else None,
            int(statuses[-1][:3]) if statuses else 500, time.perf_counter() - started, environ.get(BATCH_SIZE_KEY),
            environ.get(ANSWERED_BY_KEY),
        )  # fmt: skip
        for observer in self.observers:
            observer(answered)
        return body


def request_id() -> str:
    """The current request's ID, inside a request; "-" outside one."""
    return request.environ.get(REQUEST_ID_KEY, "-") if request else "-"


def note_batch_size(size: int) -> None:
    """Record how many rides this request carried, for its log line and metrics."""
    request.environ[BATCH_SIZE_KEY] = size


def note_answered_by(version_json: str) -> None:
    """Record which model answered, for the request's log line, when it is not the app's primary."""
    request.environ[ANSWERED_BY_KEY] = version_json
