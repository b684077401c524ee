"""Settings of `web_service_mlflow.predict`: which model to serve, and where it comes from.

Precedence, first match wins:
1. MODEL_URI (models:/<name>@<alias> or models:/<name>/<version>) through MLFLOW_TRACKING_URI;
2. RUN_ID with MODEL_ARTIFACT_ROOT: straight from that artifact root (s3://... or a folder);
3. RUN_ID with MLFLOW_TRACKING_URI: through the tracking server;
4. RUN_ID alone: from this repo's mlruns/;
5. nothing: the embedded default run, from this repo's mlruns/.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from web_service.errors import SettingsError
from web_service.settings import AppSettings, Environ, env_int, env_str
from web_service_mlflow.layout import DEFAULT_RUN_FILE, LOCAL_STORE

RUN_ID_PATTERN = re.compile(r"[0-9a-f]{32}")


class SourceKind(Enum):
    REGISTRY = "registry"
    S3 = "s3"
    LOCAL = "local"
    TRACKING = "tracking"


@dataclass(frozen=True)
class ModelSettings:
    """What to serve and from where; see the module docstring for the precedence."""

    kind: SourceKind
    # RUN_ID: the MLflow run to serve (32 hex digits); None when MODEL_URI names the model.
    run_id: str | None
    # MODEL_URI: a registry URI, models:/<name>@<alias> or models:/<name>/<version>.
    model_uri: str | None
    # MLFLOW_TRACKING_URI: tracking server (or sqlite:///...) for RUN_ID or MODEL_URI.
    tracking_uri: str | None
    # MODEL_ARTIFACT_ROOT: s3://bucket/<prefix>[/<experiment id>] or a folder; default: repo mlruns/.
    artifact_root: str
    # MODEL_CACHE_DIR: where downloaded runs are kept, keyed by run ID.
    cache_dir: Path
    # MODEL_LOAD_TIMEOUT: seconds to keep retrying transient failures at start-up.
    load_timeout_s: int
    # True when nothing chose a model and the embedded default is served.
    is_default_run: bool
    app: AppSettings

    @classmethod
    def from_env(cls, environ: Environ) -> ModelSettings:
        run_id, model_uri = env_str(environ, "RUN_ID"), env_str(environ, "MODEL_URI")
        tracking_uri, root = env_str(environ, "MLFLOW_TRACKING_URI"), env_str(environ, "MODEL_ARTIFACT_ROOT")
        if run_id and model_uri:
            raise SettingsError("set RUN_ID or MODEL_URI, not both: they name the model in two ways")
        if model_uri and not tracking_uri:
            raise SettingsError(f"MODEL_URI={model_uri} needs MLFLOW_TRACKING_URI: the registry lives there")
        if run_id is not None and not RUN_ID_PATTERN.fullmatch(run_id):
            raise SettingsError(f"RUN_ID must be an MLflow run ID (32 lowercase hex digits), got {run_id!r}")
        if root and not _supported_root(root):
            raise SettingsError(f"MODEL_ARTIFACT_ROOT must be s3://bucket/prefix or a folder, got {root!r}")
        is_default = run_id is None and model_uri is None
        return cls(
            kind=_kind(run_id, model_uri, tracking_uri, root),
            run_id=default_run_id(LOCAL_STORE) if is_default else run_id,
            model_uri=model_uri,
            tracking_uri=tracking_uri,
            artifact_root=str(LOCAL_STORE) if is_default or not root else root.removeprefix("file://"),
            cache_dir=Path(env_str(environ, "MODEL_CACHE_DIR") or _default_cache(environ)),
            load_timeout_s=env_int(environ, "MODEL_LOAD_TIMEOUT", 60, minimum=0),
            is_default_run=is_default,
            app=AppSettings.from_env(environ),
        )


def _kind(run_id: str | None, model_uri: str | None, tracking_uri: str | None, root: str | None) -> SourceKind:
    if model_uri:
        return SourceKind.REGISTRY
    if run_id is None:  # the embedded default ignores every source variable
        return SourceKind.LOCAL
    if root:
        return SourceKind.S3 if root.startswith("s3://") else SourceKind.LOCAL
    return SourceKind.TRACKING if tracking_uri else SourceKind.LOCAL


def _supported_root(root: str) -> bool:
    return root.startswith(("s3://", "file://")) or "://" not in root


def _default_cache(environ: Environ) -> Path:
    base = environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "ride-duration" / "models"


def default_run_id(store: Path) -> str:
    """The run ID the repo ships as its default, recorded beside the run in the store."""
    path = store / DEFAULT_RUN_FILE
    try:
        return path.read_text().strip()
    except OSError as error:
        raise SettingsError(
            f"RUN_ID is not set and the embedded default run is missing ({path}: {error.strerror}); "
            "set RUN_ID to the run to serve"
        ) from error
