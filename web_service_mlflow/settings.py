"""Settings of `web_service_mlflow.predict`: which run to serve, and where it lives."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from web_service.errors import SettingsError
from web_service.settings import AppSettings, Environ, env_str
from web_service_mlflow.layout import DEFAULT_RUN_FILE, LOCAL_STORE

RUN_ID_PATTERN = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class RunSettings:
    """Serve the model of `run_id`, through a tracking server if one is named, else from a store."""

    # RUN_ID: the MLflow run to serve; unset means the embedded default run.
    run_id: str
    # MLFLOW_TRACKING_URI: resolve RUN_ID through this tracking server (http(s), sqlite, ...).
    tracking_uri: str | None
    # MODEL_STORE: local artifact root holding <experiment id>/<RUN_ID>/artifacts/model.
    model_store: Path
    # True when RUN_ID was not given and the embedded default is served.
    is_default_run: bool
    app: AppSettings

    @classmethod
    def from_env(cls, environ: Environ) -> RunSettings:
        store = Path(env_str(environ, "MODEL_STORE") or LOCAL_STORE)
        run_id = env_str(environ, "RUN_ID")
        is_default = run_id is None
        if run_id is None:
            run_id = default_run_id(LOCAL_STORE)
            store = LOCAL_STORE
        if not RUN_ID_PATTERN.fullmatch(run_id):
            raise SettingsError(f"RUN_ID must be an MLflow run ID (32 lowercase hex digits), got {run_id!r}")
        return cls(
            run_id=run_id,
            # The embedded default always comes from the repo's own store.
            tracking_uri=None if is_default else env_str(environ, "MLFLOW_TRACKING_URI"),
            model_store=store,
            is_default_run=is_default,
            app=AppSettings.from_env(environ),
        )


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
