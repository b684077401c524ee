"""One JSON line per request, and a request ID that follows it from client to log and back."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
import uuid
from datetime import UTC, datetime

from flask import Flask, Response, current_app, g, request

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's ID is echoed into logs and headers: keep it short and printable.
_SAFE_ID = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")

access_logger = logging.getLogger("web_service.access")


def init_request_log(app: Flask) -> None:
    """Give every request an ID and log it as one JSON line when it is answered."""
    _ensure_json_handler()
    app.before_request(_start)
    app.after_request(_finish)


def request_id() -> str:
    return g.get("request_id", "-")


def note_batch_size(size: int) -> None:
    """Record how many rides this request carried, for its log line."""
    g.batch_size = size


def _start() -> None:
    given = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = given if _SAFE_ID.fullmatch(given) else uuid.uuid4().hex
    g.started = time.perf_counter()


def _finish(response: Response) -> Response:
    response.headers[REQUEST_ID_HEADER] = request_id()
    access_logger.info(
        json.dumps(
            {
                "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "request_id": request_id(),
                "method": request.method,
                "route": request.url_rule.rule if request.url_rule else request.path,
                "status": response.status_code,
                "latency_ms": round((time.perf_counter() - g.get("started", time.perf_counter())) * 1000, 3),
                "batch_size": g.get("batch_size"),
                "model_version": current_app.extensions["predictor"].model_version,
                "pid": os.getpid(),
            }
        )
    )
    return response


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever sys.stdout is at the time (a test's capture, a redirected stream)."""

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, _value) -> None:
        pass


def _ensure_json_handler() -> None:
    # The access log is pure JSON lines on stdout, apart from the human log on stderr.
    if not access_logger.handlers:
        handler = _StdoutHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        access_logger.addHandler(handler)
        access_logger.setLevel(logging.INFO)
        access_logger.propagate = False
