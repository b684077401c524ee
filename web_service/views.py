"""The service's own endpoints: thin views over the predictor the app was built around."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Flask, Request, current_app, request
from werkzeug.exceptions import BadRequest

from web_service.errors import ErrorDetail, InvalidRequest, NotReady, UnsupportedMediaType
from web_service.metrics import observe_predictions
from web_service.predictor import Predictor
from web_service.requestlog import note_batch_size, request_id
from web_service.schema import parse_rides

logger = logging.getLogger(__name__)
views = Blueprint("views", __name__)


def run_self_check(predictor: Predictor) -> dict[str, Any]:
    """Predict the example ride once; the outcome decides readiness for the process's life."""
    try:
        return {"passed": True} | predictor.self_check()
    except Exception as error:  # any failure means this model must not serve
        logger.exception("model %s failed its self-check", predictor.model_version)
        return {"passed": False, "error": f"{type(error).__name__}: {error}"}


def is_ready(app: Flask) -> bool:
    return app.extensions["self_check"]["passed"]


def _predictor() -> Predictor:
    if not is_ready(current_app):
        raise NotReady(f"the model failed its self-check ({current_app.extensions['self_check']['error']})")
    return current_app.extensions["predictor"]


def predict_rides(payload: Any) -> tuple[list[float], bool]:
    """Validate a ride or a list of rides and predict them: the one path every endpoint takes."""
    predictor = _predictor()
    body = parse_rides(payload, current_app.config["MAX_BATCH_SIZE"])
    note_batch_size(len(body.rides))
    rides = [ride.model_dump() for ride in body.rides]
    durations = predictor.predict(rides)
    observe_predictions(durations)
    if (log := current_app.extensions["prediction_log"]) is not None:
        log.record(request_id(), predictor.model_version, rides, durations)
    return durations, body.is_batch


@views.post("/predict")
def predict() -> dict[str, Any] | list[dict[str, Any]]:
    durations, is_batch = predict_rides(read_json(request))
    version = current_app.extensions["predictor"].model_version
    results = [{"duration": duration, "model_version": version} for duration in durations]
    return results if is_batch else results[0]


@views.get("/health")
def health() -> dict[str, Any]:
    """Liveness: the process is up and answering."""
    return {"status": "ok"}


@views.get("/ready")
def ready() -> dict[str, Any]:
    """Readiness: the model is loaded and predicted the example ride."""
    predictor = _predictor()
    return {
        "status": "ready",
        "model_version": predictor.model_version,
        "self_check": current_app.extensions["self_check"],
    }


@views.get("/model")
def model() -> dict[str, Any]:
    """Which model this process serves, where it came from, and how it was made."""
    return current_app.extensions["predictor"].describe()


def read_json(req: Request) -> Any:
    """Decode the body as JSON whatever its Content-Type says; curl's default is form data."""
    try:
        return req.get_json(force=True)
    except BadRequest:
        if req.is_json:
            raise InvalidRequest(
                "the body is not valid JSON",
                [ErrorDetail("body", "valid JSON", _snippet(req))],
            ) from None
        raise UnsupportedMediaType(
            "the body must be JSON (Content-Type: application/json)",
            [ErrorDetail("Content-Type", "application/json", req.content_type)],
        ) from None


def _snippet(req: Request) -> str:
    return req.get_data(as_text=True)[:100]
