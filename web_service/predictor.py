"""A fitted model with its identity, knowing nothing of HTTP or MLflow."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from web_service.features import prepare_features


class DictPipeline(Protocol):
    """What the predictor needs from a model: predict on a list of feature dicts."""

    def predict(self, features: list[dict[str, Any]]) -> Sequence[float]: ...


class Predictor:
    """Predict ride durations in minutes with a (DictVectorizer -> regressor) pipeline."""

    def __init__(self, pipeline: DictPipeline, model_version: str, source: str) -> None:
        self.pipeline = pipeline
        self.model_version = model_version
        self.source = source

    def predict(self, rides: Sequence[Mapping[str, Any]]) -> list[float]:
        """Predict one duration per ride, in the order given."""
        features = [prepare_features(ride) for ride in rides]
        return [float(value) for value in self.pipeline.predict(features)]

    def predict_one(self, ride: Mapping[str, Any]) -> float:
        return self.predict([ride])[0]
