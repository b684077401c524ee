"""Settings of `web_service_mlflow.predict`: which model to serve, and where it comes from.

Precedence, first match wins:
1. MODEL_URI=models:/<name>@<alias> or models:/<name>/<version>: the registry of MLFLOW_TRACKING_URI;
2. RUN_ID (or MODEL_URI=runs:/<RUN_ID>/<path>, or MODEL_URI=models:/m-<id>, an MLflow 3 logged
   model) with MODEL_ARTIFACT_ROOT: straight from that artifact root (s3://... or a folder);
3. the same with MLFLOW_TRACKING_URI: through the tracking server;
4. the same alone: from this repo's mlruns/;
5. nothing: the embedded default run, from this repo's mlruns/.

MODEL_ARTIFACT_PATH names which of the run's models to serve when it holds several
(web_service_mlflow.runmodels).

MODEL_POLL_SECONDS (default 30, 0 for never): how often the Gunicorn master asks the registry
where an alias (models:/<name>@<alias>) points, to swap in a new version (web_service.server.hotswap).
A RUN_ID or a pinned version names one model for the life of the process.

Beside the primary: CANARY_MODEL_URI (or CANARY_RUN_ID) answers CANARY_PERCENT of requests, and
SHADOW_MODEL_URI (or SHADOW_RUN_ID) scores every request without answering (web_service.lineup).
Each is loaded as MODEL_URI / RUN_ID would be, from the same sources.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from web_service.drift import Profile, profile_setting
from web_service.environment import Environ, env_int, env_str
from web_service.errors import SettingsError
from web_service.redact import redact_uri
from web_service.settings import AppSettings, model_cache_dir
from web_service.trust import Trust
from web_service_mlflow.layout import DEFAULT_RUN_FILE, LOCAL_STORE

RUN_ID_PATTERN = re.compile(r"[0-9a-f]{32}")
RUNS_URI = re.compile(r"runs:/(?P<run_id>[^/]+)/(?P<path>.+)")
LOGGED_MODEL_URI = re.compile(r"models:/(?P<model_id>m-[0-9a-f]{32})")


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
    # MODEL_URI: a registry URI, models:/<name>@<alias> or models:/<name>/<version>; None when
    # MODEL_URI named a run (runs:/...) or a logged model (models:/m-...), kept in the fields below.
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
    # MODEL_ARTIFACT_PATH (or the <path> of runs:/<RUN_ID>/<path>): which of the run's models.
    artifact_path: str | None = None
    # The m-<id> of MODEL_URI=models:/m-<id>: an MLflow 3 logged model.
    model_id: str | None = None
    # ALLOW_PICKLE (on for the embedded default run, off otherwise) and SKOPS_TRUSTED_TYPES.
    trust: Trust = Trust()
    # DRIFT_PROFILE: a reference profile file, read at start, used instead of the run's reference/profile.json.
    drift_profile: Profile | None = None
    # MODEL_POLL_SECONDS: how often to ask the registry where an alias points; 0 never.
    poll_seconds: int = 30

    @classmethod
    def from_env(cls, environ: Environ) -> ModelSettings:
        run_id, model_uri = env_str(environ, "RUN_ID"), env_str(environ, "MODEL_URI")
        tracking_uri, root = env_str(environ, "MLFLOW_TRACKING_URI"), env_str(environ, "MODEL_ARTIFACT_ROOT")
        artifact_path = env_str(environ, "MODEL_ARTIFACT_PATH")
        if run_id and model_uri:
            raise SettingsError("set RUN_ID or MODEL_URI, not both: they name the model in two ways")
        run_id, artifact_path, model_id, model_uri = _named_model(run_id, artifact_path, model_uri)
        if model_uri and not tracking_uri:
            raise SettingsError(f"MODEL_URI={model_uri} needs MLFLOW_TRACKING_URI: the registry lives there")
        if run_id is not None and not RUN_ID_PATTERN.fullmatch(run_id):
            raise SettingsError(f"RUN_ID must be an MLflow run ID (32 lowercase hex digits), got {run_id!r}")
        if root and not _supported_root(root):
            raise SettingsError(f"MODEL_ARTIFACT_ROOT must be s3://bucket/prefix or a folder, got {redact_uri(root)!r}")
        is_default = run_id is None and model_uri is None and model_id is None
        return cls(
            kind=_kind(run_id or model_id, model_uri, tracking_uri, root),
            run_id=default_run_id(LOCAL_STORE) if is_default else run_id,
            model_uri=model_uri,
            tracking_uri=tracking_uri,
            artifact_root=str(LOCAL_STORE) if is_default or not root else root.removeprefix("file://"),
            cache_dir=model_cache_dir(environ),
            load_timeout_s=env_int(environ, "MODEL_LOAD_TIMEOUT", 60, minimum=0),
            is_default_run=is_default,
            app=AppSettings.from_env(environ),
            artifact_path=artifact_path,
            model_id=model_id,
            # The embedded run ships with the code; any other run is whatever its store holds.
            trust=Trust.from_env(environ, allow_pickle=is_default),
            drift_profile=profile_setting(environ),
            poll_seconds=env_int(environ, "MODEL_POLL_SECONDS", cls.poll_seconds, minimum=0),
        )


def _named_model(
    run_id: str | None, artifact_path: str | None, model_uri: str | None
) -> tuple[str | None, str | None, str | None, str | None]:
    """(run ID, artifact path, logged-model ID, registry URI) from RUN_ID, MODEL_ARTIFACT_PATH and MODEL_URI."""
    model_id = None
    if model_uri and (runs := RUNS_URI.fullmatch(model_uri)):
        if artifact_path and artifact_path.strip("/") != runs["path"].strip("/"):
            raise SettingsError(
                f"MODEL_URI={model_uri} and MODEL_ARTIFACT_PATH={artifact_path} name two different models of the run"
            )
        run_id, artifact_path, model_uri = runs["run_id"], runs["path"].strip("/"), None
    elif model_uri and (logged := LOGGED_MODEL_URI.fullmatch(model_uri)):
        model_id, model_uri = logged["model_id"], None
    elif model_uri and not model_uri.startswith("models:/"):
        raise SettingsError(
            f"MODEL_URI must be models:/<name>@<alias>, models:/<name>/<version>, models:/m-<id> or "
            f"runs:/<RUN_ID>/<path>, got {redact_uri(model_uri)!r}"
        )
    if artifact_path and run_id is None:
        raise SettingsError(
            f"MODEL_ARTIFACT_PATH={artifact_path} names one of a run's models: set RUN_ID to the run as well"
        )
    return run_id, artifact_path.strip("/") if artifact_path else None, model_id, model_uri


def _kind(named: str | None, model_uri: str | None, tracking_uri: str | None, root: str | None) -> SourceKind:
    if model_uri:
        return SourceKind.REGISTRY
    if named is None:  # the embedded default ignores every source variable
        return SourceKind.LOCAL
    if root:
        return SourceKind.S3 if root.startswith("s3://") else SourceKind.LOCAL
    return SourceKind.TRACKING if tracking_uri else SourceKind.LOCAL


def _supported_root(root: str) -> bool:
    return root.startswith(("s3://", "file://")) or "://" not in root


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


# What names the model, replaced in a canary's or shadow's environment by what names it.
NAMING_VARIABLES = ("MODEL_URI", "RUN_ID", "MODEL_ARTIFACT_PATH", "DRIFT_PROFILE")
ROLES = ("CANARY", "SHADOW")


def role_environ(environ: Environ, role: str) -> dict[str, str] | None:
    """The environment that loads the canary's or shadow's model as MODEL_URI / RUN_ID would; None if unset."""
    uri, run_id = env_str(environ, f"{role}_MODEL_URI"), env_str(environ, f"{role}_RUN_ID")
    if uri and run_id:
        raise SettingsError(f"set {role}_MODEL_URI or {role}_RUN_ID, not both: they name one model twice")
    if not uri and not run_id:
        return None
    kept = {name: value for name, value in environ.items() if name not in NAMING_VARIABLES}
    return kept | ({"MODEL_URI": uri} if uri else {"RUN_ID": run_id})


def canary_percent(environ: Environ, has_canary: bool) -> float:
    """CANARY_PERCENT: the share of requests the canary answers, from 0 to 100; needed with a canary."""
    raw = env_str(environ, "CANARY_PERCENT")
    if raw is None:
        if has_canary:
            raise SettingsError("a canary is set: set CANARY_PERCENT too (the share of requests it answers, 0-100)")
        return 0.0
    if not has_canary:
        raise SettingsError(f"CANARY_PERCENT={raw} is set but no canary is: set CANARY_MODEL_URI (or CANARY_RUN_ID)")
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 100:
        raise SettingsError(f"CANARY_PERCENT must be a number from 0 to 100, got {raw!r}")
    return value
