"""Live drift: each worker compares its recent rides with the served run's profile, off the request path.

A request only copies its (already validated) rides' numbers and durations into four arrays of
doubles, under a lock. A thread of the worker wakes every DRIFT_INTERVAL_SECONDS, moves the queued
rides into a sliding window of the last DRIFT_WINDOW rides, measures the window against the
profile with the report's own methods (`web_service.drift.compare`) and sets the gauges:

    ride_duration_drift_score{column,method}     PSI and KS for numbers, Jensen-Shannon for zones
    ride_duration_drift_threshold{column,method} the line each score is held to
    ride_duration_drift_detected{column}         1 when a score of the column is over its line
    ride_duration_drift_window_rides{model_version}  rides in the window (the smallest worker's)

Each worker sees its own share of the traffic; the gauges keep the largest score of the live
workers (multiprocess mode "livemax"). No score is set before DRIFT_MIN_RIDES rides arrived:
over 265 zones a few hundred rides read as drift by sampling noise alone.
"""

from __future__ import annotations

import logging
import threading
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from web_service import drift
from web_service.server.process import Periodic

logger = logging.getLogger(__name__)
# The order of the queue's arrays.
COLUMNS = ("trip_distance", "PULocationID", "DOLocationID", "predicted_duration")


def _columns() -> tuple[array, array, array, array]:
    return array("d"), array("d"), array("d"), array("d")


@dataclass(frozen=True)
class LiveDriftSettings:
    """DRIFT_* variables: how often, over how many rides, and against which lines."""

    enabled: bool = True  # DRIFT_MONITOR
    interval_s: float = 30.0  # DRIFT_INTERVAL_SECONDS
    window: int = 10_000  # DRIFT_WINDOW: the last rides each worker keeps
    thresholds: drift.Thresholds = drift.Thresholds()  # DRIFT_PSI, DRIFT_KS, DRIFT_JS, DRIFT_MIN_RIDES


class LiveDrift:
    """One worker's window of recent rides and the gauges it sets (`gauges` is ServiceMetrics)."""

    def __init__(self, profile: drift.Profile, settings: LiveDriftSettings, gauges: Any, model_version: str) -> None:
        self.profile = profile
        self.model_version = model_version
        self.settings = settings
        self.gauges = gauges
        # Four flat arrays of doubles, not the requests' own ride dicts: holding thousands of small
        # objects for 30 s among the requests' short-lived ones pinned Python's memory arenas, and
        # cost 17 MB per worker under load; these cost 8 bytes a value (docs/monitoring.md, Live drift).
        self._queued = _columns()
        self._lock = threading.Lock()
        self._window = {name: np.empty(0) for name in COLUMNS}
        self.checks: list[drift.Check] = []
        self._periodic = Periodic(settings.interval_s, self.update, "live-drift")

    def record(self, rides: Sequence[Mapping[str, Any]], durations: Sequence[float]) -> None:
        """On the request path: copy the rides' numbers into the queue; the oldest go past two windows."""
        self._periodic.ensure_running()
        with self._lock:
            distance, pickup, dropoff, predicted = self._queued
            for ride in rides:
                distance.append(ride["trip_distance"])
                pickup.append(ride["PULocationID"])
                dropoff.append(ride["DOLocationID"])
            predicted.extend(durations)
            if len(predicted) > 2 * self.settings.window:  # a memmove now and then, not one per request
                for column in self._queued:
                    del column[: -self.settings.window]

    def update(self) -> None:
        """Off the request path: move queued rides into the window, compare, set the gauges."""
        with self._lock:
            queued, self._queued = self._queued, _columns()
        keep = self.settings.window
        for name, column in zip(COLUMNS, queued, strict=True):
            if column:
                self._window[name] = np.concatenate([self._window[name], np.frombuffer(column)])[-keep:]
        rides = len(self._window["trip_distance"])
        self.gauges.drift_window.labels(self.model_version).set(rides)
        if rides < self.settings.thresholds.min_rides:
            return
        self.checks = drift.compare(self.profile, self._window, self.settings.thresholds)
        self._publish(self.checks)

    def _publish(self, checks: list[drift.Check]) -> None:
        detected: dict[str, bool] = {}
        for check in checks:
            if check.statistic is None:
                continue
            self.gauges.drift_score.labels(check.column, check.method).set(check.statistic)
            self.gauges.drift_threshold.labels(check.column, check.method).set(check.threshold)
            detected[check.column] = detected.get(check.column, False) or check.drifted
        for column, drifted in detected.items():
            self.gauges.drift_detected.labels(column).set(1 if drifted else 0)


def start_live_drift(profile: drift.Profile | None, settings: LiveDriftSettings, gauges: Any,
                     model_version: str) -> LiveDrift | None:  # fmt: skip
    """The live monitor of this model, or None (with the reason logged) when it cannot run."""
    if not settings.enabled:
        logger.info("live drift is off (DRIFT_MONITOR=false)")
        return None
    if profile is None:
        # INFO: the loader has already warned, naming the run and the command that makes one.
        logger.info(
            "live drift is off: model %s has no reference profile (a run's reference/profile.json, or DRIFT_PROFILE)",
            model_version,
        )
        return None
    logger.info(
        "live drift: each worker compares its last %d rides with the %d-ride reference profile every %g s",
        settings.window, profile.rides, settings.interval_s,
    )  # fmt: skip
    return LiveDrift(profile, settings, gauges, model_version)
