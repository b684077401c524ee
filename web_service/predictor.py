"""A fitted model with its identity, knowing nothing of HTTP or MLflow."""

from __future__ import annotations

import json
import math
import platform
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any, NotRequired, Protocol

import numpy as np
from pydantic import Field
from typing_extensions import TypedDict  # pydantic needs this one on Python < 3.12

from web_service.drift import Profile
from web_service.engine.compiled import model_facts
from web_service.engine.fastpath import Engine
from web_service.features import FEATURE_NAMES, prepare_features, prepare_features_columns
from web_service.redact import shown, shown_tree

# The course's example ride: what the self-check predicts before the service calls itself ready.
EXAMPLE_RIDE = {"PULocationID": 10, "DOLocationID": 50, "trip_distance": 40.0}
LIBRARIES = ("scikit-learn", "numpy", "scipy", "flask", "gunicorn", "mlflow", "skops")


class FeaturesDescription(TypedDict):
    """What the model reads."""

    input: Annotated[list[str], Field(description="The features prepare_features makes of a ride.")]
    vectorized: Annotated[int, Field(description="Columns the DictVectorizer learned.")]


class EngineDescription(TypedDict):
    """What computes predictions: a compiled form verified against scikit-learn, or scikit-learn itself."""

    name: Annotated[str, Field(description='"compiled tree_table", "compiled linear", "scikit-learn", ...')]
    detail: Annotated[
        str, Field(description="Why this engine: what was verified, or why the compiled form was not used.")
    ]
    model_made_with: NotRequired[
        Annotated[
            dict[str, Any], Field(description="The library and release that made the model; what loading it mended.")
        ]
    ]


class ModelDescription(TypedDict):
    """What GET /model answers: which model, from where, how it was made (Predictor.describe)."""

    model_version: Annotated[str, Field(description="The run ID (and registry version), or <file>:<sha256 prefix>.")]
    source: Annotated[str, Field(description="Where the model was loaded from, with no secret or machine path.")]
    # What the loader knows (metadata); a pickle file has none of it.
    run_id: NotRequired[str | None]
    registered_model: NotRequired[
        Annotated[str | None, Field(description="<name>/<version> when served by MODEL_URI.")]
    ]
    logged_model_id: NotRequired[str | None]
    artifact_path: NotRequired[str | None]
    training: NotRequired[
        Annotated[dict[str, Any] | None, Field(description="Training parameters and metrics of the run.")]
    ]
    model_class: str
    model_params: dict[str, Any]
    features: FeaturesDescription
    engine: EngineDescription
    libraries: Annotated[dict[str, str], Field(description="Python and library versions of this process.")]
    loaded_at: Annotated[str, Field(description="When this process loaded the model (ISO 8601, UTC).")]
    reference_profile: Annotated[
        dict[str, Any] | None, Field(description="The training rides' profile that live drift compares with, if any.")
    ]


class DictPipeline(Protocol):
    """What the predictor needs from a model: predict on a list of feature dicts."""

    def predict(self, features: list[dict[str, Any]]) -> Sequence[float]: ...


class Predictor:
    """Predict ride durations in minutes with a (DictVectorizer -> regressor) pipeline."""

    def __init__(
        self,
        pipeline: DictPipeline,
        model_version: str,
        source: str,
        metadata: Mapping[str, Any] | None = None,
        engine: Engine | None = None,
        profile: Profile | None = None,
    ) -> None:
        self.pipeline = pipeline  # a scikit-learn Pipeline, or its compiled form (web_service.engine.compiled)
        self.model_version = model_version
        self.model_version_json = json.dumps(model_version)  # as answers carry it, encoded once
        self.source = source
        self.engine = engine or Engine("scikit-learn", "as loaded")
        # What the loader knows: run ID, registry name and version, training params and metrics.
        self.metadata = dict(metadata or {})
        self.loaded_at = datetime.now(UTC).isoformat(timespec="seconds")
        # The run's reference profile (its `reference/` artifact, or DRIFT_PROFILE): live drift's baseline.
        self.profile = profile
        self.profile_summary = None if profile is None else profile.summary()  # as /model shows it

    def publish(self, roots: Mapping[Path, str]) -> None:
        """Show source and metadata as the open /model and the metrics may: no secret, no machine path."""
        self.source = shown(self.source, roots)
        self.metadata = shown_tree(self.metadata, roots)
        if self.profile_summary is not None:  # its source is the training file: a path on some machine
            self.profile_summary = shown_tree(self.profile_summary, roots)

    def predict(self, rides: Sequence[Mapping[str, Any]]) -> list[float]:
        """Predict one duration per ride, in the order given."""
        predicted = self.pipeline.predict([prepare_features(ride) for ride in rides])
        # A compiled form answers small requests with a list of floats already; numpy arrays convert.
        return predicted if isinstance(predicted, list) else np.asarray(predicted, dtype=np.float64).tolist()

    def predict_columns(self, pickup: np.ndarray, dropoff: np.ndarray, distance: np.ndarray) -> np.ndarray:
        """Predict rides given as arrays of zone IDs and miles, already checked against the contract.

        The compiled forms look the columns up directly (the same table and operations as
        `predict`); scikit-learn gets the very feature dicts `predict` would build.
        """
        if len(distance) == 0:  # scikit-learn refuses an empty batch; a batch of refused rides is one
            return np.empty(0, dtype=np.float64)
        columnar = getattr(self.pipeline, "predict_columns", None)
        if columnar is not None:
            return np.asarray(columnar(pickup, dropoff, distance), dtype=np.float64)
        features = prepare_features_columns(pickup.tolist(), dropoff.tolist(), distance.tolist())
        return np.asarray(self.pipeline.predict(features), dtype=np.float64)

    def predict_one(self, ride: Mapping[str, Any]) -> float:
        return self.predict([ride])[0]

    def self_check(self) -> dict[str, Any]:
        """Predict the example ride; raise if the model cannot give a finite duration."""
        duration = self.predict_one(EXAMPLE_RIDE)
        if not math.isfinite(duration):
            raise ValueError(f"the example ride got {duration!r}, not a finite duration")
        return {"ride": EXAMPLE_RIDE, "duration": duration}

    def describe(self) -> ModelDescription:
        """Everything an on-call engineer asks first: which model, from where, how it was made.

        Its type is /model's schema in the OpenAPI document; the metadata's keys are its optional ones.
        """
        facts = model_facts(self.pipeline)
        return {  # type: ignore[typeddict-item]
            "model_version": self.model_version,
            "source": self.source,
            **self.metadata,
            "model_class": facts.model_class,
            "model_params": facts.model_params,
            "features": {"input": list(FEATURE_NAMES), "vectorized": facts.vectorized_features},
            "engine": self.engine.describe(),
            "libraries": {"python": platform.python_version()} | _versions(LIBRARIES),
            "loaded_at": self.loaded_at,
            "reference_profile": self.profile_summary,
        }


def _versions(names: Sequence[str]) -> dict[str, str]:
    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found
