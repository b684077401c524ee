"""Serve the compiled form of a pipeline when, and only when, it gives the pipeline's exact floats.

At load the compiled form and the pipeline (scikit-learn, or xgboost's rule for a booster) both
score probe rides that reach every table row and both sides of every distance threshold; any bit
of difference and the pipeline serves, with a log line saying why. A verified form can be saved
together with the pipeline's answers to the probe, so that a restart checks it again against
those answers without loading scikit-learn, treelite or the model file at all.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from web_service.engine import compiled
from web_service.engine.boosters import BoosterPipeline
from web_service.engine.compiled import CannotCompile, LinearForm, TreeTable
from web_service.features import prepare_features

logger = logging.getLogger(__name__)
PROBE_SEED = 20210201
RANDOM_PROBES = 1000
# The engine that serves an XGBoost model the compiled table cannot hold: web_service.engine.boosters.
XGBOOST_RULE = "xgboost's rule (numpy)"
PROBE_FILE = "probe.json"


@dataclass(frozen=True)
class Engine:
    """What answers predictions, and why: for /model and the start-up log."""

    name: str  # "compiled tree_table", "compiled linear", "scikit-learn" or XGBOOST_RULE
    detail: str
    # Which library and release made the model, and what loading it here had to mend.
    provenance: dict[str, Any] | None = None

    @property
    def compiled(self) -> bool:
        return self.name.startswith("compiled ")

    def describe(self) -> dict[str, Any]:
        found = {"name": self.name, "detail": self.detail}
        return found | ({"model_made_with": self.provenance} if self.provenance else {})


@dataclass(frozen=True)
class Probe:
    """Rides and the floats the pipeline gave for them: the yardstick of a compiled form."""

    rides: list[dict[str, Any]]
    expected: np.ndarray

    def mismatches(self, model: Any) -> list[tuple[dict[str, Any], float, float]]:
        """Rides where `model` differs from the expected floats in any bit, in a batch or one at a time."""
        features = [prepare_features(ride) for ride in self.rides]
        batch = np.asarray(model.predict(features), dtype=np.float64)
        # Small requests take the compiled form's scalar path: it has to agree as well.
        alone = np.array([model.predict([f])[0] for f in features], dtype=np.float64) if features else batch
        # Bit for bit: 0.0 and -0.0 differ, and so would two NaNs.
        wanted = self.expected.view(np.uint64)
        differ = np.flatnonzero((batch.view(np.uint64) != wanted) | (alone.view(np.uint64) != wanted))
        got = np.where(batch.view(np.uint64) != wanted, batch, alone)
        return [(self.rides[i], float(self.expected[i]), float(got[i])) for i in differ]


def choose(pipeline: Any, where: str) -> tuple[Any, Engine, Probe | None]:
    """The compiled form of `pipeline` if it matches it exactly on the probe, else `pipeline`.

    Never raises: whatever goes wrong while compiling or comparing, the pipeline serves as loaded.
    """
    reference = reference_name(pipeline)
    try:
        fast = compiled.compile_pipeline(pipeline)
    except CannotCompile as why:
        logger.info("%s: serving with %s: %s", where, reference, why)
        return pipeline, Engine(reference, f"no compiled form: {why}"), None
    except Exception as error:  # a model made by another release may lack what compiling reads
        logger.warning("%s: compiling failed (%s: %s); serving with %s", where, type(error).__name__, error, reference)
        return pipeline, Engine(reference, f"compiling failed: {type(error).__name__}: {error}"), None
    try:
        rides = probe_rides(fast)
        probe = Probe(rides, np.asarray(pipeline.predict([prepare_features(r) for r in rides]), dtype=np.float64))
        wrong = probe.mismatches(fast)
    except Exception as error:
        logger.warning("%s: checking the compiled %s failed (%s: %s); serving with %s",
                       where, fast.kind, type(error).__name__, error, reference)  # fmt: skip
        return pipeline, Engine(reference, f"checking the compiled form failed: {type(error).__name__}"), None
    if wrong:
        ride, expected, got = wrong[0]
        logger.warning(
            "%s: the compiled %s differs from %s on %d of %d probe rides (first: %s gives %r, "
            "%s %r); serving with %s",
            where, fast.kind, reference, len(wrong), len(rides), ride, got, reference, expected, reference,
        )  # fmt: skip
        return pipeline, Engine(reference, f"compiled {fast.kind} differed on {len(wrong)} probe rides"), None
    return fast, compiled_engine(fast, len(rides), reference), probe


def reference_name(pipeline: Any) -> str:
    """What answers when nothing is compiled, and what a compiled form must equal."""
    return XGBOOST_RULE if isinstance(pipeline, BoosterPipeline) else "scikit-learn"


def compiled_engine(fast: TreeTable | LinearForm, probes: int, reference: str) -> Engine:
    return Engine(f"compiled {fast.kind}", f"{fast.summary()}; equal to {reference} on {probes} probe rides")


def probe_rides(fast: TreeTable | LinearForm, seed: int = PROBE_SEED) -> list[dict[str, Any]]:
    """Rides through every table row and on both sides of every distance threshold, plus random ones."""
    rng = np.random.default_rng(seed)
    pairs = [pair for pair in map(_zones, fast.rows) if pair is not None]
    random_pairs = [tuple(pair) for pair in rng.integers(1, 266, (RANDOM_PROBES, 2)).tolist()]
    distances = _edge_distances(getattr(fast, "thresholds", np.empty(0)))
    distances += rng.exponential(3.0, RANDOM_PROBES).round(2).tolist() + [0.0, 0.01, 40.0, 499.99]
    # Each distance with a row (known or unseen pair), and each known pair at a few distances.
    by_distance = [(pairs + random_pairs)[i] for i in rng.integers(0, len(pairs) + len(random_pairs), len(distances))]
    rides = [_ride(pair, distance) for pair, distance in zip(by_distance, distances, strict=True)]
    for pair in pairs:
        rides += [_ride(pair, distances[i]) for i in rng.integers(0, len(distances), 2)]
    return rides


def _edge_distances(thresholds: np.ndarray) -> list[float]:
    # The largest float32 at or under each threshold, and the next float32 above it.
    below = thresholds.astype(np.float32)
    below = np.where(below.astype(np.float64) > thresholds, np.nextafter(below, np.float32(-np.inf)), below)
    above = np.nextafter(below, np.float32(np.inf))
    return [float(x) for x in np.concatenate([below, above]) if np.isfinite(x) and x >= 0]


def _zones(value: str) -> tuple[int, int] | None:
    pickup, _, dropoff = value.partition("_")
    return (int(pickup), int(dropoff)) if pickup.isdigit() and dropoff.isdigit() else None


def _ride(pair: Sequence[int], distance: float) -> dict[str, Any]:
    return {"PULocationID": int(pair[0]), "DOLocationID": int(pair[1]), "trip_distance": float(distance)}


# --- a verified form on disk ------------------------------------------------------------------


def save_verified(fast: TreeTable | LinearForm, probe: Probe, engine: Engine, folder: Path) -> None:
    """Save the compiled form with the probe and the pipeline's answers to it."""
    compiled.save(fast, folder)
    # float.hex keeps every bit of the pipeline's answers through JSON.
    record = {"rides": probe.rides, "expected": [float(x).hex() for x in probe.expected],
              "engine": {"detail": engine.detail, "provenance": engine.provenance}}  # fmt: skip
    (folder / PROBE_FILE).write_text(json.dumps(record))


def load_verified(folder: Path, where: str) -> tuple[TreeTable | LinearForm, Engine] | None:
    """A saved form that still gives the recorded answers, or None (logged) if it does not."""
    try:
        fast = compiled.load(folder)
        record: Mapping[str, Any] = json.loads((folder / PROBE_FILE).read_text())
        probe = Probe(record["rides"], np.array([float.fromhex(x) for x in record["expected"]], dtype=np.float64))
        wrong = probe.mismatches(fast)
    except (OSError, ValueError, KeyError, TypeError) as error:
        logger.warning("%s: the saved compiled form in %s is unreadable (%s); compiling again", where, folder, error)
        return None
    if wrong:
        logger.warning("%s: the saved compiled form in %s differs on %d probe rides; compiling again",
                       where, folder, len(wrong))  # fmt: skip
        return None
    saved = record.get("engine") or {}
    detail = saved.get("detail") or compiled_engine(fast, len(probe.rides), "the pipeline").detail
    return fast, Engine(f"compiled {fast.kind}", detail, saved.get("provenance"))
