"""WSGI entry: serve the model named by RUN_ID or MODEL_URI (default: the run in mlruns/).

gunicorn web_service_mlflow.predict:app
RUN_ID=... MLFLOW_TRACKING_URI=http://... gunicorn web_service_mlflow.predict:app
RUN_ID=... MODEL_ARTIFACT_ROOT=s3://bucket/1 gunicorn web_service_mlflow.predict:app
MODEL_URI=models:/ride-duration@production MLFLOW_TRACKING_URI=http://... gunicorn ...

An alias is watched: when it moves, the new version is swapped in without a restart
(MODEL_POLL_SECONDS, web_service.server.hotswap). CANARY_MODEL_URI and SHADOW_MODEL_URI add a canary
and a shadow (web_service.lineup).
"""

from __future__ import annotations

from web_service.startup import build_app
from web_service_mlflow.loader import load_service
from web_service_mlflow.watch import registry_watch

app = build_app(load_service, watch=registry_watch)
