"""Drift statistics against a reference profile: PSI, KS and Jensen-Shannon, on numpy and scipy.

A profile is a small summary of the rides a model was trained on (`build_profile`): 1,001
quantiles and decile bins of each numeric column, zone counts, and the run's errors. `compare`
measures current rides against it, column by column, with the methods the monitor report and
the live /metrics gauges share:

- numeric columns (trip_distance, predicted_duration): PSI on the reference's deciles, and the
  two-sample KS statistic D (the largest gap between the two distribution functions) as an
  effect size. Its p-value is reported but never decides: at 60,000 rides it flags everything.
- zone columns (PULocationID, DOLocationID): the Jensen-Shannon distance (base 2, 0 to 1) of the
  zone frequencies, zones under MIN_ZONE_SHARE of the reference pooled into one "other" bin.
  Pooling keeps the sampling noise of a few thousand rides over 265 zones from reading as drift.
- errors, when actual durations are known: RMSE and MAE on rides of 1 to 60 minutes (the rides
  the model was validated on), compared with the run's validation RMSE.

Thresholds are defaults calibrated on the green TLC months of 2021 (docs/monitoring.md):
random halves of one month and January against February stay quiet, a 1.3x distance shift or
a third of the pickups moved to other zones is detected.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from web_service.errors import SettingsError

PROFILE_FORMAT = 1
NUMERIC_COLUMNS = ("trip_distance", "predicted_duration")
ZONE_COLUMNS = ("PULocationID", "DOLocationID")
COLUMNS = ("trip_distance", "PULocationID", "DOLocationID", "predicted_duration")
QUANTILES = 1001  # 0.1 % steps: the KS statistic read off them is within 0.001 of the exact one
DECILES = 10
# PSI's logarithm needs no empty bin on either side; the usual floor.
PSI_FLOOR = 1e-4
MIN_ZONE_SHARE = 0.005
OTHER_ZONE = "other"
# The durations the model was fitted and validated on (web_service_mlflow.data): errors outside
# them are not the model's error rate.
ERROR_MINUTES = (1.0, 60.0)


@dataclass(frozen=True)
class Thresholds:
    """When a statistic counts as drift; each overridable (monitor flags, DRIFT_* settings)."""

    # Calibrated on green 2021 (docs/monitoring.md): January against February reads PSI 0.0005,
    # KS 0.008, JS 0.034; 5,000 February rides PSI 0.004, KS 0.013, JS 0.052; distances x1.3
    # read PSI 0.059, KS 0.10, and a third of the pickups moved JS 0.16. The folklore PSI line of
    # 0.1 (or 0.25) would miss trips 30 % longer: on deciles that is a PSI of 0.06.
    psi: float = 0.03
    ks: float = 0.06  # D: the two distribution functions differ by 6 points somewhere
    js: float = 0.1  # Jensen-Shannon distance, base 2
    rmse_ratio: float = 1.25  # current RMSE over the run's validation RMSE (February reads 1.00)
    # Fewer current rides than this and a column gets no verdict: over 265 zones the JS distance of
    # 1,000 rides drawn from the reference itself is 0.11, of 5,000 rides 0.05.
    min_rides: int = 5000

    def for_method(self, method: str) -> float:
        return {"psi": self.psi, "ks": self.ks, "js": self.js, "rmse_ratio": self.rmse_ratio}[method]


class ProfileError(ValueError):
    """A profile that is not one this code wrote, or that lacks what a comparison needs."""


# --- the statistics, each checked against textbook values in tests/web_service/test_drift.py ---


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index of two bin fractions: sum of (c - r) * ln(c / r)."""
    r = np.maximum(np.asarray(reference, dtype=float), PSI_FLOOR)
    c = np.maximum(np.asarray(current, dtype=float), PSI_FLOOR)
    return float(np.sum((c - r) * np.log(c / r)))


def ks_statistic(reference_quantiles: np.ndarray, current: np.ndarray) -> float:
    """KS D between the distribution given by evenly spaced quantiles and a sample.

    The reference distribution function at x is the share of its quantiles at or below x; the
    current one, of the sample's values. Both are right-continuous step functions, so the
    largest gap is at one of their steps: the union of both sets of values.
    """
    quantiles = np.asarray(reference_quantiles, dtype=float)
    values = np.sort(np.asarray(current, dtype=float))
    points = np.union1d(quantiles, values)
    f_ref = np.searchsorted(quantiles, points, side="right") / len(quantiles)
    f_cur = np.searchsorted(values, points, side="right") / len(values)
    # Left limits too: an atom both share (a 0.0 distance) jumps in both at the same point.
    g_ref = np.searchsorted(quantiles, points, side="left") / len(quantiles)
    g_cur = np.searchsorted(values, points, side="left") / len(values)
    return float(max(np.max(np.abs(f_ref - f_cur)), np.max(np.abs(g_ref - g_cur))))


def ks_pvalue(statistic: float, reference_rides: int, current_rides: int) -> float:
    """The asymptotic two-sample p-value of D (Kolmogorov's distribution), for information only."""
    n = reference_rides * current_rides / (reference_rides + current_rides)
    return kolmogorov_survival(statistic * math.sqrt(n)) if n > 0 else 1.0


def kolmogorov_survival(x: float) -> float:
    """P(K > x) for Kolmogorov's K: 2 * sum over k >= 1 of (-1)^(k-1) exp(-2 k^2 x^2) (scipy's kolmogorov)."""
    if x < 0.2:  # the series converges slowly there, and the value is 1 to 15 digits
        return 1.0
    k = np.arange(1, 101)
    return float(min(1.0, max(0.0, 2 * np.sum((-1.0) ** (k - 1) * np.exp(-2 * k**2 * x**2)))))


def js_distance(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2) of two count vectors over the same categories: 0 to 1."""
    p = np.asarray(reference_counts, dtype=float)
    q = np.asarray(current_counts, dtype=float)
    if p.sum() <= 0 or q.sum() <= 0:
        return 0.0
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2
    divergence = (_kl_bits(p, m) + _kl_bits(q, m)) / 2
    return float(math.sqrt(max(divergence, 0.0)))


def _kl_bits(p: np.ndarray, m: np.ndarray) -> float:
    """Kullback-Leibler divergence in bits, 0 * log 0 taken as 0 (m > 0 wherever p > 0)."""
    held = p > 0
    return float(np.sum(p[held] * np.log2(p[held] / m[held])))


# --- the profile ---


@dataclass(frozen=True)
class NumericProfile:
    count: int
    mean: float
    quantiles: list[float]  # QUANTILES values, from the minimum to the maximum
    edges: list[float]  # the inner decile edges, ties merged: bins are (-inf, e0], (e0, e1], ...
    fractions: list[float]  # the reference's share in each bin

    def bin_fractions(self, values: np.ndarray) -> np.ndarray:
        counts = np.bincount(np.searchsorted(self.edges, values, side="left"), minlength=len(self.fractions))
        return counts / max(len(values), 1)


@dataclass(frozen=True)
class ZoneProfile:
    count: int
    counts: dict[str, int]  # zone ID (as text, as JSON keys are) -> rides

    def pooled(self) -> tuple[list[str], np.ndarray]:
        """The zones kept apart (at least MIN_ZONE_SHARE of the reference) and the counts with "other" last."""
        kept = sorted((zone for zone, n in self.counts.items() if n >= MIN_ZONE_SHARE * self.count), key=_zone_key)
        other = self.count - sum(self.counts[zone] for zone in kept)
        return kept, np.array([self.counts[zone] for zone in kept] + [other], dtype=float)


@dataclass(frozen=True)
class Profile:
    """What a run's training rides looked like, and how well the run did."""

    rides: int
    numeric: dict[str, NumericProfile]
    zones: dict[str, ZoneProfile]
    metrics: dict[str, float] = field(default_factory=dict)  # train_rmse, valid_rmse, valid_mae
    about: dict[str, Any] = field(default_factory=dict)  # source, run_id, created: shown, never compared

    def to_json(self) -> dict[str, Any]:
        return {"format": PROFILE_FORMAT} | asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Profile:
        if not isinstance(data, Mapping) or data.get("format") != PROFILE_FORMAT:
            found = data.get("format") if isinstance(data, Mapping) else type(data).__name__
            raise ProfileError(f"not a reference profile of format {PROFILE_FORMAT} (format: {found})")
        try:
            numeric = {name: NumericProfile(**value) for name, value in data["numeric"].items()}
            zones = {name: ZoneProfile(**value) for name, value in data["zones"].items()}
            return cls(int(data["rides"]), numeric, zones, dict(data.get("metrics", {})), dict(data.get("about", {})))
        except (KeyError, TypeError, ValueError) as error:
            raise ProfileError(f"a reference profile with a missing or malformed part ({error!r})") from None

    def summary(self) -> dict[str, Any]:
        """What /model shows of it: how many rides, from where, and the run's errors."""
        return {"rides": self.rides, "metrics": self.metrics} | self.about

    def with_about(self, **about: Any) -> Profile:
        return replace(self, about=self.about | about)


def numeric_profile(values: np.ndarray) -> NumericProfile:
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        raise ProfileError("no finite value to profile")
    # Values that occurred, kept exact (never rounded): many rides share a prediction or a distance,
    # and a quantile a hair off such an atom misplaces its whole step (rounded to 6 digits, a
    # month compared with its own profile read KS 0.028 instead of 0.001).
    quantiles = np.quantile(values, np.linspace(0, 1, QUANTILES), method="inverted_cdf")
    edges = np.unique(np.quantile(values, np.linspace(0, 1, DECILES + 1)[1:-1], method="inverted_cdf"))
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)
    return NumericProfile(
        count=len(values),
        mean=_round(values.mean()),
        quantiles=[float(q) for q in quantiles],  # exact: rounded, an atom's step would move off it
        edges=[float(e) for e in edges],  # exact: a rounded edge would move the ties it sits on
        fractions=[_round(f) for f in counts / len(values)],
    )


def zone_profile(zones: np.ndarray) -> ZoneProfile:
    ids, counts = np.unique(np.asarray(zones).astype(np.int64), return_counts=True)
    return ZoneProfile(count=int(counts.sum()), counts={str(i): int(n) for i, n in zip(ids, counts, strict=True)})


def build_profile(columns: Mapping[str, np.ndarray], metrics: Mapping[str, float] | None = None,
                  **about: Any) -> Profile:  # fmt: skip
    """A profile of rides: `columns` holds trip_distance, the two zones and predicted_duration."""
    missing = [name for name in COLUMNS if name not in columns]
    if missing:
        raise ProfileError(f"cannot profile rides without {', '.join(missing)}")
    return Profile(
        rides=len(columns["trip_distance"]),
        numeric={name: numeric_profile(columns[name]) for name in NUMERIC_COLUMNS},
        zones={name: zone_profile(columns[name]) for name in ZONE_COLUMNS},
        metrics={name: float(value) for name, value in (metrics or {}).items()},
        about=dict(about),
    )


def read_profile(path: Path, shown_as: str | None = None) -> Profile:
    """A profile file as `Profile.to_json` wrote it; a ProfileError naming the file when it is not one."""
    where = shown_as or str(path)
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise ProfileError(f"{where}: cannot read it ({getattr(error, 'strerror', None) or error})") from None
    try:
        data = json.loads(text)
    except ValueError as error:
        raise ProfileError(f"{where}: not JSON ({error})") from None
    try:
        return Profile.from_json(data)
    except ProfileError as error:
        raise ProfileError(f"{where}: {error}") from None


def profile_setting(environ: Mapping[str, str], name: str = "DRIFT_PROFILE") -> Profile | None:
    """DRIFT_PROFILE: a profile file to compare against instead of the model's own, read once at start."""
    value = (environ.get(name) or "").strip()
    if not value:
        return None
    try:
        return read_profile(Path(value), shown_as=f"{name}={value}")
    except ProfileError as error:
        raise SettingsError(
            f"{error}; set {name} to a profile.json made by python -m web_service_mlflow.monitor.profile, "
            "or unset it to use the run's own reference/profile.json"
        ) from None


def error_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float | int]:
    """RMSE and MAE on the rides of ERROR_MINUTES, as validation measured them."""
    actual, predicted = np.asarray(actual, dtype=float), np.asarray(predicted, dtype=float)
    low, high = ERROR_MINUTES
    kept = np.isfinite(actual) & np.isfinite(predicted) & (actual >= low) & (actual <= high)
    diff = predicted[kept] - actual[kept]
    if len(diff) == 0:
        return {"rides": 0, "rmse": math.nan, "mae": math.nan}
    return {"rides": int(kept.sum()), "rmse": float(np.sqrt(np.mean(diff**2))), "mae": float(np.mean(np.abs(diff)))}


# --- the comparison ---


@dataclass(frozen=True)
class Check:
    """One statistic of one column against its threshold."""

    column: str
    method: str
    statistic: float | None  # None: not computed (too few rides, or nothing to compare)
    threshold: float
    drifted: bool
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def compare(profile: Profile, current: Mapping[str, np.ndarray], thresholds: Thresholds = Thresholds()) -> list[Check]:
    """Every check the current columns allow; a column absent from `current` is left out."""
    checks: list[Check] = []
    for name in COLUMNS:
        values = current.get(name)
        if values is None or name not in (profile.numeric | profile.zones):
            continue
        if name in profile.numeric:
            checks += numeric_checks(name, profile.numeric[name], np.asarray(values, dtype=float), thresholds)
        else:
            checks.append(zone_check(name, profile.zones[name], np.asarray(values), thresholds))
    return checks


def numeric_checks(name: str, reference: NumericProfile, values: np.ndarray, thresholds: Thresholds) -> list[Check]:
    values = values[np.isfinite(values)]
    if len(values) < thresholds.min_rides:
        return [_too_few(name, method, len(values), thresholds) for method in ("psi", "ks")]
    index = psi(reference.fractions, reference.bin_fractions(values))
    d = ks_statistic(np.asarray(reference.quantiles), values)
    rides = {"rides": len(values), "reference_mean": reference.mean, "current_mean": _round(values.mean())}
    return [
        Check(name, "psi", _round(index), thresholds.psi, index > thresholds.psi, rides),
        Check(name, "ks", _round(d), thresholds.ks, d > thresholds.ks,
              rides | {"p_value": ks_pvalue(d, reference.count, len(values))}),
    ]  # fmt: skip


def zone_check(name: str, reference: ZoneProfile, zones: np.ndarray, thresholds: Thresholds) -> Check:
    if len(zones) < thresholds.min_rides:
        return _too_few(name, "js", len(zones), thresholds)
    kept, ref_counts = reference.pooled()
    current = current_zone_counts(kept, zones)
    js = js_distance(ref_counts, current)
    moved = top_moved_zones(kept, ref_counts, current)
    return Check(name, "js", _round(js), thresholds.js, js > thresholds.js, {"rides": len(zones), "top_moved": moved})


def current_zone_counts(kept: list[str], zones: np.ndarray) -> np.ndarray:
    """Counts of `zones` in the order of `kept`, every other zone in one last bin."""
    ids, counts = np.unique(np.asarray(zones).astype(np.int64), return_counts=True)
    position = {zone: i for i, zone in enumerate(kept)}
    pooled = np.zeros(len(kept) + 1)
    for zone, n in zip(ids, counts, strict=True):
        pooled[position.get(str(zone), len(kept))] += n
    return pooled


def top_moved_zones(kept: list[str], reference: np.ndarray, current: np.ndarray, top: int = 10) -> list[dict[str, Any]]:
    """The zones whose share moved most, largest change first."""
    ref_share, cur_share = reference / reference.sum(), current / max(current.sum(), 1)
    names = [*kept, OTHER_ZONE]
    order = np.argsort(-np.abs(cur_share - ref_share), kind="stable")[:top]
    return [{"zone": names[i], "reference_share": _round(ref_share[i]), "current_share": _round(cur_share[i])}
            for i in order]  # fmt: skip


def error_check(profile: Profile, actual: np.ndarray, predicted: np.ndarray, thresholds: Thresholds) -> Check | None:
    """RMSE against the run's validation RMSE; None when the profile does not know it."""
    valid_rmse = profile.metrics.get("valid_rmse")
    if not valid_rmse:
        return None
    errors = error_metrics(actual, predicted)
    detail = errors | {"valid_rmse": valid_rmse, "valid_mae": profile.metrics.get("valid_mae")}
    if errors["rides"] < thresholds.min_rides:
        return Check("error", "rmse_ratio", None, thresholds.rmse_ratio, False, detail | {"note": "too few rides"})
    ratio = errors["rmse"] / valid_rmse
    return Check("error", "rmse_ratio", _round(ratio), thresholds.rmse_ratio, ratio > thresholds.rmse_ratio, detail)


def drifted_columns(checks: list[Check]) -> list[str]:
    return list(dict.fromkeys(check.column for check in checks if check.drifted))


def _too_few(name: str, method: str, rides: int, thresholds: Thresholds) -> Check:
    note = f"{rides} rides, fewer than the {thresholds.min_rides} a verdict needs"
    return Check(name, method, None, thresholds.for_method(method), False, {"rides": rides, "note": note})


def _zone_key(zone: str) -> tuple[int, str]:
    return (int(zone), zone) if zone.lstrip("-").isdigit() else (1 << 62, zone)


def _round(value: float) -> float:
    return float(f"{float(value):.6g}")
