"""The hot swap under load: requests lost, p99 before and during it, and how soon the new model answers.

    python -m bench.swap            # `make bench-swap`: about 2 minutes, writes bench/results/swap.md

A real `mlflow server` (SQLite backend, artifacts on local disk) holds two registered versions of
the small test forest; Gunicorn serves `models:/ride-duration@production` (MODEL_POLL_SECONDS=1,
2 workers); clients post single rides back to back, each on a new connection, recording send
time, latency, status and the answer's model_version. After a steady stretch the alias moves to
version 2. Figures: requests sent and failed; p99 of the steady stretch before the move against
p99 of the swap window (the move to 2 s after the first answer of the new version); seconds from
the move to that first answer; and the last answer of the old version after it.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import publish

RIDE = json.dumps({"PULocationID": 10, "DOLocationID": 50, "trip_distance": 4.2})
RESULTS = Path(__file__).parent / "results" / "swap.md"
# After the first answer of the new version: how long the old workers may still answer what they held.
SWAP_TAIL_S = 2.0


@dataclass(frozen=True)
class Sample:
    sent: float  # time.monotonic() when the request left
    seconds: float
    status: int  # 0: no answer (reset, refused, timed out)
    version: str | None
    error: str | None = None


@dataclass
class Load:
    samples: list[Sample] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, sample: Sample) -> None:
        with self._lock:
            self.samples.append(sample)

    def seen(self) -> list[Sample]:
        with self._lock:
            return list(self.samples)

    def first_answer_of(self, version: str, after: float) -> Sample | None:
        found = [s for s in self.seen() if s.version == version and s.sent >= after]
        return min(found, key=lambda s: s.sent + s.seconds, default=None)


def _client(host: str, port: int, load: Load, stopping: threading.Event, headers: dict[str, str]) -> None:
    while not stopping.is_set():
        connection = http.client.HTTPConnection(host, port, timeout=30)
        sent = time.monotonic()
        try:
            connection.request("POST", "/predict", RIDE, {"Content-Type": "application/json", **headers})
            response = connection.getresponse()
            body = response.read()
            version = json.loads(body).get("model_version") if response.status == 200 else None
            load.add(Sample(sent, time.monotonic() - sent, response.status, version,
                            None if response.status == 200 else body[:200].decode(errors="replace")))  # fmt: skip
        except (OSError, http.client.HTTPException, ValueError) as error:
            load.add(Sample(sent, time.monotonic() - sent, 0, None, repr(error)))
        finally:
            connection.close()


@contextmanager
def recorded_load(host: str, port: int, clients: int = 8, headers: dict[str, str] | None = None) -> Iterator[Load]:
    """`clients` clients post a ride back to back, each request timed, until the block ends."""
    load, stopping = Load(), threading.Event()
    threads = [threading.Thread(target=_client, args=(host, port, load, stopping, headers or {}), daemon=True)
               for _ in range(clients)]  # fmt: skip
    for thread in threads:
        thread.start()
    try:
        yield load
    finally:
        stopping.set()
        for thread in threads:
            thread.join(timeout=60)


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98] if len(values) > 1 else float("nan")


@dataclass(frozen=True)
class SwapFigures:
    sent: int
    failed: int
    failures: list[str]
    steady_requests: int
    steady_p99_ms: float
    swap_requests: int
    swap_p99_ms: float
    move_to_first_new_s: float
    last_old_after_first_new_s: float
    old_after_tail: int  # answers of the old version to requests sent after the swap's tail

    def as_dict(self) -> dict:
        return asdict(self)


def swap_figures(samples: list[Sample], steady_from: float, moved: float, old: str, new: str) -> SwapFigures:
    """The figures of one swap: `moved` is when the alias moved, `steady_from` when the steady stretch began."""
    answered_new = [s for s in samples if s.version == new]
    first_new = min(s.sent + s.seconds for s in answered_new) if answered_new else float("nan")
    tail_end = first_new + SWAP_TAIL_S
    old_after = [s.sent + s.seconds for s in samples if s.version == old and s.sent + s.seconds >= first_new]
    failed = [s for s in samples if s.status != 200]
    steady = [s.seconds for s in samples if steady_from <= s.sent < moved]
    swap = [s.seconds for s in samples if moved <= s.sent < tail_end]
    return SwapFigures(
        sent=len(samples),
        failed=len(failed),
        failures=[f"{s.status} {s.error}" for s in failed[:10]],
        steady_requests=len(steady),
        steady_p99_ms=round(p99(steady) * 1000, 2),
        swap_requests=len(swap),
        swap_p99_ms=round(p99(swap) * 1000, 2),
        move_to_first_new_s=round(first_new - moved, 2),
        last_old_after_first_new_s=round(max(old_after) - first_new, 2) if old_after else 0.0,
        old_after_tail=sum(1 for s in samples if s.version == old and s.sent >= tail_end),
    )


def run(workdir: Path) -> tuple[SwapFigures, str]:
    """Start the registry and the service, move the alias under load; the figures and the server's log."""
    from harness.registry import two_registered_versions

    with two_registered_versions(workdir) as (tracking, first, second, name):
        return measure_swap(workdir, tracking.url, name, first, second)


def measure_swap(workdir: Path, tracking_url: str, name: str, first: str, second: str, steady_s: float = 8.0,
                 after_s: float = 6.0, clients: int = 8, **server: Any) -> tuple[SwapFigures, str]:  # fmt: skip
    """Serve @production (version 1 of `name`) under load, move it to version 2; the figures and the log.

    `server`: more `harness.gunicorn.gunicorn` arguments (`user`, `MODEL_CACHE_DIR`).
    """
    from mlflow import MlflowClient

    from harness.gunicorn import gunicorn

    registry = MlflowClient(tracking_url)
    registry.set_registered_model_alias(name, "production", "1")
    variables = {"MODEL_URI": f"models:/{name}@production", "MLFLOW_TRACKING_URI": tracking_url,
                 "MODEL_POLL_SECONDS": "1", "WEB_CONCURRENCY": "2"}  # fmt: skip
    old, new = f"{first} (models:/{name}/1)", f"{second} (models:/{name}/2)"
    with gunicorn("web_service_mlflow.predict:app", workdir / "swap.log", **variables, **server) as running:
        host, port = running.url.removeprefix("http://").split(":")
        with recorded_load(host, int(port), clients) as load:
            time.sleep(1.0)  # connections and caches warm
            steady_from = time.monotonic()
            time.sleep(steady_s)
            moved = time.monotonic()
            registry.set_registered_model_alias(name, "production", "2")
            deadline = moved + 120
            while load.first_answer_of(new, moved) is None and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(after_s)
        return swap_figures(load.seen(), steady_from, moved, old, new), running.output()


def table(figures: SwapFigures) -> str:
    return "\n".join([
        "# The hot swap under load (bench/swap.py)",
        "",
        "Gunicorn, 2 workers, MODEL_POLL_SECONDS=1; 8 clients posting one ride each, a new connection per request;",
        "the alias moves from version 1 to version 2 of a registered model on a real `mlflow server`.",
        "",
        "| sent | failed | steady p99 | swap-window p99 | ratio | move → first new answer | last old answer after it |",
        "|---|---|---|---|---|---|---|",
        f"| {figures.sent:,} | {figures.failed} "
        f"| {figures.steady_p99_ms:.2f} ms ({figures.steady_requests:,} requests) "
        f"| {figures.swap_p99_ms:.2f} ms ({figures.swap_requests:,} requests) "
        f"| {figures.swap_p99_ms / figures.steady_p99_ms:.2f}x | {figures.move_to_first_new_s:.2f} s "
        f"| {figures.last_old_after_first_new_s:.2f} s |",
        "",
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bench-swap-") as folder:
        figures, _ = run(Path(folder))
    publish(args.out, table(figures), figures.as_dict())
    return 0 if figures.failed == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
