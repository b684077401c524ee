"""Load the model of a RUN_ID into a `Predictor`: from a tracking server or a local store."""

from __future__ import annotations

import logging
from pathlib import Path

from web_service.errors import ModelLoadError
from web_service.predictor import Predictor
from web_service_mlflow.layout import MODEL_ARTIFACT
from web_service_mlflow.settings import RunSettings

logger = logging.getLogger(__name__)


def load_predictor(settings: RunSettings) -> Predictor:
    """Load the run's model from the tracking server if one is named, else from the local store."""
    if settings.tracking_uri:
        return _from_tracking_server(settings.run_id, settings.tracking_uri)
    return _from_local_store(settings.run_id, settings.model_store)


def find_run_model(run_id: str, store: Path) -> Path:
    """Find <store>/<experiment id>/<run_id>/artifacts/model, or say where it was looked for."""
    found = sorted(store.glob(f"*/{run_id}/artifacts/{MODEL_ARTIFACT}/MLmodel"))
    if not found:
        raise ModelLoadError(
            f"run {run_id} has no model in the local store {store} "
            f"(looked for {store}/<experiment id>/{run_id}/artifacts/{MODEL_ARTIFACT}/MLmodel); "
            "check RUN_ID, set MODEL_STORE to the artifact root that holds the run, "
            "or set MLFLOW_TRACKING_URI to the tracking server that knows it"
        )
    return found[0].parent


def _from_local_store(run_id: str, store: Path) -> Predictor:
    model_dir = find_run_model(run_id, store)
    pipeline = _load_sklearn(str(model_dir), f"run {run_id} in {store}")
    return Predictor(pipeline, model_version=run_id, source=f"local store {model_dir}")


def _from_tracking_server(run_id: str, tracking_uri: str) -> Predictor:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    where = f"run {run_id} on tracking server {tracking_uri}"
    try:
        MlflowClient(tracking_uri).get_run(run_id)
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise ModelLoadError(f"{where}: no such run; check RUN_ID and MLFLOW_TRACKING_URI") from error
        raise ModelLoadError(f"{where}: cannot reach or read the run: {error.message}") from error
    pipeline = _load_sklearn(f"runs:/{run_id}/{MODEL_ARTIFACT}", where, tracking_uri)
    return Predictor(pipeline, model_version=run_id, source=f"tracking server {tracking_uri}")


def _load_sklearn(model_uri: str, where: str, tracking_uri: str | None = None):
    import mlflow
    import mlflow.sklearn
    from mlflow.exceptions import MlflowException

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    try:
        return mlflow.sklearn.load_model(model_uri)
    except MlflowException as error:
        raise ModelLoadError(f"{where}: cannot load the scikit-learn model: {error.message}") from error
    except Exception as error:  # a corrupt artifact fails in the deserializer, whatever it raises
        raise ModelLoadError(
            f"{where}: the model artifact does not deserialize ({type(error).__name__}: {error})"
        ) from error
