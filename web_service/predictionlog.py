"""Optional log of every prediction (inputs and outputs) for drift monitoring, off the request path.

With PREDICTION_LOG=/path/predictions.jsonl each answered request appends one JSON line:
`{"ts", "request_id", "model_version", "rides": [...], "durations": [...]}`. The request only puts
the record on an in-memory queue; a thread of the worker writes it. Each line is written with a
single append, so Gunicorn workers sharing the file do not interleave. If the queue is full (the
disk cannot keep up) or the file cannot be written, the record is dropped and counted, never the
request slowed, and the queue holds at most QUEUE_BYTES whatever happens to the disk.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from web_service.errors import SettingsError

logger = logging.getLogger(__name__)
QUEUE_SIZE = 10_000
# A worker's queue is bounded by size too: one batch of 1,000 rides is a 100 KB line, and 10,000 of
# them queued behind a writer that cannot write grew a worker by 2 GB in 45 s.
QUEUE_BYTES = 16 * 1024 * 1024
# Dropped records are counted in a warning on the first and then on every WARN_EVERY-th, never one
# line per record: a full disk must not also flood the server log.
WARN_EVERY = 1000
# How often the writer checks that the path still names the file it holds open: a file removed or
# rotated away is opened again, rather than written on unseen.
RECHECK_SECONDS = 1.0
_APPEND = os.O_WRONLY | os.O_APPEND | os.O_CREAT


def check_appendable(path: Path) -> Path:
    """Create the file's folder and open the file for appending once: an unusable path stops start-up."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, _APPEND, 0o644))
    except FileExistsError as error:  # mkdir: a parent is a file, which is not what "exists" suggests
        raise SettingsError(
            f"PREDICTION_LOG={path}: cannot create its folder: {error.filename} is a file; "
            "name a file this user can create and write, or unset PREDICTION_LOG"
        ) from None
    except OSError as error:
        raise SettingsError(
            f"PREDICTION_LOG={path}: cannot open it for appending ({error}); "
            "name a file this user can create and write, or unset PREDICTION_LOG"
        ) from None
    return path


class _Lines(queue.Queue):
    """A FIFO that also counts the characters of the lines it holds (bytes: json.dumps writes ASCII)."""

    def _init(self, maxsize: int) -> None:
        super()._init(maxsize)
        self.chars = 0

    def _put(self, item: str | threading.Event) -> None:
        super()._put(item)
        self.chars += len(item) if isinstance(item, str) else 0

    def _get(self) -> str | threading.Event:
        item = super()._get()
        self.chars -= len(item) if isinstance(item, str) else 0
        return item


class PredictionLog:
    def __init__(self, path: Path, queue_size: int = QUEUE_SIZE, queue_bytes: int = QUEUE_BYTES) -> None:
        self.path = path
        self.dropped = 0
        self.queue_bytes = queue_bytes
        self._queue = _Lines(queue_size)
        self._writer_pid: int | None = None
        self._lock = threading.Lock()

    def record(
        self,
        request_id: str,
        model_version: str,
        rides: list[dict[str, Any]],
        durations: list[float],
        shadow: dict[str, Any] | None = None,
    ) -> None:
        """Queue one request's predictions (and the shadow model's, never returned); returns at once."""
        self._ensure_writer()
        record = {
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "request_id": request_id,
            "model_version": model_version,
            "rides": rides,
            "durations": durations,
        }
        line = json.dumps(record if shadow is None else record | {"shadow": shadow})
        if self._queue.chars + len(line) >= self.queue_bytes:
            self._drop("cannot keep up")
            return
        try:
            self._queue.put_nowait(line + "\n")
        except queue.Full:
            self._drop("cannot keep up")

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far is written; False if that took over `timeout`."""
        self._ensure_writer()
        done = threading.Event()
        try:
            self._queue.put(done, timeout=timeout)
        except queue.Full:  # 10,000 records ahead of it, and none written for `timeout`
            return False
        return done.wait(timeout)

    def _drop(self, why: str) -> None:
        self.dropped += 1
        if self.dropped == 1 or self.dropped % WARN_EVERY == 0:
            logger.warning("prediction log %s %s: %d records dropped", self.path, why, self.dropped)

    def _ensure_writer(self) -> None:
        # Threads do not survive fork: each Gunicorn worker starts its own writer on first use, with
        # a queue of its own (one inherited could hold the parent's records, or a lock held at fork).
        if self._writer_pid == os.getpid():
            return
        with self._lock:
            if self._writer_pid != os.getpid():
                self._writer_pid = os.getpid()
                self._queue = _Lines(self._queue.maxsize)
                threading.Thread(target=self._write_forever, args=(self._queue,), name="prediction-log",
                                 daemon=True).start()  # fmt: skip

    def _write_forever(self, lines: _Lines) -> None:
        # Never ends: a line that cannot be written is dropped and counted, and the file is opened
        # again for the next one (the disk may have room by then, the folder may be back).
        file = _AppendedFile(self.path)
        while True:
            line = lines.get()
            if isinstance(line, threading.Event):  # a flush marker: all before it is written
                line.set()
                continue
            try:
                file.write(line.encode())
            except OSError as error:
                file.close()
                self._drop(f"cannot be written ({error})")


class _AppendedFile:
    """The log file, held open for appending, opened again when its path names another file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._descriptor: int | None = None
        self._checked = 0.0

    def write(self, data: bytes) -> None:
        if self._descriptor is None or self._moved():
            self.close()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._descriptor = os.open(self.path, _APPEND, 0o644)
        os.write(self._descriptor, data)

    def close(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None

    def _moved(self) -> bool:
        # At most once a second: a removed file would otherwise take every record with it, unseen.
        now = time.monotonic()
        if now - self._checked < RECHECK_SECONDS:
            return False
        self._checked = now
        try:
            named, held = os.stat(self.path), os.fstat(self._descriptor)
        except OSError:
            return True
        return (named.st_dev, named.st_ino) != (held.st_dev, held.st_ino)
