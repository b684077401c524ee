"""What web_service/metrics.py's Pending takes from prometheus-client beyond its public API.

Pending adds a request's observations up in memory and writes them into a histogram's private
per-bucket values (`_upper_bounds`, `_buckets`, `_sum`) once a second: a request of 1,000 rides
would otherwise make 1,000 histogram writes (about 2.8 ms). prometheus-client is pinned to a minor
release for that; these tests fail when a release stores a histogram differently.
"""

from __future__ import annotations

import math
from importlib.metadata import version as installed

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram

from web_service.metrics import Pending

BUCKETS = (1, 5, 10, 30, 60)
VALUES = [0.2, 1.0, 1.0000001, 4.9, 5, 7.5, 29.99, 30, 59, 60, 61, 1e6, 0.0, -3.0, math.nan]


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple], float]:
    found = {}
    for metric in registry.collect():
        for sample in metric.samples:
            if not sample.name.endswith("_created"):
                found[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return found


def _twins() -> tuple[tuple[CollectorRegistry, Histogram, Counter], ...]:
    made = []
    for _ in range(2):
        registry = CollectorRegistry()
        histogram = Histogram("rides", "Rides.", ["route"], buckets=BUCKETS, registry=registry)
        counter = Counter("answers", "Answers.", ["route"], registry=registry)
        made.append((registry, histogram.labels("/predict"), counter.labels("/predict")))
    return tuple(made)


def test_pending_writes_what_observe_and_inc_would_have_written() -> None:
    (by_hand, histogram, counter), (as_pending, pending_histogram, pending_counter) = _twins()
    for value in VALUES:
        histogram.observe(value)
        counter.inc()
    pending = Pending()
    pending.observe(pending_histogram, VALUES)
    for _ in VALUES:
        pending.inc(pending_counter)
    pending.flush()
    expected, written = _samples(by_hand), _samples(as_pending)
    assert expected.keys() == written.keys()
    for key, value in expected.items():
        assert written[key] == value or (math.isnan(value) and math.isnan(written[key])), key


def test_a_histogram_child_still_keeps_its_bounds_per_bucket_values_and_sum() -> None:
    (_, histogram, _), _ = _twins()
    assert list(histogram._upper_bounds) == [*map(float, BUCKETS), math.inf]
    assert len(histogram._buckets) == len(BUCKETS) + 1
    histogram.observe(7.5)
    # Per bucket, not cumulative: the one value sits in the (5, 10] bucket alone.
    assert [bucket.get() for bucket in histogram._buckets] == [0, 0, 1, 0, 0, 0]
    assert histogram._sum.get() == 7.5


def test_prometheus_client_is_the_minor_release_these_internals_were_read_from() -> None:
    version = installed("prometheus-client")  # the module has no __version__
    assert version.split(".")[:2] == ["0", "26"], (
        f"prometheus-client {version}: re-read Histogram's _upper_bounds/_buckets/_sum against "
        "web_service.metrics.Pending, then move the Pipfile pin and this test"
    )


@pytest.mark.parametrize("value", [-1.0, 0.0])
def test_values_at_or_below_the_first_bound_land_in_the_first_bucket(value: float) -> None:
    (_, histogram, _), (_, pending_histogram, _) = _twins()
    histogram.observe(value)
    pending = Pending()
    pending.observe(pending_histogram, [value])
    pending.flush()
    assert [b.get() for b in pending_histogram._buckets] == [b.get() for b in histogram._buckets]


def test_the_stock_multiprocess_collector_still_fails_on_an_empty_file(tmp_path):
    # Why metrics.SizedFilesCollector exists: when a release reads an empty file as empty
    # (prometheus/client_python#1199), this fails, and the stock collector can serve /metrics again.
    from prometheus_client import generate_latest, multiprocess

    (tmp_path / "counter_103.db").touch()
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, str(tmp_path))

    with pytest.raises(Exception, match="unpack_from requires a buffer"):
        generate_latest(registry)
