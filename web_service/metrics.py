"""Prometheus metrics, correct across Gunicorn workers (prometheus-client multiprocess mode).

Gunicorn's config points PROMETHEUS_MULTIPROC_DIR at a fresh folder before any worker starts;
each worker writes its own files there and /metrics adds them up. Without that variable (a test
client, `flask run`) the metrics live in this process alone.
"""

from __future__ import annotations

import os
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
    values,
)

from web_service import process
from web_service.observe import Answered

if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # prometheus-client asks os.getpid() (a system call) on every update to notice a fork; the
    # process module knows it without asking. Set before the metrics below are created.
    values.ValueClass = values.MultiProcessValue(process_identifier=process.pid)

REQUESTS = Counter("ride_duration_http_requests_total", "HTTP requests answered.", ["method", "route", "status"])
LATENCY = Histogram(
    "ride_duration_http_request_duration_seconds",
    "Time to answer a request, in seconds.",
    ["route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
PREDICTED = Histogram(
    "ride_duration_predicted_minutes",
    "Predicted ride durations, in minutes.",
    buckets=(1, 2, 5, 10, 15, 20, 30, 45, 60, 90),
)
BATCH = Histogram("ride_duration_batch_size", "Rides per POST /predict.", buckets=(1, 2, 5, 10, 50, 100, 500, 1000))
MODEL = Gauge(
    "ride_duration_model_info", "The model this server serves (value 1).", ["model_version", "source"],
    multiprocess_mode="max",
)  # fmt: skip


# Any other method a client invents is counted as "other": labels must stay few.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def init_metrics(app: Flask, model_version: str, source: str) -> None:
    """Record the served model; expose GET /metrics. Requests are counted by `RequestMetrics`."""
    MODEL.labels(model_version=model_version, source=source).set(1)
    app.add_url_rule("/metrics", "metrics", _metrics)


class RequestMetrics:
    """An observer counting each answered request by method, route and status, and timing it."""

    def __init__(self) -> None:
        # Looking a labelled child up by its labels costs more than updating it: keep them.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def __call__(self, answered: Answered) -> None:
        key = (answered.method if answered.method in METHODS else "other", answered.route or "unmatched",
               answered.status)  # fmt: skip
        children = self._children.get(key)
        if children is None:
            method, route, status = key
            children = REQUESTS.labels(method, route, str(status)), LATENCY.labels(route)
            self._children[key] = children
        counter, latency = children
        counter.inc()
        latency.observe(answered.seconds)


def observe_predictions(durations: list[float]) -> None:
    BATCH.observe(len(durations))
    for duration in durations:
        PREDICTED.observe(duration)


def _metrics() -> Response:
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY as registry
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
