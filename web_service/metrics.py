"""Prometheus metrics, correct across Gunicorn workers (prometheus-client multiprocess mode).

Gunicorn's config points PROMETHEUS_MULTIPROC_DIR at a fresh folder before any worker starts;
each worker writes its own files there and /metrics adds them up. Without that variable (a test
client, `flask run`) the metrics live in this process alone. The metrics are created when the
app is built, not on import: their files need the folder, which is created then if it is missing.

prometheus-client writes a memory-mapped file under a lock on every update, and a request makes
seven: under load that costs a tenth of the request. So each process adds its updates up in
memory (`PENDING`) and writes them every FLUSH_SECONDS from a thread of its own, when it answers
/metrics, and when it exits: a scrape sees the other workers at most FLUSH_SECONDS late. For one
ride per request that buys 1-3.6 % of throughput (bench/results/ablation.md); for a request of
1,000 rides it saves 1,000 histogram writes, a third of the app's CPU for it (ablation_batch.md).
It writes prometheus-client's private
per-bucket values, which tests/web_service/test_prometheus_internals.py holds to the pinned release.
"""

from __future__ import annotations

import functools
import glob
import os
import threading
from bisect import bisect_left
from typing import Any

from flask import Flask, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from web_service.environment import env_str, read
from web_service.errors import SettingsError
from web_service.observe import Answered
from web_service.server import process

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"


class ServiceMetrics:
    """The service's metrics; `service_metrics()` creates them once per process."""

    def __init__(self) -> None:
        self.requests = Counter(
            "ride_duration_http_requests_total", "HTTP requests answered.", ["method", "route", "status"]
        )
        self.latency = Histogram(
            "ride_duration_http_request_duration_seconds",
            "Time to answer a request, in seconds.",
            ["route"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        )
        # By the model that answered: with a canary, two versions answer side by side.
        self.predicted = Histogram(
            "ride_duration_predicted_minutes",
            "Predicted ride durations, in minutes, by the model version that answered.",
            ["model_version"],
            buckets=(1, 2, 5, 10, 15, 20, 30, 45, 60, 90),
        )
        self.shadow_diff = Histogram(
            "ride_duration_shadow_abs_diff_minutes",
            "|shadow - answered| per ride, in minutes, by shadow model version.",
            ["model_version"],
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 60),
        )
        self.shadow_errors = Counter(
            "ride_duration_shadow_errors_total", "Requests the shadow model failed to score.", ["model_version"]
        )
        # Written by the Gunicorn master, which watches the registry (web_service.server.hotswap).
        self.reloads = Counter("ride_duration_model_reloads_total", "Models swapped in without a restart.")
        self.reload_failures = Counter(
            "ride_duration_model_reload_failures_total",
            "Candidate models refused (failed to load, verify or self-check) or not fetched; the old one serves on.",
        )
        # Labelled by the watched registry, so that only a service that watches an alias has a value:
        # an unlabelled gauge exists from its creation, at 0, and would read "unreachable" everywhere.
        self.registry_up = Gauge(
            "ride_duration_model_registry_up", "1 when the last check of the model registry answered, else 0.",
            ["registry"], multiprocess_mode="max",
        )  # fmt: skip
        self.batch = Histogram(
            "ride_duration_batch_size", "Rides per POST /predict.", buckets=(1, 2, 5, 10, 50, 100, 500, 1000)
        )
        self.model = Gauge(
            "ride_duration_model_info", "The model this server serves (value 1).", ["model_version", "source"],
            multiprocess_mode="max",
        )  # fmt: skip
        # "live" modes: a dead worker's value leaves with it (gunicorn.conf.py's child_exit).
        self.ready = Gauge(
            "ride_duration_ready", "1 when the model passed its self-check and serves, else 0.",
            multiprocess_mode="livemin",
        )  # fmt: skip
        self.drift_score = Gauge(
            "ride_duration_drift_score", "Drift of recent rides from the run's reference profile (largest worker).",
            ["column", "method"], multiprocess_mode="livemax",
        )  # fmt: skip
        self.drift_threshold = Gauge(
            "ride_duration_drift_threshold", "The score above which a column counts as drifted.",
            ["column", "method"], multiprocess_mode="livemax",
        )  # fmt: skip
        self.drift_detected = Gauge(
            "ride_duration_drift_detected", "1 when a drift score of the column is over its threshold.",
            ["column"], multiprocess_mode="livemax",
        )  # fmt: skip
        # Labelled, so that only the workers that keep a window have a value: an unlabelled gauge
        # exists from its creation, in the Gunicorn master too, where it would stay 0.
        self.drift_window = Gauge(
            "ride_duration_drift_window_rides", "Recent rides compared with the profile (smallest worker window).",
            ["model_version"], multiprocess_mode="livemin",
        )  # fmt: skip


@functools.cache
def service_metrics() -> ServiceMetrics:
    """The metrics of this process, created on first use; fails naming an unusable metrics folder."""
    folder = metrics_folder()
    if folder:
        ensure_folder(folder)
    return ServiceMetrics()


def metrics_folder() -> str | None:
    """PROMETHEUS_MULTIPROC_DIR: where this process's counts go (gunicorn.conf.py sets it for a server); None: here."""
    return env_str(read(), MULTIPROC_DIR)


def ensure_folder(folder: str) -> None:
    """Create the multiprocess folder (and its parents) if it is missing; say why if it cannot be."""
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        raise SettingsError(f"{MULTIPROC_DIR}={folder}: cannot create the metrics folder ({error})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SettingsError(f"{MULTIPROC_DIR}={folder}: the metrics folder is not writable")


FLUSH_SECONDS = 1.0


class Pending:
    """Counter and histogram updates of this process, added up until they are written."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[Any, float] = {}  # counter child -> increments
        self._observed: dict[Any, list[float]] = {}  # histogram child -> [count per bucket..., sum]
        self._flusher = process.Periodic(FLUSH_SECONDS, self.flush, "metrics-flush")

    def inc(self, counter: Any) -> None:
        self._flusher.ensure_running()
        with self._lock:
            self._counts[counter] = self._counts.get(counter, 0.0) + 1.0

    def observe(self, histogram: Any, values: list[float]) -> None:
        """As `histogram.observe(v)` for each of `values`: one count in the first bucket it fits."""
        self._flusher.ensure_running()
        bounds = histogram._upper_bounds  # the last is +Inf
        with self._lock:
            totals = self._observed.get(histogram)
            if totals is None:
                totals = self._observed[histogram] = [0.0] * (len(bounds) + 1)
            for value in values:
                if value <= bounds[-1]:  # NaN fits no bucket, as in observe()
                    totals[bisect_left(bounds, value)] += 1
                totals[-1] += value

    def flush(self) -> None:
        """Write everything added up so far into prometheus-client's values."""
        with self._lock:
            counts, self._counts = self._counts, {}
            observed, self._observed = self._observed, {}
        for counter, amount in counts.items():
            counter.inc(amount)
        for histogram, totals in observed.items():
            # A histogram's per-bucket and sum values, as its own observe() updates them.
            for bucket, count in zip(histogram._buckets, totals, strict=False):
                if count:
                    bucket.inc(count)
            histogram._sum.inc(totals[-1])


PENDING = Pending()

# Any other method a client invents is counted as "other": labels must stay few.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def init_metrics(app: Flask) -> None:
    """Expose GET /metrics. `RequestMetrics` counts requests."""
    app.add_url_rule("/metrics", "metrics", _metrics)


def announce_model(model_version: str, source: str, ready: bool) -> None:
    """Record the served model and its readiness: for this process and every worker forked from it."""
    global _ready
    metrics = service_metrics()
    metrics.model.labels(model_version=model_version, source=source).set(1)
    _ready = 1 if ready else 0
    metrics.ready.set(_ready)


class RequestMetrics:
    """An observer counting each answered request by method, route and status, and timing it."""

    def __init__(self) -> None:
        self._metrics = service_metrics()

    def __call__(self, answered: Answered) -> None:
        method = answered.method if answered.method in METHODS else "other"
        route = answered.route or "unmatched"
        PENDING.inc(self._metrics.requests.labels(method, route, str(answered.status)))
        PENDING.observe(self._metrics.latency.labels(route), [answered.seconds])


def observe_predictions(durations: list[float], model_version: str) -> None:
    metrics = service_metrics()
    PENDING.observe(metrics.batch, [len(durations)])
    PENDING.observe(metrics.predicted.labels(model_version=model_version), durations)


def observe_shadow(model_version: str, differences: list[float] | None) -> None:
    """The shadow's |difference| per ride, or None when it failed to score the request."""
    metrics = service_metrics()
    if differences is None:
        PENDING.inc(metrics.shadow_errors.labels(model_version=model_version))
    else:
        PENDING.observe(metrics.shadow_diff.labels(model_version=model_version), differences)


def retire_model(model_version: str, source: str) -> None:
    """The swapped-out model's info gauge goes to 0 (a multiprocess file keeps a removed label's value)."""
    service_metrics().model.labels(model_version=model_version, source=source).set(0)


_ready: int | None = None  # what announce_model recorded, set again in every forked worker


def _ready_again_in_worker() -> None:
    # The first update in a forked worker starts the worker's own file with every inherited value
    # at 0 (prometheus-client's fork handling): "ready" would read 0 under "livemin" while the app,
    # built before the fork (GUNICORN_PRELOAD), serves.
    if _ready is not None and metrics_folder():
        service_metrics().ready.set(_ready)


os.register_at_fork(after_in_child=_ready_again_in_worker)


class SizedFilesCollector:
    """The workers' files added up as prometheus-client's MultiProcessCollector does, the empty ones left out.

    A process creates its file empty and sizes it a moment later; a scrape in that moment made the
    stock collector raise on the whole scrape (a 500 from /metrics; prometheus/client_python#1199).
    An empty file holds nothing yet, so leaving it out loses no count.
    """

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def collect(self) -> Any:
        return multiprocess.MultiProcessCollector.merge(_sized_files(self.folder), accumulate=True)


def _sized_files(folder: str) -> list[str]:
    sized = []
    for path in glob.glob(os.path.join(folder, "*.db")):
        try:
            if os.path.getsize(path) > 0:
                sized.append(path)
        except OSError:  # removed since the glob: a worker's gauges, cleaned up as it exited
            continue
    return sized


def _metrics() -> Response:
    PENDING.flush()  # this worker's own counts are exact; the others' at most FLUSH_SECONDS late
    if folder := metrics_folder():
        registry = CollectorRegistry()
        registry.register(SizedFilesCollector(folder))
    else:
        from prometheus_client import REGISTRY as registry
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
