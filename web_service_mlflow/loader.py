"""Load the model the settings name into a `Predictor`: resolve, fetch into the cache, load.

A run's artifacts never change, so a run already in the cache is served without contacting
any server, and without importing MLflow. Everything else is retried while transient, within
MODEL_LOAD_TIMEOUT, and fails with one message naming source, run and cause when permanent.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from web_service.predictor import Predictor
from web_service_mlflow.cache import ModelCache
from web_service_mlflow.compiled_store import load_model
from web_service_mlflow.flavor import training_record
from web_service_mlflow.layout import MODEL_ARTIFACT, PREPROCESSOR_ARTIFACT
from web_service_mlflow.retry import with_retries
from web_service_mlflow.settings import ModelSettings, SourceKind
from web_service_mlflow.sources import (
    LocalSource,
    RegistrySource,
    ResolvedModel,
    S3Source,
    Source,
    TrackingSource,
)

logger = logging.getLogger(__name__)


def make_source(settings: ModelSettings) -> Source:
    match settings.kind:
        case SourceKind.REGISTRY:
            return RegistrySource(settings.tracking_uri, settings.model_uri)
        case SourceKind.TRACKING:
            return TrackingSource(settings.tracking_uri, settings.run_id)
        case SourceKind.S3:
            return S3Source(settings.artifact_root, settings.run_id)
        case SourceKind.LOCAL:
            return LocalSource(Path(settings.artifact_root), settings.run_id)


def load_predictor(settings: ModelSettings) -> Predictor:
    """Resolve, fetch (or find in the cache) and load the model the settings name."""
    started = time.perf_counter()
    source = make_source(settings)
    if isinstance(source, LocalSource):
        resolved, folder, origin = ResolvedModel(settings.run_id), source.run_dir(), source.description
    else:
        resolved, folder, origin = _fetch(source, ModelCache(settings.cache_dir), settings)
    model_dir = folder / MODEL_ARTIFACT
    model, engine = load_model(model_dir, folder / PREPROCESSOR_ARTIFACT, source.description, settings.cache_dir)
    logger.info("loaded %s from %s in %.2f s; engine: %s (%s)", resolved.model_version, origin,
                time.perf_counter() - started, engine.name, engine.detail)  # fmt: skip
    metadata = {"run_id": resolved.run_id, "registered_model": resolved.registry_version,
                "training": training_record(model_dir, source.description)}  # fmt: skip
    return Predictor(model, model_version=resolved.model_version, source=origin, metadata=metadata, engine=engine)


def _fetch(source: Source, cache: ModelCache, settings: ModelSettings) -> tuple[ResolvedModel, Path, str]:
    if settings.run_id is not None:  # a run ID pins the artifacts: the cache can answer alone
        cached = cache.get(settings.run_id)
        if cached is not None:
            return ResolvedModel(settings.run_id), cached, f"cache {cached} (of {source.description})"

    def fetch() -> tuple[ResolvedModel, Path]:
        resolved = source.resolve()
        return resolved, cache.put(resolved.run_id, lambda dest: source.download(resolved, dest))

    resolved, entry = with_retries(fetch, source.description, settings.load_timeout_s)
    return resolved, entry, f"{source.description}, cached in {entry}"
