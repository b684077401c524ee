"""A fitted model with its identity, knowing nothing of HTTP or MLflow."""

from __future__ import annotations

import math
import platform
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Protocol

from web_service.features import FEATURE_NAMES, prepare_features

# The course's example ride: what the self-check predicts before the service calls itself ready.
EXAMPLE_RIDE = {"PULocationID": 10, "DOLocationID": 50, "trip_distance": 40.0}
LIBRARIES = ("scikit-learn", "numpy", "scipy", "flask", "gunicorn", "mlflow", "skops")


class DictPipeline(Protocol):
    """What the predictor needs from a model: predict on a list of feature dicts."""

    def predict(self, features: list[dict[str, Any]]) -> Sequence[float]: ...


class Predictor:
    """Predict ride durations in minutes with a (DictVectorizer -> regressor) pipeline."""

    def __init__(
        self, pipeline: DictPipeline, model_version: str, source: str, metadata: Mapping[str, Any] | None = None
    ) -> None:
        self.pipeline = pipeline
        self.model_version = model_version
        self.source = source
        # What the loader knows: run ID, registry name and version, training params and metrics.
        self.metadata = dict(metadata or {})
        self.loaded_at = datetime.now(UTC).isoformat(timespec="seconds")

    def predict(self, rides: Sequence[Mapping[str, Any]]) -> list[float]:
        """Predict one duration per ride, in the order given."""
        features = [prepare_features(ride) for ride in rides]
        return [float(value) for value in self.pipeline.predict(features)]

    def predict_one(self, ride: Mapping[str, Any]) -> float:
        return self.predict([ride])[0]

    def self_check(self) -> dict[str, Any]:
        """Predict the example ride; raise if the model cannot give a finite duration."""
        duration = self.predict_one(EXAMPLE_RIDE)
        if not math.isfinite(duration):
            raise ValueError(f"the example ride got {duration!r}, not a finite duration")
        return {"ride": EXAMPLE_RIDE, "duration": duration}

    def describe(self) -> dict[str, Any]:
        """Everything an on-call engineer asks first: which model, from where, how it was made."""
        steps = getattr(self.pipeline, "steps", [])
        model = steps[-1][1] if steps else self.pipeline
        vectorizer = steps[0][1] if steps else None
        return {
            "model_version": self.model_version,
            "source": self.source,
            **self.metadata,
            "model_class": type(model).__name__,
            "model_params": _json_safe_params(model),
            "features": {
                "input": list(FEATURE_NAMES),
                "vectorized": len(getattr(vectorizer, "feature_names_", [])),
            },
            "libraries": {"python": platform.python_version()} | _versions(LIBRARIES),
            "loaded_at": self.loaded_at,
        }


def _json_safe_params(model: Any) -> dict[str, Any]:
    params = model.get_params(deep=False) if hasattr(model, "get_params") else {}
    return {k: v if isinstance(v, (str, int, float, bool, type(None))) else repr(v) for k, v in params.items()}


def _versions(names: Sequence[str]) -> dict[str, str]:
    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found
