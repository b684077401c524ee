"""WSGI entry: serve the model named by RUN_ID or MODEL_URI (default: the run in mlruns/).

gunicorn web_service_mlflow.predict:app
RUN_ID=... MLFLOW_TRACKING_URI=http://... gunicorn web_service_mlflow.predict:app
RUN_ID=... MODEL_ARTIFACT_ROOT=s3://bucket/1 gunicorn web_service_mlflow.predict:app
MODEL_URI=models:/ride-duration@production MLFLOW_TRACKING_URI=http://... gunicorn ...
"""

from __future__ import annotations

from web_service.startup import build_app
from web_service_mlflow.loader import load_from_env

app = build_app(load_from_env)
