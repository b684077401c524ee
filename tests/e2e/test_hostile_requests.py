"""About 300 hostile and broken requests (tests/e2e/hostile/corpus.jsonl) over raw sockets to a real
Gunicorn: each gets the status the corpus says, every error speaks the JSON error shape, nothing is
a traceback in the log, and the server answers as before when they are done."""

from __future__ import annotations

import contextlib
import json
import socket
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.conftest import SUMMARY
from tests.processes import gunicorn

pytestmark = pytest.mark.e2e
CORPUS = Path(__file__).resolve().parent / "hostile" / "corpus.jsonl"


def corpus() -> list[tuple[str, bytes, int]]:
    cases = []
    for line in CORPUS.read_text().splitlines():
        case = json.loads(line)
        text = "".join(p if isinstance(p, str) else p["repeat"] * p["times"] for p in case["request"])
        cases.append((case["name"], text.encode("latin-1"), case["status"]))
    return cases


def exchange(host: str, port: int, raw: bytes) -> bytes:
    """Send `raw` and read until the server closes; what came back, or b"" if nothing in 10 s."""
    with socket.create_connection((host, port), timeout=10) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # answered (413) before all was sent
            sock.sendall(raw)
        answer = b""
        with contextlib.suppress(ConnectionResetError, TimeoutError):
            while chunk := sock.recv(65536):
                answer += chunk
    return answer


def is_error_shape(body: bytes) -> bool:
    try:
        error = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return False
    return set(error) == {"code", "message", "details"} and isinstance(error["details"], list)


def test_every_hostile_request_gets_its_status_in_the_json_error_shape(tmp_path, request):
    cases = corpus()
    wrong = []
    with gunicorn("web_service_mlflow.predict:app", tmp_path / "hostile.log") as server:
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
    request.config.stash.setdefault(SUMMARY, []).append(
        f"hostile corpus: {len(cases)} raw requests, statuses {dict(sorted(statuses.items()))}, all as expected"
    )
