"""The Flask app factory: a predictor handed in, views attached, one error shape for everything."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, current_app, request
from werkzeug.exceptions import HTTPException

from web_service.auth import init_auth
from web_service.errors import ErrorDetail, ServiceError
from web_service.invocations import mlflow_protocol
from web_service.lineup import Lineup
from web_service.livedrift import start_live_drift
from web_service.metrics import RequestMetrics, announce_model, init_metrics, service_metrics
from web_service.observe import init_observers, request_id
from web_service.openapi import build_document, openapi_views
from web_service.predictionlog import PredictionLog
from web_service.predictor import Predictor
from web_service.requestlog import RequestLog
from web_service.server.request import bounded_request
from web_service.settings import AppSettings
from web_service.views import SERVING, Serving, lineup_self_check, views

logger = logging.getLogger(__name__)
# Endpoints that API_TOKEN protects; health, readiness, identity and metrics stay open.
PROTECTED_ENDPOINTS = {"views.predict", "mlflow_protocol.invocations"}


def create_app(settings: AppSettings, models: Predictor | Lineup, announce: bool = True) -> Flask:
    """Build the app around an already loaded predictor (or a lineup: a canary, a shadow beside it).

    `announce=False` builds a candidate (web_service.server.hotswap): its model is not published in this
    process's metrics until it is chosen, with `announce(app)`.
    """
    lineup = models if isinstance(models, Lineup) else Lineup(models)
    predictor = lineup.primary
    app = Flask(__name__)
    app.request_class = bounded_request(settings.max_body_bytes)
    app.json.sort_keys = False  # keep "code, message, details" in the order people read them
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    log = PredictionLog(settings.prediction_log) if settings.prediction_log else None
    self_check = lineup_self_check(lineup)
    live = start_live_drift(predictor.profile, settings.live_drift, service_metrics(), predictor.model_version)
    alone = lineup.canary is None and lineup.shadow is None
    app.extensions[SERVING] = Serving(predictor, self_check, settings.max_batch_size, log, live,
                                      None if alone else lineup)  # fmt: skip
    init_metrics(app)
    if announce:
        announce_model(predictor.model_version, predictor.source, self_check["passed"])
    init_auth(app, settings.api_tokens, PROTECTED_ENDPOINTS)
    app.register_blueprint(views)
    app.register_blueprint(mlflow_protocol)
    app.register_blueprint(openapi_views)
    app.extensions["openapi"] = build_document(settings.max_batch_size, protected=bool(settings.api_tokens))
    app.register_error_handler(ServiceError, _service_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
    init_observers(app, [RequestMetrics(), RequestLog(predictor.model_version)])
    return app


def announce(app: Flask) -> None:
    """Publish the app's model as the one this process (and the workers it forks) serves."""
    now = app.extensions[SERVING]
    announce_model(now.predictor.model_version, now.predictor.source, now.ready)


def _service_error(error: ServiceError) -> tuple[dict[str, Any], int, dict[str, str]]:
    return error.to_dict(), error.status, error.headers


def _http_error(error: HTTPException) -> tuple[dict[str, Any], int, dict[str, str]]:
    # Flask's own 404/405/413 speak the same shape as ours, and say what would have worked.
    code = (error.name or "error").lower().replace(" ", "_")
    message, details, headers = error.description or code, [], {}
    if error.code == 404:
        message = f"no endpoint at {request.path}; the API is described at /openapi.json and /docs"
    elif error.code == 405:
        valid = sorted(set(getattr(error, "valid_methods", None) or []))
        allowed = [method for method in valid if method not in ("HEAD", "OPTIONS")]
        message = f"{request.method} is not allowed on {request.path}"
        details = [ErrorDetail("method", " or ".join(allowed), request.method)]
        # RFC 9110: a 405 lists what the resource answers, HEAD and OPTIONS (answered by Flask) included.
        headers = {"Allow": ", ".join(valid)}
    elif error.code == 413:
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        message = f"the body is over the {limit}-byte limit (MAX_BODY_BYTES)"
        received = request.content_length if request.content_length is not None else f"over {limit} bytes, chunked"
        details = [ErrorDetail("body", f"at most {limit} bytes", received)]
    return _service_error(ServiceError(message, details, status=error.code, code=code, headers=headers))


def _unexpected_error(error: Exception) -> tuple[dict[str, Any], int, dict[str, str]]:
    # The traceback stays in the server log; the client learns nothing of the internals.
    logger.exception("unexpected error on %s %s (request %s)", request.method, request.path, request_id())
    return _service_error(ServiceError("internal server error"))
