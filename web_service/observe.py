"""Watch every request once: its ID, its time, its outcome.

A before-request hook gives each request an ID (the caller's X-Request-ID when it is safe to
echo, else a generated one) and starts its clock; an after-request hook sends the ID back and
hands the outcome to the observers (the Prometheus counters and the JSON request log). The hooks
run first and last, around every other hook (auth), so refused and unknown requests are counted
and logged too. (A WSGI middleware doing this measured 2.6-3 % cheaper: docs/performance.md.)
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

from flask import Flask, Response, g, has_request_context, request

from web_service.server.process import new_request_id

REQUEST_ID_HEADER = "X-Request-ID"
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


def init_observers(app: Flask, observers: Sequence[Observer]) -> None:
    """Time and identify every request to `app` (routes all registered); hand each answered one to `observers`."""
    # Every endpoint is a fixed path, so a set lookup names the route.
    known = frozenset(rule.rule for rule in app.url_map.iter_rules())
    found = app.extensions["observers"] = tuple(observers)

    def start() -> None:
        g.started = time.perf_counter()
        given = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = given if given and _SAFE_ID.fullmatch(given) else new_request_id()

    def finish(response: Response) -> Response:
        response.headers[REQUEST_ID_HEADER] = g.request_id
        path = request.path
        answered = Answered(
            g.request_id, request.method, path, path if path in known else None, response.status_code,
            time.perf_counter() - g.started, g.get("batch_size"), g.get("answered_by"),
        )  # fmt: skip
        for observer in found:
            observer(answered)
        return response

    # Before hooks run in order and after hooks in reverse: first in both lists is outermost.
    app.before_request_funcs.setdefault(None, []).insert(0, start)
    app.after_request_funcs.setdefault(None, []).insert(0, finish)


def request_id() -> str:
    """The current request's ID, inside a request; "-" outside one."""
    return g.get("request_id", "-") if has_request_context() else "-"


def note_batch_size(size: int) -> None:
    """Record how many rides this request carried, for its log line and metrics."""
    g.batch_size = size


def note_answered_by(version_json: str) -> None:
    """Record which model answered, for the request's log line, when it is not the app's primary."""
    g.answered_by = version_json
