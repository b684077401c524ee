"""Load the model the settings name into a `Predictor`: resolve, fetch into the cache, load.

A run's artifacts never change, so a model already in the cache is served without contacting
any server, and without importing MLflow. Everything else is retried while transient, within
MODEL_LOAD_TIMEOUT, and fails with one message naming source, run and cause when permanent.
A folder store is read in place, not copied into the cache.

The run's reference profile (`reference/profile.json`, live drift's baseline) comes with the
model when the run has one; DRIFT_PROFILE overrides it. A run without one, or with one that
cannot be read, is served all the same, with live drift off and one log line saying why. A cache
entry made before runs carried a profile asks its source once for the run's (`_with_reference`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path

from web_service.cache import CacheNotWritable, ModelCache
from web_service.drift import Profile, ProfileError, read_profile
from web_service.engine.compiled_store import load_model
from web_service.errors import ModelLoadError, SettingsError, StartupError
from web_service.lineup import Lineup
from web_service.predictor import Predictor
from web_service.settings import AppSettings
from web_service.trust import granting
from web_service_mlflow.flavor import load_run_model, training_record
from web_service_mlflow.layout import MODEL_ARTIFACT, PREPROCESSOR_ARTIFACT, PROFILE_FILE, REFERENCE_ARTIFACT
from web_service_mlflow.needs import tracking_client
from web_service_mlflow.retry import TransientError, with_retries
from web_service_mlflow.settings import ModelSettings, SourceKind, canary_percent, role_environ
from web_service_mlflow.sources import (
    RegistrySource,
    ResolvedModel,
    Source,
    StoreSource,
    TrackingSource,
    Wanted,
    s3_client,
)
from web_service_mlflow.stores import FolderStore, S3Store

logger = logging.getLogger(__name__)
SOURCE_VARIABLES = ("MLFLOW_TRACKING_URI", "MODEL_ARTIFACT_ROOT")
# Beside a cached model: what it was resolved to, so that a start from the cache says the same.
RESOLUTION_FILE = "resolved.json"


def load_from_env(environ: Mapping[str, str]) -> tuple[AppSettings, Predictor]:
    """The settings and the model that the environment names: what the service and batch both load."""
    settings = ModelSettings.from_env(environ)
    ignored = [name for name in SOURCE_VARIABLES if environ.get(name)]
    if settings.is_default_run and ignored:
        logger.warning(
            "neither RUN_ID nor MODEL_URI is set: serving the embedded default run %s, "
            "ignoring %s; set RUN_ID or MODEL_URI to serve from there",
            settings.run_id,
            ", ".join(ignored),
        )
    with granting(settings.trust):  # what may be deserialized: ALLOW_PICKLE, SKOPS_TRUSTED_TYPES
        return settings.app, load_predictor(settings)


def load_service(environ: Mapping[str, str]) -> tuple[AppSettings, Predictor | Lineup]:
    """What the service serves: the primary model, and the canary and shadow when they are set."""
    canary_env, shadow_env = role_environ(environ, "CANARY"), role_environ(environ, "SHADOW")
    percent = canary_percent(environ, canary_env is not None)
    settings, primary = load_from_env(environ)
    if canary_env is None and shadow_env is None:
        return settings, primary
    canary, shadow = (_role_model(env, role) for env, role in ((canary_env, "CANARY"), (shadow_env, "SHADOW")))
    return settings, Lineup(primary, canary, percent, shadow)


def _role_model(environ: Mapping[str, str] | None, role: str) -> Predictor | None:
    if environ is None:
        return None
    try:
        return load_from_env(environ)[1]
    except StartupError as error:
        named = environ.get("MODEL_URI") or environ.get("RUN_ID")
        error.message = f"the {role.lower()} model ({role}_MODEL_URI / {role}_RUN_ID = {named}): {error.message}"
        raise


def make_source(settings: ModelSettings) -> Source:
    if settings.kind in (SourceKind.REGISTRY, SourceKind.TRACKING):
        tracking_client(settings.tracking_uri)  # a tracking database needs what the serving install leaves out
    wanted = Wanted(settings.run_id, settings.artifact_path, settings.model_id)
    match settings.kind:
        case SourceKind.REGISTRY:
            return RegistrySource(settings.tracking_uri, settings.model_uri)
        case SourceKind.TRACKING:
            return TrackingSource(settings.tracking_uri, wanted)
        case SourceKind.S3:
            return StoreSource(S3Store(settings.artifact_root, s3_client), wanted)
        case SourceKind.LOCAL:
            return StoreSource(FolderStore(Path(settings.artifact_root)), wanted)


def load_predictor(settings: ModelSettings) -> Predictor:
    """Resolve, fetch (or find in the cache) and load the model the settings name."""
    started = time.perf_counter()
    source = make_source(settings)
    if isinstance(source, StoreSource) and isinstance(source.store, FolderStore):
        resolved = source.resolve()
        model_dir, preprocessor_dir, reference_dir = source.local_folders(resolved)
        origin = source.description
    else:
        resolved, folder, origin = _fetch(source, ModelCache(settings.cache_dir), settings)
        model_dir, preprocessor_dir = folder / MODEL_ARTIFACT, folder / PREPROCESSOR_ARTIFACT
        reference_dir = folder / REFERENCE_ARTIFACT
    where = source.description
    model, engine = load_model([model_dir, preprocessor_dir], where, settings.cache_dir,
                               lambda: load_run_model(model_dir, preprocessor_dir, where))  # fmt: skip
    logger.info("loaded %s from %s in %.2f s; engine: %s (%s)", resolved.model_version, origin,
                time.perf_counter() - started, engine.name, engine.detail)  # fmt: skip
    metadata = {"run_id": resolved.run_id, "registered_model": resolved.registry_version,
                "logged_model_id": resolved.model_id, "artifact_path": resolved.artifact_path,
                "training": training_record(model_dir, source.description)}  # fmt: skip
    profile = settings.drift_profile or run_profile(reference_dir, resolved)
    return Predictor(model, model_version=resolved.model_version, source=origin, metadata=metadata, engine=engine,
                     profile=profile)  # fmt: skip


def run_profile(reference_dir: Path | None, resolved: ResolvedModel) -> Profile | None:
    """The run's reference profile; None, with one log line saying why, when it has none or it is unusable."""
    path = reference_dir / PROFILE_FILE if reference_dir else None
    if path is None or not path.is_file():
        logger.warning("%s; live drift is off; %s", no_profile(resolved), make_one(resolved))
        return None
    try:
        return read_profile(path)
    except ProfileError as error:
        logger.warning("cannot use the reference profile of %s: %s; live drift is off; %s",
                       _named(resolved), error, make_one(resolved, replace=True))  # fmt: skip
        return None


def no_profile(resolved: ResolvedModel) -> str:
    return f"{_named(resolved)} has no reference profile ({REFERENCE_ARTIFACT}/{PROFILE_FILE})"


def make_one(resolved: ResolvedModel, replace: bool = False) -> str:
    """How to give the run a profile: the command, or DRIFT_PROFILE when no run is known."""
    if not resolved.run_id:
        return "set DRIFT_PROFILE to a profile.json made by python -m web_service_mlflow.monitor.profile"
    return (f"make one with python -m web_service_mlflow.monitor.profile --run-id {resolved.run_id} "
            f"--reference <its training file> --log{' --replace' if replace else ''}")  # fmt: skip


def _named(resolved: ResolvedModel) -> str:
    return f"run {resolved.run_id}" if resolved.run_id else f"model {resolved.model_version}"


def _fetch(source: Source, cache: ModelCache, settings: ModelSettings) -> tuple[ResolvedModel, Path, str]:
    try:
        return _fetch_through_cache(source, cache, settings)
    except CacheNotWritable as error:  # a setting to change: no retry would help
        raise SettingsError(
            f"MODEL_CACHE_DIR={settings.cache_dir}: cannot write the model cache ({error}); the model from "
            f"{source.description} is downloaded there: set MODEL_CACHE_DIR to a folder this user can write"
        ) from None


def _fetch_through_cache(source: Source, cache: ModelCache, settings: ModelSettings) -> tuple[ResolvedModel, Path, str]:
    key = None if settings.kind is SourceKind.REGISTRY else Wanted(settings.run_id, settings.artifact_path,
                                                                   settings.model_id).cache_key()  # fmt: skip
    if key is not None:  # a run ID or a model ID pins the artifacts: the cache can answer alone
        cached = cache.get(key)
        if cached is not None:
            resolved = _resolution(cached, settings)
            _with_reference(source, cache, cached, resolved, fresh=False)
            return resolved, cached, f"cache {cached} (of {source.description})"

    def fetch() -> tuple[ResolvedModel, Path]:
        resolved = source.resolve()

        def fill(dest: Path) -> None:
            source.download(resolved, dest)
            _write_resolution(dest, resolved)

        return resolved, cache.put(resolved.key, fill)

    source.prepare()  # `import mlflow` takes seconds; it is not the server being slow
    resolved, entry = with_retries(fetch, source.description, settings.load_timeout_s)
    _with_reference(source, cache, entry, resolved, fresh=True)  # a registry version cached before
    return resolved, entry, f"{source.description}, cached in {entry}"


def _with_reference(source: Source, cache: ModelCache, entry: Path, resolved: ResolvedModel, fresh: bool) -> None:
    """Add the run's `reference/` to a cache entry made without it, when the run has one.

    Entries record whether their run had one when fetched. Those made before runs carried one are
    checked once, in one attempt: the cached model serves whatever the answer. An entry that
    recorded none is not checked again, as a cached run asks no server: after giving the run a
    profile (monitor.profile --log), remove the entry to fetch the run afresh.
    """
    if (entry / REFERENCE_ARTIFACT).is_dir():
        return
    recorded = "reference" in _saved(entry)
    if recorded and not (fresh and resolved.reference):
        return
    try:
        if not fresh:
            source.prepare()
            resolved = source.resolve()

        def fill(dest: Path) -> None:
            if resolved.reference:
                source.download_reference(resolved, dest)
            _write_resolution(dest, resolved)

        cache.amend(entry.name, fill)
    except (TransientError, ModelLoadError, OSError) as error:
        logger.warning("cannot add the run's reference profile to cache entry %s (%s); serving the entry without "
                       "it; remove the entry to fetch the run afresh", entry, error)  # fmt: skip


def _write_resolution(dest: Path, resolved: ResolvedModel) -> None:
    (dest / RESOLUTION_FILE).write_text(json.dumps(resolved.describe() | {"key": resolved.key}))


def _saved(entry: Path) -> dict:
    try:
        saved = json.loads((entry / RESOLUTION_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return saved if isinstance(saved, dict) else {}


def _resolution(entry: Path, settings: ModelSettings) -> ResolvedModel:
    """What a cached model was resolved to (entries from before this file: the settings' run)."""
    saved = _saved(entry)
    if not saved:
        return ResolvedModel(settings.run_id, artifact_path=settings.artifact_path, model_id=settings.model_id)
    return ResolvedModel(saved.get("run_id"), saved.get("registry_version"), saved.get("artifact_path"),
                         saved.get("model_id"), saved.get("location"), None, saved.get("key"),
                         saved.get("reference"))  # fmt: skip
