"""About 300 hostile and broken requests (tests/e2e/hostile/corpus.jsonl) over raw sockets to a real
Gunicorn: each gets the status the corpus says, every error speaks the JSON error shape, nothing is
a traceback in the log, and the server answers as before when they are done."""

from __future__ import annotations

import contextlib
import json
import re
import socket
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from harness.gunicorn import gunicorn
from tests.conftest import SUMMARY

pytestmark = pytest.mark.e2e
CORPUS = Path(__file__).resolve().parent / "hostile" / "corpus.jsonl"
# With GUNICORN_THREADS > 1 Gunicorn's gthread worker reads requests itself (web_service.server.worker's
# ThreadedWorker only reshapes its errors): it waits for a CRLF that a bare-LF request never
# sends (0: no answer while the client waits), and calls a transfer coding it lacks a bad request.
GTHREAD_DIFFERS = {"bare LF line ends": 0, "gzip transfer coding": 400, "gzip, chunked": 400}


def corpus() -> list[tuple[str, bytes, int]]:
    cases = []
    for line in CORPUS.read_text().splitlines():
        case = json.loads(line)
        text = "".join(p if isinstance(p, str) else p["repeat"] * p["times"] for p in case["request"])
        cases.append((case["name"], text.encode("latin-1"), case["status"]))
    return cases


def exchange(host: str, port: int, raw: bytes) -> bytes:
    """Send `raw` and read one answer (or until the server closes); b"" if nothing came in 10 s."""
    with socket.create_connection((host, port), timeout=10) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # answered (413) before all was sent
            sock.sendall(raw)
        answer = b""
        with contextlib.suppress(ConnectionResetError, TimeoutError):
            while not answered(answer, raw.startswith(b"HEAD ")) and (chunk := sock.recv(65536)):
                answer += chunk
    return answer


def answered(answer: bytes, head_only: bool) -> bool:
    """Whether `answer` holds a whole final answer: gthread keeps the connection open after it."""
    answer = answer.removeprefix(b"HTTP/1.1 100 Continue\r\n\r\n")
    head, found, body = answer.partition(b"\r\n\r\n")
    if not found:
        return False
    length = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.IGNORECASE)
    return head_only or (length is not None and len(body) >= int(length.group(1)))


def is_error_shape(body: bytes) -> bool:
    try:
        error = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return False
    return set(error) == {"code", "message", "details"} and isinstance(error["details"], list)


@pytest.mark.parametrize(
    ("worker", "settings", "differs"),
    [("the event-loop worker", {}, {}), ("gthread", {"GUNICORN_THREADS": "2"}, GTHREAD_DIFFERS)],
)
def test_every_hostile_request_gets_its_status_in_the_json_error_shape(tmp_path, request, worker, settings, differs):
    cases = [(name, raw, differs.get(name, status)) for name, raw, status in corpus()]
    wrong = []
    with gunicorn("web_service_mlflow.predict:app", tmp_path / "hostile.log", **settings) as server:
        host, port = urlsplit(server.url).hostname, urlsplit(server.url).port
        statuses: Counter[int] = Counter()
        for name, raw, expected in cases:
            answer = exchange(host, port, raw).removeprefix(b"HTTP/1.1 100 Continue\r\n\r\n")  # an interim answer
            head, _, body = answer.partition(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.") else 0
            statuses[status] += 1
            shaped = raw.startswith(b"HEAD ") or status < 400 or is_error_shape(body)
            if status != expected or not shaped:
                wrong.append(f"{name}: expected {expected}, got {status} {body[:160]!r}")
        healthy = requests.get(f"{server.url}/health", timeout=5).ok
        log = server.output()

    assert len(cases) >= 300
    assert wrong == [], "\n".join(wrong)
    assert healthy and "Traceback" not in log
    counts = dict(sorted(statuses.items()))
    request.config.stash.setdefault(SUMMARY, []).append(
        f"hostile corpus, {worker}: {len(cases)} raw requests, statuses {counts}, all as expected"
    )
