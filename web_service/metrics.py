"""Prometheus metrics, correct across Gunicorn workers (prometheus-client multiprocess mode).

Gunicorn's config points PROMETHEUS_MULTIPROC_DIR at a fresh folder before any worker starts;
each worker writes its own files there and /metrics adds them up. Without that variable (a test
client, `flask run`) the metrics live in this process alone.
"""

from __future__ import annotations

import os
import time

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

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


def init_metrics(app: Flask, model_version: str, source: str) -> None:
    """Count every request; expose GET /metrics."""
    MODEL.labels(model_version=model_version, source=source).set(1)
    app.before_request(_start)
    app.after_request(_count)
    app.add_url_rule("/metrics", "metrics", _metrics)


def observe_predictions(durations: list[float]) -> None:
    BATCH.observe(len(durations))
    for duration in durations:
        PREDICTED.observe(duration)


def _start() -> None:
    g.metrics_started = time.perf_counter()


def _count(response: Response) -> Response:
    route = request.url_rule.rule if request.url_rule else "unmatched"
    REQUESTS.labels(method=request.method, route=route, status=str(response.status_code)).inc()
    LATENCY.labels(route=route).observe(time.perf_counter() - g.get("metrics_started", time.perf_counter()))
    return response


def _metrics() -> Response:
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY as registry
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
