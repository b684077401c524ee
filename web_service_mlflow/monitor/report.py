"""The drift report as JSON: current rides against a reference profile, check by check.

The statistics are web_service.drift's, the ones the live /metrics gauges use, so that a report and
an alert about the same rides cannot disagree. This module only gathers them with what a reader
needs around them: where both sides came from, which model predicted, the errors when actual
durations are known, and day by day, since a model goes stale one day at a time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from web_service.drift import (
    Profile,
    Thresholds,
    build_profile,
    compare,
    drifted_columns,
    error_check,
    error_metrics,
)
from web_service.predictor import Predictor
from web_service_mlflow.monitor.rides import ACTUAL, PREDICTED, TIME, Rides

REPORT_FORMAT = 1


class NoProfile(ValueError):
    """The run chosen as the reference was logged without a reference profile."""


@dataclass(frozen=True)
class Reference:
    """The profile the current rides are compared with, and what the report says of its origin."""

    profile: Profile
    about: dict[str, Any]


def validation_metrics(predictor: Predictor) -> dict[str, float]:
    """The run's validation RMSE from its training record, when training wrote one."""
    record = predictor.metadata.get("training") or {}
    rmse = (record.get("metrics") or {}).get("rmse")
    return {"valid_rmse": float(rmse)} if isinstance(rmse, int | float) and math.isfinite(rmse) else {}


def model_about(predictor: Predictor) -> dict[str, Any]:
    return {"model_version": predictor.model_version, "run_id": predictor.metadata.get("run_id")}


def reference_from_rides(rides: Rides, predictor: Predictor) -> Reference:
    """A profile built now from reference rides that `predictor` scored (a TLC file, a batch output)."""
    source = ", ".join(rides.sources)
    profile = build_profile(rides.columns, validation_metrics(predictor), source=source)
    kind = " + ".join(dict.fromkeys(rides.kinds))  # "trip data" for a TLC file
    about = {"kind": kind, "source": source, "rides": len(rides), "skipped": rides.skipped} | model_about(predictor)
    return Reference(profile, about)


def reference_from_run(predictor: Predictor) -> Reference:
    """The run's own profile, logged when it was trained (its `reference/profile.json`)."""
    profile = predictor.profile
    if profile is None:
        run = predictor.metadata.get("run_id") or predictor.model_version
        raise NoProfile(
            f"run {run} has no reference profile (reference/profile.json); give --reference with the run's "
            f"training file, or give the run one with python -m web_service_mlflow.monitor.profile --run-id {run} "
            "--reference <its training file> --log"
        )
    if "valid_rmse" not in profile.metrics:  # a profile from before training logged it: the record may know
        profile = Profile(profile.rides, profile.numeric, profile.zones,
                          validation_metrics(predictor) | profile.metrics, profile.about)  # fmt: skip
    about = {"kind": "run profile", "source": str(profile.about.get("source") or predictor.source),
             "rides": profile.rides} | model_about(predictor) | {"profile": profile.about}  # fmt: skip
    return Reference(profile, about)


def build_report(reference: Reference, current: Rides, predictor: Predictor, thresholds: Thresholds,
                 seconds: float) -> dict[str, Any]:  # fmt: skip
    """Everything report.json holds; its values are JSON-safe (NaN written as null)."""
    checks = compare(reference.profile, current.columns, thresholds)
    has_actual = current.has(ACTUAL)
    if has_actual:
        error = error_check(reference.profile, current.columns[ACTUAL], current.columns[PREDICTED], thresholds)
        checks += [error] if error is not None else []
    drifted = drifted_columns(checks)
    report = {
        "format": REPORT_FORMAT,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "drift_detected": bool(drifted),
        "drifted_columns": drifted,
        "reference": reference.about,
        "current": {
            "sources": current.sources,
            "kinds": current.kinds,
            "rides": len(current),
            "skipped": current.skipped,
            "model_versions": current.model_versions,
        },  # fmt: skip
        "model": {
            "model_version": predictor.model_version,
            "source": predictor.source,
            "run_id": predictor.metadata.get("run_id"),
        },  # fmt: skip
        "thresholds": asdict(thresholds),
        "checks": [check.to_json() for check in checks],
        "errors": errors(current, reference.profile) if has_actual else None,
        "error_over_time": error_over_time(current.columns) if has_actual else [],
        "warnings": version_warnings(reference, current),
        "seconds": round(seconds, 2),
    }
    return json_safe(report)


def errors(current: Rides, profile: Profile) -> dict[str, Any]:
    measured = error_metrics(current.columns[ACTUAL], current.columns[PREDICTED])
    return measured | {"valid_rmse": profile.metrics.get("valid_rmse"), "valid_mae": profile.metrics.get("valid_mae")}


def error_over_time(columns: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
    """RMSE and MAE per day of the rides' time, for the days that have rides with a known duration."""
    actual, predicted, times = columns[ACTUAL], columns[PREDICTED], columns[TIME]
    known = np.isfinite(actual) & ~np.isnat(times)
    days = times[known].astype("datetime64[D]")
    rows = []
    for day in np.unique(days):
        on_day = days == day
        measured = error_metrics(actual[known][on_day], predicted[known][on_day])
        if measured["rides"]:
            rows.append({"day": str(day)} | measured)
    return rows


def version_warnings(reference: Reference, current: Rides) -> list[str]:
    """Predictions made by another model than the reference's are compared with the wrong baseline."""
    expected = reference.about.get("model_version")
    others = [version for version in current.model_versions if version != expected]
    if not others:
        return []
    return [
        f"current predictions come from model {', '.join(others)}, the reference's from {expected}: "
        "predicted_duration and the errors compare two models, not two months"
    ]


def json_safe(value: Any) -> Any:
    """The value with NaN and infinities as None and numpy scalars as Python's: strict JSON."""
    if isinstance(value, Mapping):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def summary_lines(report: Mapping[str, Any]) -> list[str]:
    """One line per check and the verdict, as the command prints them."""
    lines = []
    for check in report["checks"]:
        statistic = "n/a" if check["statistic"] is None else f"{check['statistic']:.4g}"
        verdict = "DRIFT" if check["drifted"] else ("no verdict" if check["statistic"] is None else "ok")
        lines.append(f"{check['column']:<18} {check['method']:<10} {statistic:>9} (threshold {check['threshold']:g})"
                     f"  {verdict}")  # fmt: skip
    if report["drift_detected"]:
        lines.append(f"drift detected in {', '.join(report['drifted_columns'])}")
    else:
        lines.append(f"no drift: {report['current']['rides']:,} current rides against {report['reference']['rides']:,}")
    return lines
