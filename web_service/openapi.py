"""The OpenAPI 3.1 document of the service, generated from the types that validate and answer.

Every schema in it is pydantic's JSON Schema of the type the code uses: the ride and its bounds
(web_service.schema), a prediction, health and readiness (web_service.views), /model
(Predictor.describe) and the error shape (web_service.errors). This module only assembles them
into paths, once per app. GET /openapi.json serves the document; GET /docs is Swagger UI over it,
from the files of the flask-swagger-ui package: the page loads nothing from elsewhere.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import mimetypes
from functools import cache
from pathlib import Path
from typing import Annotated, Any

import flask_swagger_ui
from flask import Blueprint, Response, current_app, request
from pydantic import Field, TypeAdapter
from typing_extensions import TypedDict  # pydantic needs this one on Python < 3.12

from web_service.errors import MAX_DETAILS, ErrorDetail
from web_service.invocations import INPUT_KEYS
from web_service.predictor import EXAMPLE_RIDE, ModelDescription
from web_service.schema import Ride, ride_batch
from web_service.views import Health, Prediction, Readiness

openapi_views = Blueprint("openapi", __name__)

JSON = "application/json"
TITLE = "Ride-duration prediction service"
REF = "#/components/schemas/{model}"


class ErrorBody(TypedDict):
    code: Annotated[
        str, Field(description="What went wrong, in one word: invalid_request, unauthorized, not_found, ...")
    ]
    message: str
    # MAX_DETAILS problems, then one detail counting the rest.
    details: Annotated[list[ErrorDetail], Field(max_length=MAX_DETAILS + 1)]


class Error(TypedDict):
    """An error, always in this shape (ServiceError.to_dict): 400, 401, 404, 405, 413, 415, 500 or 503."""

    error: ErrorBody


class Predictions(TypedDict):
    """What /invocations answers: predicted durations, in minutes, in input order."""

    predictions: list[float]


@cache  # the same for the same settings; generating it takes pydantic about 10 ms, once per process
def build_document(max_batch: int, protected: bool) -> dict[str, Any]:
    """The document for this app's settings (batch limit, whether a token is required); do not change it."""
    types = {
        "Ride": (Ride, "validation"),
        "Rides": (ride_batch(max_batch), "validation"),
        "Prediction": (Prediction, "serialization"),
        "Predictions": (Predictions, "serialization"),
        "Health": (Health, "serialization"),
        "Readiness": (Readiness, "serialization"),
        "ModelDescription": (ModelDescription, "serialization"),
        "Error": (Error, "serialization"),
    }
    inputs = [(name, mode, TypeAdapter(kind)) for name, (kind, mode) in types.items()]
    keyed, definitions = TypeAdapter.json_schemas(inputs, ref_template=REF)
    schemas = definitions["$defs"]
    of = {name: keyed[name, mode] for name, (_, mode) in types.items()}  # a $ref, or an array schema
    schemas["Invocation"] = _invocation_schema(of["Rides"], schemas["Ride"])
    ride_fields = schemas["Ride"]["properties"]
    security = [{"bearer": []}] if protected else []
    return {
        "openapi": "3.1.0",
        "info": {
            "title": TITLE,
            "version": "1",
            "description": "Predicts NYC taxi ride durations, in minutes, with an MLflow-tracked model.",
        },
        "paths": {
            "/predict": {
                "post": _operation(
                    "predict",
                    "Predict one ride, or a list of rides in order.",
                    _response({"oneOf": [of["Prediction"], {"type": "array", "items": of["Prediction"]}]},
                              "One prediction for a ride; a list, in order, for a list."),
                    security,
                    {JSON: {"schema": {"oneOf": [of["Ride"], of["Rides"]]}, "example": EXAMPLE_RIDE}},
                )
            },
            "/invocations": {
                "post": _operation(
                    "invocations",
                    "MLflow's scoring protocol: exactly one of the four input keys, or CSV.",
                    _response(of["Predictions"], "Predicted durations, in minutes, in input order."),
                    security,
                    {
                        JSON: {"schema": _ref("Invocation"),
                               "example": {"dataframe_split": {"columns": list(ride_fields),
                                                               "data": [[EXAMPLE_RIDE[f] for f in ride_fields]]}}},
                        "text/csv": {"schema": _csv_schema(ride_fields, of["Rides"])},
                    },
                )
            },
            "/health": {"get": _operation("health", "Liveness.", _response(of["Health"], "Up.", errors=False))},
            "/ready": {
                "get": _operation("ready", "Readiness: the model is loaded and passed its self-check.",
                                  _response(of["Readiness"], "Ready."))
            },
            "/model": {
                "get": _operation("model", "The served model's identity.",
                                  _response(of["ModelDescription"], "Which model answers, from where, and how.",
                                            errors=False))
            },
            "/metrics": {"get": _operation("metrics", "Prometheus metrics.", _text("Prometheus text format."))},
            "/ping": {"get": _operation("ping", "MLflow protocol liveness.", _text("Up."))},
            "/version": {"get": _operation("version", "MLflow version spoken.", _text("A version."))},
            "/openapi.json": {
                "get": _operation("openapi", "This document.",
                                  _response({"type": "object"}, "OpenAPI.", errors=False))
            },
            "/docs": {
                "get": _operation("docs", "This document, for people: Swagger UI.",
                                  _text("HTML.", "text/html"))
            },
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "One of the tokens in API_TOKEN, when it is set."}},
        },
    }  # fmt: skip


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _operation(
    operation_id: str,
    summary: str,
    responses: dict[str, Any],
    security: list[dict[str, list[str]]] | None = None,
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    found: dict[str, Any] = {"operationId": operation_id, "summary": summary}
    if security is not None:
        found["security"] = security
    if body is not None:
        found["requestBody"] = {"required": True, "content": body}
    return found | {"responses": responses}


def _response(schema: dict[str, Any], description: str, errors: bool = True) -> dict[str, Any]:
    found = {"200": {"description": description, "content": {JSON: {"schema": schema}}}}
    if errors:
        found["default"] = {"description": "An error, in the shape of every error.",
                            "content": {JSON: {"schema": _ref("Error")}}}  # fmt: skip
    return found


def _text(description: str, media_type: str = "text/plain") -> dict[str, Any]:
    return {"200": {"description": description, "content": {media_type: {"schema": {"type": "string"}}}}}


def _invocation_schema(rides: dict[str, Any], ride_schema: dict[str, Any]) -> dict[str, Any]:
    fields = ride_schema["properties"]
    row = {"type": "array", "prefixItems": list(fields.values()), "minItems": len(fields), "maxItems": len(fields)}
    split = {
        "type": "object",
        "required": ["columns", "data"],
        "properties": {
            "columns": {"const": list(fields)},
            "data": {key: rides[key] for key in ("type", "minItems", "maxItems")} | {"items": row},
        },
    }
    forms = {key: split if key == "dataframe_split" else rides for key in INPUT_KEYS}
    return {
        "description": "Exactly one of the four input keys; any other key (such as MLflow's params) is ignored.",
        "oneOf": [
            {
                "type": "object",
                "required": [key],
                "properties": {key: schema} | {other: False for other in forms if other != key},
            }
            for key, schema in forms.items()
        ],
    }


def _csv_schema(fields: dict[str, Any], rides: dict[str, Any]) -> dict[str, Any]:
    row = ",".join(_number_pattern(name, schema) for name, schema in fields.items())
    return {
        "type": "string",
        "pattern": f"^{','.join(fields)}(?:\\r?\\n{row}){{{rides['minItems']},{rides['maxItems']}}}(?:\\r?\\n)?$",
        "description": "A header row, then one ride per row. The pattern is the plain form; as in MLflow, the "
        "columns may also come in another order, quoted, or among others, which are ignored.",
    }


def _number_pattern(name: str, schema: dict[str, Any]) -> str:
    """A regular expression for the numbers a field's JSON Schema takes, as plain decimal text."""
    low = schema.get("minimum", math.nan)
    high = schema["maximum"] if "maximum" in schema else schema.get("exclusiveMaximum", math.nan) - 1
    if not (0 <= low <= high and low == int(low) and high == int(high)):
        raise ValueError(f"{name}: CSV text is described for whole, non-negative bounds only, not {schema}")
    integers = _integers(int(low), int(high))
    return integers if schema["type"] == "integer" else f"{integers}(?:\\.[0-9]+)?"


def _integers(low: int, high: int) -> str:
    """A regular expression for the decimal integers from low to high (0 <= low), no leading zeros."""
    parts = []
    for digits in range(len(str(low)), len(str(high)) + 1):
        first = max(low, 10 ** (digits - 1) if digits > 1 else 0)
        last = min(high, 10**digits - 1)
        if first <= last:
            parts += _same_length(str(first), str(last))
    return f"(?:{'|'.join(parts)})"


def _same_length(low: str, high: str) -> list[str]:
    # Digit strings of one length from low to high: split where their first digits differ.
    if not low:
        return [""]
    if low[0] == high[0]:
        return [low[0] + rest for rest in _same_length(low[1:], high[1:])]
    tail = len(low) - 1
    first, last = int(low[0]), int(high[0])
    head, end = [], []
    if low[1:] != "0" * tail:  # low's own first digit only from low's tail up
        head = [low[0] + rest for rest in _same_length(low[1:], "9" * tail)]
        first += 1
    if high[1:] != "9" * tail:  # high's own first digit only up to high's tail
        end = [high[0] + rest for rest in _same_length("0" * tail, high[1:])]
        last -= 1
    middle = []
    if first <= last:
        digit = str(first) if first == last else f"[{first}-{last}]"
        middle = [digit + ("[0-9]" if tail == 1 else f"[0-9]{{{tail}}}" if tail else "")]
    return head + middle + end


# --- GET /docs: Swagger UI, served from the flask-swagger-ui package -------------------------------

SWAGGER_UI = Path(flask_swagger_ui.__file__).parent / "dist"
ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png")
SWAGGER_CONFIG = {
    "url": "openapi.json",  # relative, as are the assets: the page works behind a path prefix too
    "dom_id": "#swagger-ui",
    "deepLinking": True,
    "validatorUrl": None,  # Swagger's default sends the document to validator.swagger.io
    "displayRequestDuration": True,
}


@cache
def docs_page() -> tuple[str, dict[str, str]]:
    """The page and its headers: a Content-Security-Policy that lets it load and call this server only."""
    script = f"window.ui = SwaggerUIBundle({json.dumps(SWAGGER_CONFIG)});"
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    page = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(TITLE)}</title>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<link rel='stylesheet' href='docs/swagger-ui.css'>"
        "<link rel='icon' type='image/png' href='docs/favicon-32x32.png'>"
        "</head><body><div id='swagger-ui'></div>"
        "<script src='docs/swagger-ui-bundle.js'></script>"
        f"<script>{script}</script></body></html>"
    )
    policy = (
        f"default-src 'none'; script-src 'self' 'sha256-{digest}'; style-src 'self'; "
        "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return page, {"Content-Security-Policy": policy, "X-Content-Type-Options": "nosniff"}


@openapi_views.get("/openapi.json")
def openapi_json() -> dict[str, Any]:
    return current_app.extensions["openapi"]


@openapi_views.get("/docs")
def docs() -> Response:
    page, headers = docs_page()
    return Response(page, mimetype="text/html", headers=headers)


def _asset(name: str) -> Response:
    # From memory, not send_file: the service's worker answers from a buffer, with no sendfile().
    data, etag = _read_asset(name)
    response = Response(data, mimetype=mimetypes.guess_type(name)[0])
    response.cache_control.public, response.cache_control.max_age = True, 3600
    response.set_etag(etag)
    return response.make_conditional(request)


@cache
def _read_asset(name: str) -> tuple[bytes, str]:
    data = (SWAGGER_UI / name).read_bytes()
    return data, hashlib.sha256(data).hexdigest()[:32]


# One fixed path per file, as every route of the service is (the request log names routes by path).
for _name in ASSETS:
    openapi_views.add_url_rule(f"/docs/{_name}", f"asset_{_name.replace('.', '_')}", _asset, defaults={"name": _name})
