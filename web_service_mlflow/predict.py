"""WSGI entry: serve the model named by RUN_ID or MODEL_URI (default: the run in mlruns/).

gunicorn web_service_mlflow.predict:app
RUN_ID=... MLFLOW_TRACKING_URI=http://... gunicorn web_service_mlflow.predict:app
RUN_ID=... MODEL_ARTIFACT_ROOT=s3://bucket/1 gunicorn web_service_mlflow.predict:app
MODEL_URI=models:/ride-duration@production MLFLOW_TRACKING_URI=http://... gunicorn ...
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from web_service.predictor import Predictor
from web_service.settings import AppSettings
from web_service.startup import build_app
from web_service.trust import granting
from web_service_mlflow.loader import load_predictor
from web_service_mlflow.settings import ModelSettings

logger = logging.getLogger(__name__)
SOURCE_VARIABLES = ("MLFLOW_TRACKING_URI", "MODEL_ARTIFACT_ROOT")


def load(environ: Mapping[str, str]) -> tuple[AppSettings, Predictor]:
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


app = build_app(load)
