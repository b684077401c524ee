"""A burst of concurrent requests with a server stop in the middle: what a deploy or scale-in does.

Clients send requests back to back; when the stop is issued they start no new request, as a load
balancer that has taken the server out of rotation, but every request already on its way must
be answered. One that is reset, or answered with an error, is lost.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

# Heavier than one ride, so that a stop surely lands while requests are in flight.
RIDES = [{"PULocationID": 1 + i % 260, "DOLocationID": 50, "trip_distance": 0.5 + i % 30} for i in range(200)]
BODY = json.dumps(RIDES)


@dataclass
class Burst:
    answered: int = 0  # 200 with a body
    lost: list[str] = field(default_factory=list)  # accepted, then reset or answered with an error
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count_answered(self) -> None:
        with self._lock:
            self.answered += 1

    def count_lost(self, detail: str) -> None:
        with self._lock:
            self.lost.append(detail)

    def wait_answered(self, count: int, timeout: float = 60) -> None:
        """Wait until `count` requests in all have been answered; fail saying how many were if they never are."""
        deadline = time.monotonic() + timeout
        while self.answered < count:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{self.answered} of {count} requests answered after {timeout:g} s; lost: {self.lost[:3]}"
                )
            time.sleep(0.01)


def _client(host: str, port: int, burst: Burst, stopping: threading.Event, deadline: float) -> None:
    while not stopping.is_set() and time.monotonic() < deadline:
        connection = http.client.HTTPConnection(host, port, timeout=30)
        try:
            connection.request("POST", "/predict", BODY, {"Content-Type": "application/json"})
            response = connection.getresponse()
            body = response.read()
            if response.status == 200 and body.startswith(b"["):
                burst.count_answered()
            else:
                burst.count_lost(f"{response.status} {body[:200]!r}")
        except (OSError, http.client.HTTPException) as error:
            burst.count_lost(repr(error))
        finally:
            connection.close()


def burst_with_stop(host: str, port: int, stop: Callable[[], None], clients: int = 32,
                    limit_s: float = 60) -> Burst:  # fmt: skip
    """`clients` concurrent clients send requests; `stop()` is called while they do, once more than
    `clients` have been answered: the traffic is flowing, whatever the machine's load."""
    burst, stopping = Burst(), threading.Event()
    deadline = time.monotonic() + limit_s
    threads = [threading.Thread(target=_client, args=(host, port, burst, stopping, deadline)) for _ in range(clients)]
    for thread in threads:
        thread.start()
    try:
        burst.wait_answered(clients + 1, timeout=limit_s)
        stopping.set()
        stop()
    finally:
        stopping.set()
        for thread in threads:
            thread.join()
    return burst


@contextmanager
def steady_load(host: str, port: int, clients: int = 16, limit_s: float = 120) -> Iterator[Burst]:
    """`clients` concurrent clients send requests back to back until the block ends."""
    burst, stopping = Burst(), threading.Event()
    deadline = time.monotonic() + limit_s
    threads = [threading.Thread(target=_client, args=(host, port, burst, stopping, deadline)) for _ in range(clients)]
    for thread in threads:
        thread.start()
    try:
        yield burst
    finally:
        stopping.set()
        for thread in threads:
            thread.join()
