"""The serving core: features, request schema, predictor, app factory, settings and errors.

It never imports MLflow; `web_service_mlflow` builds on it.
"""
