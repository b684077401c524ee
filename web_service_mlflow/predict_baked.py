"""WSGI entry of the slim image: serve the run baked into it at build time, without scikit-learn.

gunicorn web_service_mlflow.predict_baked:app     # refuses any other RUN_ID, MODEL_URI, canary or shadow

The image's slim target bakes the run (web_service_mlflow.baked) into /app/baked.
"""

from __future__ import annotations

from web_service.startup import build_app
from web_service_mlflow.baked import load_baked

app = build_app(load_baked)
