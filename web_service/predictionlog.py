"""Optional log of every prediction (inputs and outputs) for drift monitoring, off the request path.

With PREDICTION_LOG=/path/predictions.jsonl each answered request appends one JSON line:
`{"ts", "request_id", "model_version", "rides": [...], "durations": [...]}`. The request only puts
the record on an in-memory queue; a thread of the worker writes it. Each line is written with a
single append, so Gunicorn workers sharing the file do not interleave. If the queue is full (the
disk cannot keep up) the record is dropped and counted, never the request slowed.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)
QUEUE_SIZE = 10_000


class PredictionLog:
    def __init__(self, path: Path, queue_size: int = QUEUE_SIZE) -> None:
        self.path = path
        self.dropped = 0
        self._queue: queue.Queue[str | threading.Event] = queue.Queue(queue_size)
        self._writer_pid: int | None = None
        self._lock = threading.Lock()

    def record(self, request_id: str, model_version: str, rides: list[dict[str, Any]], durations: list[float]) -> None:
        """Queue one request's predictions; returns at once."""
        self._ensure_writer()
        line = json.dumps(
            {
                "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "request_id": request_id,
                "model_version": model_version,
                "rides": rides,
                "durations": durations,
            }
        )
        try:
            self._queue.put_nowait(line + "\n")
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                logger.warning("prediction log %s cannot keep up: %d records dropped", self.path, self.dropped)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far is written; False if that took over `timeout`."""
        self._ensure_writer()
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def _ensure_writer(self) -> None:
        # Threads do not survive fork: each Gunicorn worker starts its own writer on first use.
        if self._writer_pid == os.getpid():
            return
        with self._lock:
            if self._writer_pid != os.getpid():
                self._writer_pid = os.getpid()
                threading.Thread(target=self._write_forever, name="prediction-log", daemon=True).start()

    def _write_forever(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        while True:
            line = self._queue.get()
            if isinstance(line, threading.Event):  # a flush marker: all before it is written
                line.set()
                continue
            try:
                os.write(descriptor, line.encode())
            except OSError as error:
                self.dropped += 1
                logger.warning("prediction log %s: write failed (%s); record dropped", self.path, error)
