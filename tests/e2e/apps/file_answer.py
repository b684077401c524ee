"""A Flask app that answers with a file (send_file) beside /health: the worker's file path, tested.

Gunicorn answers a file response with `socket.sendfile`; the service's worker hands Gunicorn a
buffered client, which must take it like any other write (tests/e2e/test_worker.py).
"""

from pathlib import Path

from flask import Flask, send_file

app = Flask(__name__)
FILE = Path(__file__)


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/file")
def file() -> object:
    return send_file(FILE, mimetype="text/plain")
