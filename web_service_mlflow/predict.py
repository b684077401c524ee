"""WSGI entry: serve the model of RUN_ID (default: the run embedded in mlruns/).

gunicorn web_service_mlflow.predict:app
RUN_ID=... MLFLOW_TRACKING_URI=http://... gunicorn web_service_mlflow.predict:app
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from web_service.predictor import Predictor
from web_service.settings import AppSettings
from web_service.startup import build_app
from web_service_mlflow.settings import RunSettings
from web_service_mlflow.source import load_predictor

logger = logging.getLogger(__name__)


def load(environ: Mapping[str, str]) -> tuple[AppSettings, Predictor]:
    settings = RunSettings.from_env(environ)
    if settings.is_default_run and environ.get("MLFLOW_TRACKING_URI"):
        logger.warning(
            "RUN_ID is not set: serving the embedded default run %s from %s, not from "
            "MLFLOW_TRACKING_URI; set RUN_ID to serve a run from the tracking server",
            settings.run_id,
            settings.model_store,
        )
    return settings.app, load_predictor(settings)


app = build_app(load)
