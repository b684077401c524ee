"""The Flask app factory: thin views over a predictor that is handed in."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Flask, Request, current_app, request
from werkzeug.exceptions import BadRequest, HTTPException

from web_service.auth import init_auth
from web_service.errors import ErrorDetail, InvalidRequest, NotReady, ServiceError, UnsupportedMediaType
from web_service.metrics import init_metrics, observe_predictions
from web_service.predictor import Predictor
from web_service.requestlog import init_request_log, note_batch_size, request_id
from web_service.schema import parse_rides
from web_service.settings import AppSettings

logger = logging.getLogger(__name__)
views = Blueprint("views", __name__)


def create_app(settings: AppSettings, predictor: Predictor) -> Flask:
    """Build the app around an already loaded predictor."""
    app = Flask(__name__)
    app.json.sort_keys = False  # keep "code, message, details" in the order people read them
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.config["MAX_BATCH_SIZE"] = settings.max_batch_size
    app.extensions["predictor"] = predictor
    app.extensions["self_check"] = run_self_check(predictor)
    init_request_log(app)
    init_metrics(app, predictor.model_version, predictor.source)
    init_auth(app, settings.api_tokens, protected_endpoints={"views.predict"})
    app.register_blueprint(views)
    app.register_error_handler(ServiceError, _service_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
    return app


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


@views.post("/predict")
def predict() -> dict[str, Any] | list[dict[str, Any]]:
    predictor = _predictor()
    body = parse_rides(read_json(request), current_app.config["MAX_BATCH_SIZE"])
    note_batch_size(len(body.rides))
    durations = predictor.predict([ride.model_dump() for ride in body.rides])
    observe_predictions(durations)
    results = [{"duration": duration, "model_version": predictor.model_version} for duration in durations]
    return results if body.is_batch else results[0]


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


def _service_error(error: ServiceError) -> tuple[dict[str, Any], int, dict[str, str]]:
    return error.to_dict(), error.status, error.headers


def _http_error(error: HTTPException) -> tuple[dict[str, Any], int, dict[str, str]]:
    # Flask's own 404/405/413 speak the same shape as ours.
    code = (error.name or "error").lower().replace(" ", "_")
    return _service_error(ServiceError(error.description or code, status=error.code, code=code))


def _unexpected_error(error: Exception) -> tuple[dict[str, Any], int, dict[str, str]]:
    # The traceback stays in the server log; the client learns nothing of the internals.
    logger.exception("unexpected error on %s %s (request %s)", request.method, request.path, request_id())
    return _service_error(ServiceError("internal server error"))
