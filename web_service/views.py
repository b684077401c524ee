"""The service's own endpoints: thin views over the predictor the app was built around."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from flask import Blueprint, Flask, Request, Response, current_app, jsonify, request
from pydantic import Field
from typing_extensions import TypedDict  # pydantic needs this one on Python < 3.12
from werkzeug.exceptions import BadRequest

from web_service.errors import ErrorDetail, InvalidRequest, NotReady, UnsupportedMediaType
from web_service.lineup import CANARY_KEY_HEADER, Lineup
from web_service.livedrift import LiveDrift
from web_service.metrics import observe_predictions, observe_shadow
from web_service.observe import note_answered_by, note_batch_size, request_id
from web_service.predictionlog import PredictionLog
from web_service.predictor import ModelDescription, Predictor
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
    # A canary or a shadow beside `predictor` (the lineup's primary); None when it serves alone.
    lineup: Lineup | None = None

    @property
    def ready(self) -> bool:
        return self.self_check["passed"]


def serving(app: Flask | None = None) -> Serving:
    return (app or current_app).extensions[SERVING]


def run_self_check(predictor: Predictor, role: str = "model") -> dict[str, Any]:
    """Predict the example ride once; the outcome decides readiness for the process's life."""
    try:
        return {"passed": True} | predictor.self_check()
    except Exception as error:  # any failure means this model must not serve
        logger.exception("%s %s failed its self-check", role, predictor.model_version)
        prefix = "" if role == "model" else f"{role} model {predictor.model_version}: "
        return {"passed": False, "error": f"{prefix}{type(error).__name__}: {error}"}


def lineup_self_check(lineup: Lineup) -> dict[str, Any]:
    """The primary's self-check, failed when the canary's or the shadow's fails: none serves half a lineup."""
    found = run_self_check(lineup.primary)
    for role, other in (("canary", lineup.canary), ("shadow", lineup.shadow)):
        if found["passed"] and other is not None:
            checked = run_self_check(other, role)
            found = found if checked["passed"] else checked
    return found


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
    lineup = now.lineup
    answering = now.predictor if lineup is None else lineup.answering(_canary_key())
    if answering is not now.predictor:
        note_answered_by(answering.model_version_json)
    durations = answering.predict(rides)
    observe_predictions(durations, answering.model_version)
    shadow = None if lineup is None or lineup.shadow is None else _shadow(lineup.shadow, rides, durations)
    if now.prediction_log is not None:
        now.prediction_log.record(request_id(), answering.model_version, rides, durations, shadow)
    if now.live_drift is not None and answering is now.predictor:  # the profile is the primary's
        now.live_drift.record(rides, durations)
    return durations, body.is_batch, answering


def _canary_key() -> str:
    return request.headers.get(CANARY_KEY_HEADER) or request_id()


def _shadow(shadow: Predictor, rides: list[dict[str, Any]], answered: list[float]) -> dict[str, Any] | None:
    """Score the rides with the shadow, measure how far it is from the answer; never fail the request."""
    try:
        durations = shadow.predict(rides)
    except Exception:  # the shadow is on trial: its failure is counted and logged, not the caller's
        logger.exception("shadow model %s failed to score request %s", shadow.model_version, request_id())
        observe_shadow(shadow.model_version, None)
        return None
    observe_shadow(shadow.model_version, [abs(s - a) for s, a in zip(durations, answered, strict=True)])
    return {"model_version": shadow.model_version, "durations": durations}


class Prediction(TypedDict):
    """One ride's answer: what predict() returns, and the document shows."""

    duration: Annotated[float, Field(description="Predicted ride duration, in minutes.")]
    model_version: Annotated[str, Field(description="Run ID (and registry version) that predicted it.")]


@views.post("/predict")
def predict() -> Response:
    durations, is_batch, predictor = predict_rides(read_json(request))
    results = [Prediction(duration=duration, model_version=predictor.model_version) for duration in durations]
    return jsonify(results if is_batch else results[0])


class Health(TypedDict):
    status: Literal["ok"]


class Readiness(TypedDict):
    status: Literal["ready"]
    model_version: str
    self_check: Annotated[dict[str, Any], Field(description="The example ride, and the duration predicted at start.")]


@views.get("/health")
def health() -> Health:
    """Liveness: the process is up and answering."""
    return {"status": "ok"}


@views.get("/ready")
def ready() -> Readiness:
    """Readiness: the model is loaded and predicted the example ride."""
    now = _ready()
    return {"status": "ready", "model_version": now.predictor.model_version, "self_check": now.self_check}


@views.get("/model")
def model() -> ModelDescription:
    """Which model this process serves, where it came from, and how it was made."""
    now = serving()
    found = now.predictor.describe()
    return found if now.lineup is None else found | now.lineup.describe()


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
