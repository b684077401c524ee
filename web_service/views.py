"""The service's own endpoints: thin views over the predictor the app was built around."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, Request, Response, current_app, request
from werkzeug.exceptions import BadRequest

from web_service.errors import ErrorDetail, InvalidRequest, NotReady, UnsupportedMediaType
from web_service.livedrift import LiveDrift
from web_service.metrics import observe_predictions
from web_service.observe import note_batch_size, request_id
from web_service.predictionlog import PredictionLog
from web_service.predictor import Predictor
from web_service.schema import parse_rides

logger = logging.getLogger(__name__)
views = Blueprint("views", __name__)
SERVING = "ride_duration"  # the app.extensions key of the app's Serving


@dataclass(frozen=True)
class Serving:
    """Everything the views need, fetched from the app once per request."""

    predictor: Predictor
    self_check: dict[str, Any]
    max_batch_size: int
    prediction_log: PredictionLog | None
    live_drift: LiveDrift | None = None

    @property
    def ready(self) -> bool:
        return self.self_check["passed"]


def serving(app: Flask | None = None) -> Serving:
    return (app or current_app).extensions[SERVING]


def run_self_check(predictor: Predictor) -> dict[str, Any]:
    """Predict the example ride once; the outcome decides readiness for the process's life."""
    try:
        return {"passed": True} | predictor.self_check()
    except Exception as error:  # any failure means this model must not serve
        logger.exception("model %s failed its self-check", predictor.model_version)
        return {"passed": False, "error": f"{type(error).__name__}: {error}"}


def is_ready(app: Flask) -> bool:
    return serving(app).ready


def _ready() -> Serving:
    now = serving()
    if not now.ready:
        raise NotReady(f"the model failed its self-check ({now.self_check['error']})")
    return now


def predict_rides(payload: Any) -> tuple[list[float], bool, Predictor]:
    """Validate a ride or a list of rides and predict them: the one path every endpoint takes."""
    now = _ready()
    body = parse_rides(payload, now.max_batch_size)
    note_batch_size(len(body.rides))
    rides = body.rides
    durations = now.predictor.predict(rides)
    observe_predictions(durations)
    if now.prediction_log is not None:
        now.prediction_log.record(request_id(), now.predictor.model_version, rides, durations)
    if now.live_drift is not None:
        now.live_drift.record(rides, durations)
    return durations, body.is_batch, now.predictor


@views.post("/predict")
def predict() -> Response:
    durations, is_batch, predictor = predict_rides(read_json(request))
    # Written by hand: Flask's JSON response costs more than the prediction. repr() of a float is
    # exactly what json.dumps writes for it, so clients read back the same double.
    version = predictor.model_version_json
    results = [f'{{"duration":{duration!r},"model_version":{version}}}' for duration in durations]
    return json_response(f"[{','.join(results)}]" if is_batch else results[0])


def json_response(text: str, status: int = 200) -> Response:
    """A response whose body is `text`, already JSON."""
    return Response(text, status=status, mimetype="application/json")


@views.get("/health")
def health() -> dict[str, Any]:
    """Liveness: the process is up and answering."""
    return {"status": "ok"}


@views.get("/ready")
def ready() -> dict[str, Any]:
    """Readiness: the model is loaded and predicted the example ride."""
    now = _ready()
    return {"status": "ready", "model_version": now.predictor.model_version, "self_check": now.self_check}


@views.get("/model")
def model() -> dict[str, Any]:
    """Which model this process serves, where it came from, and how it was made."""
    return serving().predictor.describe()


def read_json(req: Request) -> Any:
    """Decode the body as JSON whatever its Content-Type says; curl's default is form data."""
    try:
        return req.get_json(force=True)
    except RecursionError:
        # The json module nests by recursion: past Python's limit (about 970 levels under Gunicorn)
        # a body is refused, as any other JSON a client got wrong. Free on the normal path.
        raise InvalidRequest(
            "the body is JSON nested too deeply",
            [ErrorDetail("body", "JSON nested at most 900 levels deep (a list of rides is 2)", "deeper nesting")],
        ) from None
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
